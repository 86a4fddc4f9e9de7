/**
 * The question and caption generators over the synthetic world (world.ts). Each generator is a pure
 * function of (split, count, seed): sample i draws from its own stream streamSeed('world', task,
 * split, seed, i) and is rejected until its scene belongs to `split` (see world.ts, "Splits").
 *
 * Grammar (all lowercase, words separated by one space, '?' a word of its own):
 *   object   := "a" size colour shape                   e.g. "a large red circle"
 *   place    := "on the left" | "on the right" | "at the top" | "at the bottom"
 *   caption  := object place                            (one object; place = positionOf)
 *             | object "and" object                     (two objects, left to right; their boxes are
 *                                                       apart along x, so the order is visible)
 * Prompts: caption and novel ask "what is in the image ?".
 *
 * Tasks (kind = the sample's question type):
 * - caption (general): 1–2 objects with distinct base shapes; kinds one-object, two-objects.
 * - vqa (general): 1–2 objects with distinct base shapes; the question type cycles with the sample
 *   index (i mod 5) and each answer is drawn uniformly before the scene is built around it:
 *     color  "what color is the <shape> ?"          → colour
 *     shape  "what shape is the <colour> object ?"  → shape (the colour is unique in the scene)
 *     size   "what size is the <shape> ?"           → small | large
 *     exist  "is there a <colour> <shape> ?"        → yes | no (half of the no's show the shape
 *                                                    in another colour, half leave the shape out)
 *     where  "where is the <shape> ?"               → left | right | top | bottom (one object)
 * - novel (downstream): the caption grammar on scenes holding a new shape (star, cross, diamond);
 *   a second object, if any, is any other shape, old or new.
 * - count (downstream): 1–5 objects of base shapes (shapes and colours may repeat; scenes with ≥ 4
 *   objects use small objects so they fit); kinds cycle with i mod 4:
 *     count-all    "how many shapes ?"                       → one..five (n uniform)
 *     count-color  "how many <colour> shapes ?"              → one..five (k uniform, then n ≥ k)
 *     count-shape  "how many <shape>s ?"                     → one..five (k uniform, then n ≥ k)
 *     relation     "is the <shape> left|right of the <shape> ?" → yes | no (the two named shapes
 *                  occur once each, apart along x; the rest are the third shape)
 *
 * Non-goals: free-form language, multi-word answers for VQA, relations other than left/right.
 */
import { numberWord } from './number-words.js';
import { Rng, streamSeed } from './prng.js';
import {
  ALL_SHAPES,
  BASE_SHAPES,
  CANVAS,
  COLORS,
  NOVEL_SHAPES,
  POSITIONS,
  SIZES,
  placeScene,
  positionOf,
  sceneInSplit,
  type Color,
  type ObjectSpec,
  type Position,
  type Scene,
  type SceneObject,
  type Shape,
  type Split,
} from './world.js';

export interface WorldSample {
  scene: Scene;
  prompt: string;
  answer: string;
  /** Question type, e.g. 'color', 'count-all', 'one-object'. */
  kind: string;
}

export type WorldTaskName = 'caption' | 'vqa' | 'novel' | 'count';

export const CAPTION_PROMPT = 'what is in the image ?';
const PLACE: Readonly<Record<Position, string>> = {
  left: 'on the left',
  right: 'on the right',
  top: 'at the top',
  bottom: 'at the bottom',
};
const PLURAL: Readonly<Record<(typeof BASE_SHAPES)[number], string>> = {
  square: 'squares',
  circle: 'circles',
  triangle: 'triangles',
};

export const objectPhrase = (o: ObjectSpec): string => `a ${o.size} ${o.color} ${o.shape}`;

export function captionOf(scene: Scene): string {
  const objs = scene.objects;
  if (objs.length === 1) return `${objectPhrase(objs[0]!)} ${PLACE[positionOf(objs[0]!)]}`;
  if (objs.length === 2) return objs.map(objectPhrase).join(' and ');
  throw new Error(`captionOf: captions describe 1 or 2 objects, got ${objs.length}`);
}

const question = {
  color: (s: Shape) => `what color is the ${s} ?`,
  shape: (c: Color) => `what shape is the ${c} object ?`,
  size: (s: Shape) => `what size is the ${s} ?`,
  exist: (c: Color, s: Shape) => `is there a ${c} ${s} ?`,
  where: (s: Shape) => `where is the ${s} ?`,
  countAll: () => 'how many shapes ?',
  countColor: (c: Color) => `how many ${c} shapes ?`,
  countShape: (s: keyof typeof PLURAL) => `how many ${PLURAL[s]} ?`,
  relation: (a: Shape, rel: 'left' | 'right', b: Shape) => `is the ${a} ${rel} of the ${b} ?`,
};

const other = <T>(rng: Rng, items: readonly T[], ...exclude: T[]): T => rng.pick(items.filter((x) => !exclude.includes(x)));
const spec = (rng: Rng, shape: Shape, o: Partial<ObjectSpec> = {}): ObjectSpec => ({
  shape,
  color: o.color ?? rng.pick(COLORS),
  size: o.size ?? rng.pick(SIZES),
});

/** 1 object on a random side, or 2 objects apart along x (so left-to-right order is defined). */
function sceneOf(rng: Rng, specs: ObjectSpec[]): Scene | null {
  if (specs.length === 1) return placeScene(rng, specs, { kind: 'side', position: rng.pick(POSITIONS) });
  return placeScene(rng, specs, { kind: 'free', apartAlongX: [[0, 1]] });
}

function captionSample(rng: Rng, shapes: { first: readonly Shape[]; second: readonly Shape[] }): WorldSample | null {
  const a = spec(rng, rng.pick(shapes.first));
  const specs = rng.next() < 0.5 ? [a] : [a, spec(rng, other(rng, shapes.second, a.shape))];
  const scene = sceneOf(rng, specs);
  if (scene === null) return null;
  return { scene, prompt: CAPTION_PROMPT, answer: captionOf(scene), kind: specs.length === 1 ? 'one-object' : 'two-objects' };
}

const VQA_KINDS = ['color', 'shape', 'size', 'exist', 'where'] as const;

function vqaSample(rng: Rng, i: number): WorldSample | null {
  const kind = VQA_KINDS[i % VQA_KINDS.length]!;
  const s = rng.pick(BASE_SHAPES);
  const two = rng.next() < 0.5;
  const second = (o: Partial<ObjectSpec> = {}): ObjectSpec[] => (two ? [spec(rng, other(rng, BASE_SHAPES, s), o)] : []);
  let specs: ObjectSpec[];
  let prompt: string;
  let answer: string;
  switch (kind) {
    case 'color': {
      const c = rng.pick(COLORS);
      specs = [spec(rng, s, { color: c }), ...second()];
      [prompt, answer] = [question.color(s), c];
      break;
    }
    case 'shape': {
      const c = rng.pick(COLORS);
      specs = [spec(rng, s, { color: c }), ...second({ color: other(rng, COLORS, c) })];
      [prompt, answer] = [question.shape(c), s];
      break;
    }
    case 'size': {
      const z = rng.pick(SIZES);
      specs = [spec(rng, s, { size: z }), ...second()];
      [prompt, answer] = [question.size(s), z];
      break;
    }
    case 'exist': {
      const c = rng.pick(COLORS);
      const yes = rng.next() < 0.5;
      if (yes) specs = [spec(rng, s, { color: c }), ...second()];
      else if (rng.next() < 0.5) specs = [spec(rng, s, { color: other(rng, COLORS, c) }), ...second()];
      else {
        // The asked shape is absent: the scene's shapes come from the other two.
        const [p, q] = rng.shuffle(BASE_SHAPES.filter((x) => x !== s));
        specs = two ? [spec(rng, p!), spec(rng, q!)] : [spec(rng, p!)];
      }
      [prompt, answer] = [question.exist(c, s), yes ? 'yes' : 'no'];
      break;
    }
    case 'where': {
      const position = rng.pick(POSITIONS);
      const scene = placeScene(rng, [spec(rng, s)], { kind: 'side', position });
      return scene && { scene, prompt: question.where(s), answer: position, kind };
    }
    default:
      return kind satisfies never;
  }
  const scene = sceneOf(rng, specs);
  return scene && { scene, prompt, answer, kind };
}

const COUNT_KINDS = ['count-all', 'count-color', 'count-shape', 'relation'] as const;
const MAX_OBJECTS = 5;

function countSample(rng: Rng, i: number): WorldSample | null {
  const kind = COUNT_KINDS[i % COUNT_KINDS.length]!;
  // Sizes for n objects: up to three may be large; four or five only fit when small.
  const sized = (n: number, o: Partial<ObjectSpec>): Partial<ObjectSpec> => (n >= 4 ? { ...o, size: 'small' } : o);
  let specs: ObjectSpec[];
  let prompt: string;
  let answer: string;
  let apartAlongX: [number, number][] = [];
  switch (kind) {
    case 'count-all': {
      const n = rng.int(1, MAX_OBJECTS);
      specs = Array.from({ length: n }, () => spec(rng, rng.pick(BASE_SHAPES), sized(n, {})));
      [prompt, answer] = [question.countAll(), numberWord(n)];
      break;
    }
    case 'count-color': {
      const k = rng.int(1, MAX_OBJECTS);
      const n = rng.int(k, MAX_OBJECTS);
      const c = rng.pick(COLORS);
      specs = Array.from({ length: n }, (_, j) =>
        spec(rng, rng.pick(BASE_SHAPES), sized(n, { color: j < k ? c : other(rng, COLORS, c) })),
      );
      [prompt, answer] = [question.countColor(c), numberWord(k)];
      break;
    }
    case 'count-shape': {
      const k = rng.int(1, MAX_OBJECTS);
      const n = rng.int(k, MAX_OBJECTS);
      const s = rng.pick(BASE_SHAPES);
      specs = Array.from({ length: n }, (_, j) => spec(rng, j < k ? s : other(rng, BASE_SHAPES, s), sized(n, {})));
      [prompt, answer] = [question.countShape(s), numberWord(k)];
      break;
    }
    case 'relation': {
      const n = rng.int(2, MAX_OBJECTS);
      const [a, b, rest] = rng.shuffle(BASE_SHAPES) as [Shape, Shape, Shape];
      specs = [spec(rng, a, sized(n, {})), spec(rng, b, sized(n, {}))];
      for (let j = 2; j < n; j++) specs.push(spec(rng, rest, sized(n, {})));
      apartAlongX = [[0, 1]];
      const rel = rng.pick(['left', 'right'] as const);
      const wantYes = rng.next() < 0.5;
      const scene = placeScene(rng, specs, { kind: 'free', apartAlongX });
      if (scene === null) return null;
      const find = (s: Shape): SceneObject => scene.objects.find((o) => o.shape === s)!;
      const aLeftOfB = find(a).cx < find(b).cx;
      // Naming the pair the other way round flips the truth, so the answer can be chosen first.
      const truth = rel === 'left' ? aLeftOfB : !aLeftOfB;
      const [first, then] = truth === wantYes ? [a, b] : [b, a];
      return { scene, prompt: question.relation(first, rel, then), answer: wantYes ? 'yes' : 'no', kind };
    }
    default:
      return kind satisfies never;
  }
  const scene = placeScene(rng, rng.shuffle(specs), { kind: 'free', apartAlongX });
  return scene && { scene, prompt, answer, kind };
}

function generate(task: WorldTaskName, split: Split, count: number, seed: number, one: (rng: Rng, i: number) => WorldSample | null): WorldSample[] {
  if (split !== 'train' && split !== 'test') throw new Error(`${task}: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  if (!Number.isInteger(count) || count < 0) throw new Error(`${task}: count must be an integer ≥ 0, got ${count}`);
  if (!Number.isInteger(seed)) throw new Error(`${task}: seed must be an integer, got ${seed}`);
  return Array.from({ length: count }, (_, i) => {
    const rng = new Rng(streamSeed('world', task, split, seed, i));
    return sceneInSplit(split, () => one(rng, i));
  });
}

export const WORLD_GENERATORS: Readonly<Record<WorldTaskName, (split: Split, count: number, seed: number) => WorldSample[]>> = {
  caption: (split, count, seed) => generate('caption', split, count, seed, (rng) => captionSample(rng, { first: BASE_SHAPES, second: BASE_SHAPES })),
  vqa: (split, count, seed) => generate('vqa', split, count, seed, vqaSample),
  novel: (split, count, seed) => generate('novel', split, count, seed, (rng) => captionSample(rng, { first: NOVEL_SHAPES, second: ALL_SHAPES })),
  count: (split, count, seed) => generate('count', split, count, seed, countSample),
};

/**
 * Every text a task can produce, enumerated from the same templates the generators use, so the
 * vocabulary cannot drift from the grammar. Returns whole prompts/answers; split them on ' '.
 */
export function worldTexts(task: WorldTaskName): string[] {
  const at = (p: Position): Pick<SceneObject, 'cx' | 'cy'> =>
    ({ left: { cx: 8, cy: 32 }, right: { cx: 56, cy: 32 }, top: { cx: 32, cy: 8 }, bottom: { cx: 32, cy: 56 } })[p];
  const captions = (shapes: readonly Shape[]): string[] =>
    shapes.flatMap((shape) =>
      COLORS.flatMap((color) =>
        SIZES.flatMap((size) => {
          const o = { shape, color, size };
          const one = POSITIONS.map((p) => captionOf({ objects: [{ ...o, ...at(p) }] }));
          const two = captionOf({ objects: [{ ...o, cx: 16, cy: 32 }, { ...o, cx: CANVAS - 16, cy: 32 }] });
          return [...one, two];
        }),
      ),
    );
  switch (task) {
    case 'caption':
      return [CAPTION_PROMPT, ...captions(BASE_SHAPES)];
    case 'novel':
      return [CAPTION_PROMPT, ...captions(ALL_SHAPES)];
    case 'vqa':
      return [
        ...BASE_SHAPES.flatMap((s) => [question.color(s), question.size(s), question.where(s), ...COLORS.map((c) => question.exist(c, s))]),
        ...COLORS.map((c) => question.shape(c)),
        ...COLORS, ...BASE_SHAPES, ...SIZES, ...POSITIONS, 'yes', 'no',
      ];
    case 'count':
      return [
        question.countAll(),
        ...COLORS.map((c) => question.countColor(c)),
        ...BASE_SHAPES.map((s) => question.countShape(s)),
        ...BASE_SHAPES.flatMap((a) => BASE_SHAPES.flatMap((b) => [question.relation(a, 'left', b), question.relation(a, 'right', b)])),
        ...Array.from({ length: MAX_OBJECTS }, (_, k) => numberWord(k + 1)), 'yes', 'no',
      ];
    default:
      return task satisfies never;
  }
}
