/**
 * Dense scene-parsing targets: the first stage of pre-training (train/vision-pretrain.ts) teaches
 * the vision tower what is where before the language model ever sees an image, the part a CLIP
 * pre-training plays for LLaVA. Each patch of a rendered scene is labelled with the shape, colour
 * and size of the object whose box contains the patch's centre, or 'none' for background.
 *
 * Why: trained only through the language model's answer loss, the ViT learned colour, size and
 * position but not shape (held-out "what shape …" at chance after 4000 steps; it answered from an
 * object's area). With this stage first, the same tower names the shape.
 *
 * Scenes: one or two objects of the base shapes (never the novel ones, and never more than two, so
 * the downstream `novel` and `count` tasks stay unseen), placed anywhere without overlap, from the
 * requested split only (world.ts sceneSplit), so held-out scenes stay held out.
 *
 * Non-goals: labels by exact shape coverage (a patch in the corner of a circle's box is labelled
 * circle: the patch must know its object, not only its own pixels), instance ids, the novel shapes.
 */
import { BASE_SHAPES, CANVAS, COLORS, EXTENT, SIZES, placeScene, sceneSplit, type Scene, type Split } from './world.js';
import type { Rng } from './prng.js';

/** Class names of each parse head; index 0 is background. */
export const PARSE_CLASSES = {
  shape: ['none', ...BASE_SHAPES],
  color: ['none', ...COLORS],
  size: ['none', ...SIZES],
} as const;
export type ParseHead = keyof typeof PARSE_CLASSES;
export const PARSE_HEADS = Object.keys(PARSE_CLASSES) as ParseHead[];

/** Per-patch class indices of each head, patches in row-major order (length (size/patchSize)²). */
export type ParseTargets = Record<ParseHead, Int32Array>;

/**
 * Labels of every patch of `scene` rendered at `size` px with `patchSize` px patches (file comment).
 * Boxes never overlap (world.ts), so at most one object contains a patch centre.
 */
export function parseTargets(scene: Scene, size: number, patchSize: number): ParseTargets {
  if (!Number.isInteger(size / patchSize) || patchSize < 1) throw new Error(`parseTargets: patch size ${patchSize} must divide the image size ${size}`);
  const g = size / patchSize;
  const out: ParseTargets = { shape: new Int32Array(g * g), color: new Int32Array(g * g), size: new Int32Array(g * g) };
  const unitsPerPx = CANVAS / size;
  for (let gy = 0; gy < g; gy++) {
    for (let gx = 0; gx < g; gx++) {
      const ux = (gx + 0.5) * patchSize * unitsPerPx;
      const uy = (gy + 0.5) * patchSize * unitsPerPx;
      const o = scene.objects.find((q) => Math.abs(ux - q.cx) <= EXTENT[q.size] / 2 && Math.abs(uy - q.cy) <= EXTENT[q.size] / 2);
      if (!o) continue;
      const i = gy * g + gx;
      const shape = BASE_SHAPES.indexOf(o.shape as (typeof BASE_SHAPES)[number]);
      if (shape < 0) throw new Error(`parseTargets: '${o.shape}' is not a base shape (${BASE_SHAPES.join(', ')})`);
      out.shape[i] = 1 + shape;
      out.color[i] = 1 + COLORS.indexOf(o.color);
      out.size[i] = 1 + SIZES.indexOf(o.size);
    }
  }
  return out;
}

/** A scene of one or two base-shape objects in `split`, drawn from `rng` (file comment). */
export function parseScene(rng: Rng, split: Split): Scene {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const specs = Array.from({ length: rng.int(1, 2) }, () => ({ shape: rng.pick(BASE_SHAPES), color: rng.pick(COLORS), size: rng.pick(SIZES) }));
    const scene = placeScene(rng, specs, { kind: 'free' });
    if (scene && sceneSplit(scene) === split) return scene;
  }
  throw new Error(`parseScene: no '${split}' scene in 10000 draws`);
}
