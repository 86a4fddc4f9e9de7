import { describe, expect, it } from 'vitest';
import { Rng } from './prng.js';
import { WORLD_GENERATORS, captionOf, worldTexts, type WorldSample, type WorldTaskName } from './world-tasks.js';
import {
  BACKGROUND_RGB,
  BASE_SHAPES,
  CANVAS,
  COLORS,
  COLOR_RGB,
  EXTENT,
  NOVEL_SHAPES,
  centrePixel,
  placeScene,
  positionOf,
  renderScene,
  sceneImage,
  sceneKey,
  sceneSplit,
  type Color,
  type Scene,
  type SceneObject,
} from './world.js';

const TASKS = Object.keys(WORLD_GENERATORS) as WorldTaskName[];
const S = 32;
const NUMBERS = ['one', 'two', 'three', 'four', 'five'];

/** Colour name of the rendered pixel at the object's centre, which must match a palette entry exactly. */
function colourAtCentre(scene: Scene, obj: SceneObject): Color {
  const img = renderScene(scene, S);
  const [x, y] = centrePixel(obj, S);
  const px = Array.from(img.data.subarray((y * S + x) * 3, (y * S + x) * 3 + 3));
  const name = COLORS.find((c) => COLOR_RGB[c].every((v, k) => v === px[k]));
  if (name === undefined) throw new Error(`pixel ${px} at the centre of ${JSON.stringify(obj)} is no palette colour`);
  return name;
}

const byShape = (scene: Scene, shape: string) => scene.objects.filter((o) => o.shape === shape);
const withColour = (scene: Scene, c: Color) => scene.objects.filter((o) => colourAtCentre(scene, o) === c);

/** The answer recomputed from the scene (colours read back from the rendering), independent of the generator. */
function expectedAnswer(task: WorldTaskName, s: WorldSample): string {
  const { scene, prompt } = s;
  const w = prompt.split(' ');
  if (task === 'caption' || task === 'novel') {
    const phrase = (o: SceneObject) => `a ${o.size} ${colourAtCentre(scene, o)} ${o.shape}`;
    if (scene.objects.length === 2) return scene.objects.map(phrase).join(' and ');
    const o = scene.objects[0]!;
    const where = { left: 'on the left', right: 'on the right', top: 'at the top', bottom: 'at the bottom' }[positionOf(o)];
    return `${phrase(o)} ${where}`;
  }
  const only = (list: SceneObject[]) => {
    if (list.length !== 1) throw new Error(`"${prompt}" is ambiguous: ${list.length} matches`);
    return list[0]!;
  };
  switch (s.kind) {
    case 'color':
      return colourAtCentre(scene, only(byShape(scene, w[4]!)));
    case 'shape':
      return only(withColour(scene, w[4] as Color)).shape;
    case 'size':
      return only(byShape(scene, w[4]!)).size;
    case 'exist':
      return byShape(scene, w[4]!).some((o) => colourAtCentre(scene, o) === w[3]) ? 'yes' : 'no';
    case 'where':
      expect(scene.objects.length).toBe(1);
      return positionOf(only(byShape(scene, w[3]!)));
    case 'count-all':
      return NUMBERS[scene.objects.length - 1]!;
    case 'count-color':
      return NUMBERS[withColour(scene, w[2] as Color).length - 1]!;
    case 'count-shape':
      return NUMBERS[byShape(scene, w[2]!.slice(0, -1)).length - 1]!;
    case 'relation': {
      const a = only(byShape(scene, w[2]!));
      const b = only(byShape(scene, w[6]!));
      return (w[3] === 'left' ? a.cx < b.cx : a.cx > b.cx) ? 'yes' : 'no';
    }
    default:
      throw new Error(`unexpected kind ${s.kind}`);
  }
}

describe('synthetic world', () => {
  it('is deterministic: same (split, seed) → same samples; a longer request extends a shorter one', () => {
    for (const t of TASKS) {
      const gen = WORLD_GENERATORS[t];
      const view = (xs: WorldSample[]) => xs.map((x) => [sceneKey(x.scene), x.prompt, x.answer, x.kind].join(' # '));
      const a = view(gen('train', 40, 7));
      expect(view(gen('train', 40, 7)), t).toEqual(a);
      expect(view(gen('train', 15, 7)), t).toEqual(a.slice(0, 15));
      expect(view(gen('train', 40, 8)), t).not.toEqual(a);
      expect(Array.from(sceneImage(gen('test', 1, 3)[0]!.scene, S))).toEqual(Array.from(sceneImage(gen('test', 1, 3)[0]!.scene, S)));
    }
  });

  it('never shows the same scene in train and test', () => {
    for (const t of TASKS) {
      const train = WORLD_GENERATORS[t]('train', 600, 0);
      const test = WORLD_GENERATORS[t]('test', 600, 0);
      const trainKeys = new Set(train.map((x) => sceneKey(x.scene)));
      expect(train.every((x) => sceneSplit(x.scene) === 'train'), t).toBe(true);
      expect(test.every((x) => sceneSplit(x.scene) === 'test'), t).toBe(true);
      expect(test.filter((x) => trainKeys.has(sceneKey(x.scene))), t).toEqual([]);
      // Same seed number, different split: the streams differ too.
      expect(new Set(test.map((x) => sceneKey(x.scene))).size, t).toBeGreaterThan(300);
    }
  });

  it('answers agree with the rendered scene', () => {
    for (const t of TASKS) {
      for (const split of ['train', 'test'] as const) {
        for (const s of WORLD_GENERATORS[t](split, 150, 11)) expect(s.answer, `${t}: ${s.prompt} ${sceneKey(s.scene)}`).toBe(expectedAnswer(t, s));
      }
    }
  });

  it('keeps objects inside the canvas, apart, sorted left to right, with the right shape families', () => {
    for (const t of TASKS) {
      for (const { scene } of WORLD_GENERATORS[t]('train', 200, 5)) {
        const o = scene.objects;
        expect(o.length).toBeGreaterThanOrEqual(1);
        expect(o.length).toBeLessThanOrEqual(t === 'count' ? 5 : 2);
        for (const a of o) {
          const h = EXTENT[a.size] / 2;
          expect(a.cx - h >= 1 && a.cy - h >= 1 && a.cx + h <= CANVAS - 1 && a.cy + h <= CANVAS - 1).toBe(true);
        }
        o.forEach((a, i) =>
          o.slice(i + 1).forEach((b) => {
            const need = (EXTENT[a.size] + EXTENT[b.size]) / 2 + 2;
            expect(Math.abs(a.cx - b.cx) >= need || Math.abs(a.cy - b.cy) >= need).toBe(true);
            expect(a.cx <= b.cx).toBe(true);
          }),
        );
        const novel = o.filter((x) => (NOVEL_SHAPES as readonly string[]).includes(x.shape)).length;
        if (t === 'novel') expect(novel).toBeGreaterThanOrEqual(1);
        else expect(novel).toBe(0);
        if (t !== 'count') expect(new Set(o.map((x) => x.shape)).size).toBe(o.length);
      }
    }
  });

  it('renders shapes that are told apart by their pixels', () => {
    // Coloured-pixel count of each shape at both sizes: large > small, square > circle > triangle.
    const lit = (shape: SceneObject['shape'], size: SceneObject['size']) => {
      const img = renderScene({ objects: [{ shape, color: 'white', size, cx: 32, cy: 32 }] }, S);
      let n = 0;
      for (let p = 0; p < S * S; p++) if (img.data[p * 3]! > 128) n++;
      return n;
    };
    for (const size of ['small', 'large'] as const) {
      expect(lit('square', size)).toBe((EXTENT[size] / 2) ** 2);
      expect(lit('square', size)).toBeGreaterThan(lit('circle', size));
      expect(lit('circle', size)).toBeGreaterThan(lit('triangle', size));
      for (const s of [...BASE_SHAPES, ...NOVEL_SHAPES]) expect(lit(s, 'large')).toBeGreaterThan(1.8 * lit(s, 'small'));
    }
    const empty = renderScene({ objects: [] }, S);
    expect(Array.from(empty.data.subarray(0, 3))).toEqual([...BACKGROUND_RGB]);
    expect(() => renderScene(empty as never, 8)).toThrow(/size must be an integer ≥ 16 px, got 8/);
  });

  it('balances question types and answers', () => {
    const tally = (xs: string[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());
    const vqa = WORLD_GENERATORS.vqa('train', 1000, 1);
    const kinds = tally(vqa.map((s) => s.kind));
    expect([...kinds.values()]).toEqual([200, 200, 200, 200, 200]);
    const within = (kind: string, values: readonly string[], xs: WorldSample[]) => {
      const got = tally(xs.filter((s) => s.kind === kind).map((s) => s.answer));
      const n = xs.filter((s) => s.kind === kind).length;
      expect([...got.keys()].sort(), kind).toEqual([...values].sort());
      for (const v of values) {
        expect(got.get(v)! / n, `${kind} ${v}`).toBeGreaterThan(0.5 / values.length);
        expect(got.get(v)! / n, `${kind} ${v}`).toBeLessThan(1.5 / values.length);
      }
    };
    within('color', COLORS, vqa);
    within('shape', BASE_SHAPES, vqa);
    within('size', ['small', 'large'], vqa);
    within('exist', ['yes', 'no'], vqa);
    within('where', ['left', 'right', 'top', 'bottom'], vqa);
    const count = WORLD_GENERATORS.count('train', 800, 1);
    expect([...tally(count.map((s) => s.kind)).values()]).toEqual([200, 200, 200, 200]);
    for (const k of ['count-all', 'count-color', 'count-shape']) within(k, NUMBERS, count);
    within('relation', ['yes', 'no'], count);
    const caption = tally(WORLD_GENERATORS.caption('train', 400, 1).map((s) => s.kind));
    expect(caption.get('one-object')! / 400).toBeGreaterThan(0.4);
    expect(caption.get('two-objects')! / 400).toBeGreaterThan(0.4);
  });

  it('enumerated texts cover every generated prompt and answer word', () => {
    for (const t of TASKS) {
      const vocab = new Set(worldTexts(t).flatMap((x) => x.split(' ')));
      for (const s of WORLD_GENERATORS[t]('test', 300, 2)) {
        for (const word of `${s.prompt} ${s.answer}`.split(' ')) expect(vocab.has(word), `${t}: "${word}"`).toBe(true);
        expect(`${s.prompt} ${s.answer}`).toMatch(/^[a-z?]+( [a-z?]+)*$/);
      }
    }
    expect(worldTexts('novel').join(' ')).toMatch(/\bstar\b.*\bcross\b|\bcross\b.*\bstar\b/);
    expect(worldTexts('caption').join(' ')).not.toMatch(/\b(star|cross|diamond)\b/);
  });

  it('rejects bad arguments by name', () => {
    expect(() => WORLD_GENERATORS.vqa('dev' as never, 1, 0)).toThrow(/split must be 'train' or 'test', got "dev"/);
    expect(() => WORLD_GENERATORS.count('train', -1, 0)).toThrow(/count must be an integer ≥ 0, got -1/);
    expect(() => WORLD_GENERATORS.caption('train', 1, 0.5)).toThrow(/seed must be an integer, got 0.5/);
    const spec = { shape: 'circle', color: 'red', size: 'small' } as const;
    expect(() => placeScene(new Rng(1), [spec, spec], { kind: 'side', position: 'left' })).toThrow(/exactly one object, got 2/);
    expect(() => placeScene(new Rng(1), [spec], { kind: 'free', apartAlongX: [[0, 3]] })).toThrow(/pair \[0, 3\]/);
    expect(() => captionOf({ objects: [] })).toThrow(/1 or 2 objects, got 0/);
  });
});
