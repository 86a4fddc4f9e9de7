/**
 * RMSNorm (Llama, T5) over the last axis of a row-major (N, C) tensor, forward and backward.
 *
 *   forward:  rstd = 1/√(Σ_c x² / C + eps),  x̂ = x·rstd,  y = x̂·w
 *   backward: g = dy·w,  dx = rstd·(g − x̂·mean_c(g·x̂)),  dw = Σ_n dy·x̂
 *
 * The kernels are the LayerNorm ones (norm-kernels.ts, described in layer-norm.ts) specialized with no mean and no bias: one
 * workgroup per row, and dw reduced over rows in two deterministic passes (row-block partials, then
 * an ordered sum per column; no atomics).
 *
 * Non-goals: a bias (RMSNorm has none), Gemma's (1 + w) scaling (pass w + 1), f16 storage.
 *
 * Dimensions: N rows (all leading axes flattened), C channels (the normalized axis).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import type { Runtime } from '../runtime/runtime.js';
import {
  checkNormShape,
  normParamGrads,
  normRowShape,
  rmsNormBackwardKernel,
  rmsNormForwardKernel,
} from './norm-kernels.js';

export interface RmsNormForwardOptions {
  /** [N, C]: normalize each of N rows of C channels. */
  shape: readonly [number, number];
  /** Added to the mean square. Default 1e-6 (Llama). */
  eps?: number;
  /** Invocations sharing one row (power of two ≤ 256); default chosen per device (normRowShape). */
  threadsPerRow?: number;
}

export interface RmsNormForwardResult {
  /** (N, C) */
  y: GpuBuffer;
  /** (N,) 1/√(mean(x²) + eps) per row, saved for backward. */
  rstd: GpuBuffer;
}

/** y = x·rstd·weight over the last axis; `weight` may be null (no elementwise affine). Saves rstd. */
export function rmsNormForward(
  rt: Runtime,
  x: GpuBuffer,
  weight: GpuBuffer | null,
  options: RmsNormForwardOptions,
): RmsNormForwardResult {
  const [n, c] = checkNormShape(rt, 'rmsNormForward', options.shape, {
    x: { buf: x, elems: 'NC' },
    weight: { buf: weight, elems: 'C' },
  });
  const eps = options.eps ?? 1e-6;
  const y = rt.createBuffer(n * c * 4);
  const rstd = rt.createBuffer(n * 4);
  if (n > 0) {
    const vec4 = c % 4 === 0;
    const cv = vec4 ? c / 4 : c;
    const params = { kind: 'rms' as const, vec4, ...normRowShape(rt, cv, n, options.threadsPerRow), weight: !!weight, bias: false };
    rt.dispatch(rmsNormForwardKernel, params, {
      buffers: { x, weight: weight ?? x, y, rstd },
      uniforms: { n, cv, c, eps },
    });
  }
  return { y, rstd };
}

export interface RmsNormBackwardOptions {
  shape: readonly [number, number];
  /** As in RmsNormForwardOptions. */
  threadsPerRow?: number;
}

export interface RmsNormBackwardResult {
  /** (N, C) */
  dx: GpuBuffer;
  /** (C,) Σ_n dy·x̂; null when the forward had no weight. */
  dweight: GpuBuffer | null;
}

/** Gradients of rmsNormForward from its saved rstd (dw reduced deterministically). */
export function rmsNormBackward(
  rt: Runtime,
  dy: GpuBuffer,
  x: GpuBuffer,
  weight: GpuBuffer | null,
  rstd: GpuBuffer,
  options: RmsNormBackwardOptions,
): RmsNormBackwardResult {
  const [n, c] = checkNormShape(rt, 'rmsNormBackward', options.shape, {
    dy: { buf: dy, elems: 'NC' },
    x: { buf: x, elems: 'NC' },
    weight: { buf: weight, elems: 'C' },
    rstd: { buf: rstd, elems: 'N' },
  });
  const dx = rt.createBuffer(n * c * 4);
  if (n > 0) {
    const vec4 = c % 4 === 0;
    const cv = vec4 ? c / 4 : c;
    const params = { kind: 'rms' as const, vec4, ...normRowShape(rt, cv, n, options.threadsPerRow), weight: !!weight, bias: false };
    rt.dispatch(rmsNormBackwardKernel, params, {
      buffers: { dy, x, weight: weight ?? x, rstd, dx },
      uniforms: { n, cv, c },
    });
  }
  const { dweight } = normParamGrads(rt, 'rms', dy, x, null, rstd, n, c, { dweight: !!weight, dbias: false });
  return { dx, dweight };
}
