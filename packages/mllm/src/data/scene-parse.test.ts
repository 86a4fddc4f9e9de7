/**
 * Dense scene-parsing targets: each patch is labelled with the object whose box holds its centre
 * (checked on hand-placed scenes against boxes worked out by hand), and the stage-1 scene stream
 * stays inside its split and the base shapes.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from './prng.js';
import { PARSE_CLASSES, PARSE_HEADS, parseScene, parseTargets } from './scene-parse.js';
import { BASE_SHAPES, sceneSplit, type Scene } from './world.js';

/** The patches (gx, gy) whose label in `head` is not 'none', as "gx,gy" strings. */
const labelled = (t: Int32Array, g: number): string[] => [...t].flatMap((v, i) => (v ? [`${i % g},${Math.floor(i / g)}`] : []));

describe('parseTargets', () => {
  it('labels the patches whose centre lies in an object box, and only those', () => {
    // large box: side 28 U centred on (32, 32) → [18, 46]; at 32 px with 4 px patches the patch
    // centres sit at 4, 12, 20, … 60 U, so columns and rows 2..5 are inside
    const scene: Scene = { objects: [{ shape: 'circle', color: 'blue', size: 'large', cx: 32, cy: 32 }] };
    const t = parseTargets(scene, 32, 4);
    const inside = [2, 3, 4, 5].flatMap((y) => [2, 3, 4, 5].map((x) => `${x},${y}`));
    for (const head of PARSE_HEADS) expect(labelled(t[head], 8).sort(), head).toEqual(inside.sort());
    expect(t.shape[3 * 8 + 3]).toBe(PARSE_CLASSES.shape.indexOf('circle'));
    expect(t.color[3 * 8 + 3]).toBe(PARSE_CLASSES.color.indexOf('blue'));
    expect(t.size[3 * 8 + 3]).toBe(PARSE_CLASSES.size.indexOf('large'));
    expect(t.shape[0]).toBe(0);
  });

  it('keeps two objects apart and works at other patch grids', () => {
    // small box [2, 18] × [40, 56] and large box [34, 62] × [2, 30]
    const scene: Scene = {
      objects: [
        { shape: 'triangle', color: 'red', size: 'small', cx: 10, cy: 48 },
        { shape: 'square', color: 'white', size: 'large', cx: 48, cy: 16 },
      ],
    };
    const t = parseTargets(scene, 32, 8); // 4×4 grid, centres at 8, 24, 40, 56 U
    const name = (i: number) => `${PARSE_CLASSES.shape[t.shape[i]!]}/${PARSE_CLASSES.color[t.color[i]!]}/${PARSE_CLASSES.size[t.size[i]!]}`;
    expect(name(3 * 4 + 0)).toBe('triangle/red/small'); // centre (8, 56)
    expect(name(2 * 4 + 0)).toBe('triangle/red/small'); // (8, 40)
    expect(name(0 * 4 + 2)).toBe('square/white/large'); // (40, 8)
    expect(name(1 * 4 + 3)).toBe('square/white/large'); // (56, 24)
    expect(labelled(t.shape, 4)).toHaveLength(6);
    expect(name(1 * 4 + 1)).toBe('none/none/none');
  });

  it('names what it cannot label', () => {
    const scene: Scene = { objects: [{ shape: 'star', color: 'red', size: 'small', cx: 32, cy: 32 }] };
    expect(() => parseTargets(scene, 32, 4)).toThrow("parseTargets: 'star' is not a base shape (square, circle, triangle)");
    expect(() => parseTargets(scene, 32, 5)).toThrow('parseTargets: patch size 5 must divide the image size 32');
  });
});

describe('parseScene', () => {
  it('draws one or two base-shape objects from the requested split, deterministically', () => {
    const draw = (seed: number, split: 'train' | 'test') => {
      const rng = new Rng(seed);
      return Array.from({ length: 40 }, () => parseScene(rng, split));
    };
    const train = draw(1, 'train');
    expect(draw(1, 'train')).toEqual(train);
    expect(train.every((s) => sceneSplit(s) === 'train')).toBe(true);
    expect(draw(1, 'test').every((s) => sceneSplit(s) === 'test')).toBe(true);
    expect(new Set(train.map((s) => s.objects.length))).toEqual(new Set([1, 2]));
    expect(train.flatMap((s) => s.objects).every((o) => (BASE_SHAPES as readonly string[]).includes(o.shape))).toBe(true);
  });
});
