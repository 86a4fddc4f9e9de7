/**
 * A synthetic multimodal world: scenes of a few flat coloured shapes on a dark background, their
 * placement, their train/test assignment and their rendering. The question/caption generators on
 * top of it are in world-tasks.ts.
 *
 * Units. Scenes live on a 64×64 canvas of integer units (U), x to the right, y down, so a scene is
 * independent of the resolution it is rendered at; rendering at S px maps unit u to pixel u·S/64.
 * An object is an axis-aligned square box of side `EXTENT[size]` U (small 16, large 28) centred on
 * integer (cx, cy); its shape is drawn inside the box.
 *
 * Invariants every placed scene satisfies:
 * - boxes lie inside [1, 63] U (a 1 U border) and any two boxes are ≥ 2 U apart along x or along y
 *   (so objects never overlap; at S = 32 their boxes are ≥ 1 px apart);
 * - `objects` is sorted left to right by cx (ties: top to bottom), the order captions use;
 * - a one-object scene built for a side (left/right/top/bottom) has that side as `positionOf`, with
 *   a margin: the offset from the canvas centre along the side's axis exceeds the other axis's
 *   offset by ≥ 8 U and is ≥ 8 U itself.
 *
 * Splits. `sceneSplit` assigns each distinct scene (attributes + integer centres) to 'test' when
 * the FNV-1a hash of its canonical key is ≡ 0 mod 5, else to 'train'; generators reject scenes of
 * the other split, so no scene can appear in both, whatever seeds are used.
 *
 * Rendering. 4×4 supersampling per pixel gives anti-aliased, fully deterministic edges: a pixel's
 * value is background + coverage·(colour − background), so a fully covered pixel has the object's
 * exact colour.
 *
 * Non-goals: occlusion, rotation, textures, lighting, perspective.
 */
import { toModelInput, type RgbImage } from './image.js';
import { fnv1a, type Rng } from './prng.js';

export const BASE_SHAPES = ['square', 'circle', 'triangle'] as const;
/** Shapes the general suite never shows: the downstream `novel` task's new words. */
export const NOVEL_SHAPES = ['star', 'cross', 'diamond'] as const;
export const ALL_SHAPES = [...BASE_SHAPES, ...NOVEL_SHAPES] as const;
export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'white'] as const;
export const SIZES = ['small', 'large'] as const;
export const POSITIONS = ['left', 'right', 'top', 'bottom'] as const;

export type Shape = (typeof ALL_SHAPES)[number];
export type Color = (typeof COLORS)[number];
export type Size = (typeof SIZES)[number];
export type Position = (typeof POSITIONS)[number];
export type Split = 'train' | 'test';

const SHAPE_SET: Readonly<Record<Shape, true>> = Object.fromEntries(ALL_SHAPES.map((s) => [s, true])) as Record<Shape, true>;

/** 8-bit RGB of each colour; pairwise ≥ 100 apart in Euclidean RGB distance. */
export const COLOR_RGB: Readonly<Record<Color, readonly [number, number, number]>> = {
  red: [230, 40, 40],
  green: [40, 200, 70],
  blue: [50, 100, 245],
  yellow: [245, 215, 40],
  purple: [165, 70, 225],
  white: [240, 240, 240],
};
export const BACKGROUND_RGB: readonly [number, number, number] = [16, 16, 24];

export const CANVAS = 64;
/** Box side in canvas units. */
export const EXTENT: Readonly<Record<Size, number>> = { small: 16, large: 28 };
/** Smallest render size: below it a small object is under 4 px and shapes stop being legible. */
export const MIN_RENDER_SIZE = 16;

const BORDER = 1;
const GAP = 2;
const SIDE_MARGIN = 8;

export interface ObjectSpec {
  shape: Shape;
  color: Color;
  size: Size;
}
export interface SceneObject extends ObjectSpec {
  /** Box centre in canvas units (integers). */
  cx: number;
  cy: number;
}
export interface Scene {
  /** Sorted left to right (cx), ties top to bottom (cy). */
  objects: SceneObject[];
}

/**
 * Where a single object sits: the dominant axis of its offset (dx, dy) from the canvas centre
 * decides; |dx| ≥ |dy| → left (dx < 0) or right, else top (dy < 0) or bottom.
 */
export function positionOf(obj: Pick<SceneObject, 'cx' | 'cy'>): Position {
  const dx = obj.cx - CANVAS / 2;
  const dy = obj.cy - CANVAS / 2;
  if (Math.abs(dx) >= Math.abs(dy)) return dx < 0 ? 'left' : 'right';
  return dy < 0 ? 'top' : 'bottom';
}

/** Canonical text of a scene: equal keys ⇔ identical scenes (and identical renderings). */
export function sceneKey(scene: Scene): string {
  return scene.objects.map((o) => `${o.shape}:${o.color}:${o.size}:${o.cx},${o.cy}`).join('|');
}

export function sceneSplit(scene: Scene): Split {
  return fnv1a(sceneKey(scene)) % 5 === 0 ? 'test' : 'train';
}

/** Valid centre range along one axis for a box of side e: the box stays inside the border. */
const centreRange = (e: number): [number, number] => [BORDER + e / 2, CANVAS - BORDER - e / 2];

const apartX = (a: SceneObject, b: SceneObject): boolean => Math.abs(a.cx - b.cx) >= (EXTENT[a.size] + EXTENT[b.size]) / 2 + GAP;
const apartY = (a: SceneObject, b: SceneObject): boolean => Math.abs(a.cy - b.cy) >= (EXTENT[a.size] + EXTENT[b.size]) / 2 + GAP;

export type Layout =
  /** One object, placed on the given side with the margin of the file header. */
  | { kind: 'side'; position: Position }
  /** Anywhere without overlap; each listed pair of spec indices must also be apart along x. */
  | { kind: 'free'; apartAlongX?: readonly (readonly [number, number])[] };

const sortLeftToRight = (objects: SceneObject[]): SceneObject[] => objects.sort((a, b) => a.cx - b.cx || a.cy - b.cy);

/**
 * Places `specs` by rejection sampling (200 tries per object); null when the objects do not fit,
 * so the caller can draw again from the same stream and stay deterministic.
 */
export function placeScene(rng: Rng, specs: readonly ObjectSpec[], layout: Layout): Scene | null {
  if (specs.length === 0) throw new Error('placeScene: a scene needs at least one object');
  if (layout.kind === 'side') {
    if (specs.length !== 1) throw new Error(`placeScene: a 'side' layout takes exactly one object, got ${specs.length}`);
    const spec = specs[0]!;
    const [lo, hi] = centreRange(EXTENT[spec.size]);
    const c = CANVAS / 2;
    // Major offset m along the side's axis, minor offset within m − margin on the other axis.
    const m = rng.int(SIDE_MARGIN, hi - c);
    const minor = rng.int(Math.max(lo - c, -(m - SIDE_MARGIN)), Math.min(hi - c, m - SIDE_MARGIN));
    const p = layout.position;
    const horizontal = p === 'left' || p === 'right';
    const sign = p === 'left' || p === 'top' ? -1 : 1;
    const obj = horizontal ? { ...spec, cx: c + sign * m, cy: c + minor } : { ...spec, cx: c + minor, cy: c + sign * m };
    return { objects: [obj] };
  }
  const pairs = layout.apartAlongX ?? [];
  for (const [i, j] of pairs) {
    if (!(i in specs) || !(j in specs) || i === j) {
      throw new Error(`placeScene: apartAlongX pair [${i}, ${j}] must name two of the ${specs.length} objects`);
    }
  }
  const placed: SceneObject[] = [];
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i]!;
    const [lo, hi] = centreRange(EXTENT[spec.size]);
    let ok = false;
    for (let attempt = 0; attempt < 200 && !ok; attempt++) {
      const cand: SceneObject = { ...spec, cx: rng.int(lo, hi), cy: rng.int(lo, hi) };
      ok = placed.every((o, j) => {
        const mustX = pairs.some(([a, b]) => (a === i && b === j) || (a === j && b === i));
        return mustX ? apartX(o, cand) : apartX(o, cand) || apartY(o, cand);
      });
      if (ok) placed.push(cand);
    }
    if (!ok) return null;
  }
  return { objects: sortLeftToRight(placed) };
}

/** Draws scenes with `draw` until one belongs to `split`; `draw` returns null to skip a draw. */
export function sceneInSplit<T extends { scene: Scene }>(split: Split, draw: () => T | null): T {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const got = draw();
    if (got !== null && sceneSplit(got.scene) === split) return got;
  }
  throw new Error(`sceneInSplit: no '${split}' scene in 10000 draws; the generator's constraints are too tight`);
}

// Star: 10 vertices alternating outer radius ½ and inner radius ¼, first point straight up.
const STAR: readonly (readonly [number, number])[] = Array.from({ length: 10 }, (_, k) => {
  const r = k % 2 === 0 ? 0.5 : 0.25;
  const a = -Math.PI / 2 + (k * Math.PI) / 5;
  return [r * Math.cos(a), r * Math.sin(a)] as const;
});

function insidePolygon(poly: readonly (readonly [number, number])[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!;
    const [xj, yj] = poly[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Is box-relative point (x, y) ∈ [−½, ½]² (y down) inside the shape? */
export function insideShape(shape: Shape, x: number, y: number): boolean {
  if (Math.abs(x) > 0.5 || Math.abs(y) > 0.5) return false;
  switch (shape) {
    case 'square':
      return true;
    case 'circle':
      return x * x + y * y <= 0.25;
    case 'triangle': // apex at the top centre, base along the bottom edge
      return Math.abs(x) <= (y + 0.5) / 2;
    case 'diamond':
      return Math.abs(x) + Math.abs(y) <= 0.5;
    case 'cross': // two bars a third of the box wide
      return Math.abs(x) <= 1 / 6 || Math.abs(y) <= 1 / 6;
    case 'star':
      return insidePolygon(STAR, x, y);
    default:
      return shape satisfies never;
  }
}

export function checkRenderSize(who: string, size: number): void {
  if (!Number.isInteger(size) || size < MIN_RENDER_SIZE) {
    throw new Error(`${who}: size must be an integer ≥ ${MIN_RENDER_SIZE} px, got ${size}`);
  }
}

/** Renders a scene as a size×size RGB image (see the file header). */
export function renderScene(scene: Scene, size: number): RgbImage {
  checkRenderSize('renderScene', size);
  const SS = 4;
  const acc = new Float32Array(size * size * 3);
  for (let p = 0; p < size * size; p++) acc.set(BACKGROUND_RGB, p * 3);
  const pxPerUnit = size / CANVAS;
  for (const o of scene.objects) {
    const e = EXTENT[o.size];
    const rgb = COLOR_RGB[o.color];
    if (rgb === undefined || !(o.shape in SHAPE_SET)) throw new Error(`renderScene: unknown object ${JSON.stringify(o)}`);
    const x0 = Math.floor((o.cx - e / 2) * pxPerUnit);
    const x1 = Math.min(size, Math.ceil((o.cx + e / 2) * pxPerUnit));
    const y0 = Math.floor((o.cy - e / 2) * pxPerUnit);
    const y1 = Math.min(size, Math.ceil((o.cy + e / 2) * pxPerUnit));
    for (let py = Math.max(0, y0); py < y1; py++) {
      for (let px = Math.max(0, x0); px < x1; px++) {
        let hits = 0;
        for (let sy = 0; sy < SS; sy++) {
          for (let sx = 0; sx < SS; sx++) {
            // Subsample centre in units, then relative to the box centre in box sides.
            const ux = (px + (sx + 0.5) / SS) / pxPerUnit;
            const uy = (py + (sy + 0.5) / SS) / pxPerUnit;
            if (insideShape(o.shape, (ux - o.cx) / e, (uy - o.cy) / e)) hits++;
          }
        }
        if (hits === 0) continue;
        const cov = hits / (SS * SS);
        const k = (py * size + px) * 3;
        for (let c = 0; c < 3; c++) acc[k + c] = acc[k + c]! + cov * (rgb[c]! - acc[k + c]!);
      }
    }
  }
  const data = new Uint8Array(acc.length);
  for (let i = 0; i < acc.length; i++) data[i] = Math.round(acc[i]!);
  return { width: size, height: size, channels: 3, data };
}

/** The scene as model input: CHW Float32Array of length 3·size·size, values in [0, 1]. */
export function sceneImage(scene: Scene, size: number): Float32Array {
  return toModelInput(renderScene(scene, size), { size });
}

/** Pixel (column, row) whose centre is nearest the object's centre at render size `size`. */
export function centrePixel(obj: Pick<SceneObject, 'cx' | 'cy'>, size: number): [number, number] {
  checkRenderSize('centrePixel', size);
  const s = size / CANVAS;
  return [Math.round(obj.cx * s - 0.5), Math.round(obj.cy * s - 0.5)];
}
