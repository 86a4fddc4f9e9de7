/**
 * Float64 CPU reference of `maskedAdamW` and `gradNormSquared` (shared by adamw.test.ts and
 * bench/optim.ts). Same math and the same skip / mask semantics as the kernels, on one arena laid out
 * by `segmentLayout`; padding elements are never touched. Test and bench only.
 * Dimensions: N arena elements, T tensors.
 */
import type { SegmentLayout } from './segments.js';

export interface AdamWReferenceState {
  w: Float64Array; // (N,)
  m: Float64Array; // (N,)
  v: Float64Array; // (N,)
}

export type AdamWReferenceMask =
  | { mode: 'none' }
  | { mode: 'bits'; bits: Uint32Array } // (⌈N/32⌉,)
  | { mode: 'spider'; w0: ArrayLike<number>; c: ArrayLike<number> }; // (N,) each

export interface AdamWReferenceOptions {
  step: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** A clip record is used: scale to this global norm (Infinity: scale 1) and skip on a non-finite
   * norm. Omitted: no clip record (scale 1, NaN propagates per element). */
  maxNorm?: number;
  mask?: AdamWReferenceMask;
}

/** Σg² over the tensors' elements (padding excluded). */
export function gradNormSquaredReference(g: ArrayLike<number>, layout: SegmentLayout): number {
  let s = 0;
  layout.offsets.forEach((off, t) => {
    for (let i = off; i < off + layout.lengths[t]!; i++) s += g[i]! * g[i]!;
  });
  return s;
}

/** One step in place on `state`; returns the gradient norm, the scale used and whether it skipped. */
export function adamwReference(
  state: AdamWReferenceState,
  g: ArrayLike<number>,
  layout: SegmentLayout,
  hyper: ArrayLike<number>, // (T, 2): lr, wd
  options: AdamWReferenceOptions,
): { norm: number; scale: number; skipped: boolean } {
  const { step, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, maxNorm, mask = { mode: 'none' } } = options;
  const norm = Math.sqrt(gradNormSquaredReference(g, layout));
  let scale = 1;
  if (maxNorm !== undefined) {
    if (!Number.isFinite(norm)) return { norm, scale: 1, skipped: true };
    scale = Math.min(1, maxNorm / (norm + 1e-6));
  }
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const { w, m, v } = state;
  layout.offsets.forEach((off, t) => {
    const lr = hyper[2 * t]!;
    const wd = hyper[2 * t + 1]!;
    for (let i = off; i < off + layout.lengths[t]!; i++) {
      if (mask.mode === 'bits' && ((mask.bits[i >>> 5]! >>> (i & 31)) & 1) === 0) continue;
      const gi = g[i]! * scale;
      m[i] = beta1 * m[i]! + (1 - beta1) * gi;
      v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
      let wn = w[i]! - lr * (m[i]! / bc1 / (Math.sqrt(v[i]! / bc2) + eps) + wd * w[i]!);
      if (mask.mode === 'spider') wn = mask.w0[i]! + mask.c[i]! * (wn - mask.w0[i]!);
      w[i] = wn;
    }
  });
  return { norm, scale, skipped: false };
}
