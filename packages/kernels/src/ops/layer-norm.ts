/**
 * LayerNorm over the last axis of a row-major (N, C) tensor, forward and backward. The row kernels
 * and the deterministic column reduction (norm-kernels.ts) are shared with RMSNorm (rms-norm.ts).
 *
 *   forward:  mean = x₀ + Σ_c (x − x₀) / C, with x₀ the row's first element (the shift keeps a large
 *             common offset from costing the f32 sum its precision); var = Σ_c (x − mean)² / C, a
 *             second pass (no E[x²] − E[x]² cancellation); rstd = 1/√(var + eps),
 *             x̂ = (x − mean)·rstd,  y = x̂·w + b
 *   backward: g = dy·w,  dx = rstd·(g − mean_c(g) − x̂·mean_c(g·x̂)),
 *             dw = Σ_n dy·x̂,  db = Σ_n dy
 *
 * Row kernels: tx invocations share a row (strided loop over C, then a shared-memory tree over the
 * tx partial sums) and a workgroup holds ty rows. On CPU implementations (lavapipe) tx = 1: one
 * invocation per row and no barriers at all (see normRowShape).
 *
 * dw/db are reduced over rows deterministically, without atomics: pass 1 has invocation
 * (column, row block) sum its block of rows in order into a partial (RB, 2, C) buffer; pass 2 sums
 * the RB partials of each column in order. The blocking depends only on N, so the same inputs give
 * bit-identical dw/db on a given device, run after run.
 *
 * Non-goals: normalizing over more than the last axis (reshape to (N, C) first), f16 storage,
 * in-place operation.
 *
 * Dimensions: N rows (all leading axes flattened), C channels (the normalized axis), RB row blocks.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import type { Runtime } from '../runtime/runtime.js';
import { checkNormShape, layerNormBackwardKernel, layerNormForwardKernel, normParamGrads, normRowShape } from './norm-kernels.js';

export interface LayerNormForwardOptions {
  /** [N, C]: normalize each of N rows of C channels. */
  shape: readonly [number, number];
  /** Added to the variance. Default 1e-5 (PyTorch). */
  eps?: number;
  /** Invocations sharing one row (power of two ≤ 256); default chosen per device (normRowShape). */
  threadsPerRow?: number;
}

export interface LayerNormForwardResult {
  /** (N, C) */
  y: GpuBuffer;
  /** (N,) row means, saved for backward. */
  mean: GpuBuffer;
  /** (N,) 1/√(var + eps) per row (biased variance), saved for backward. */
  rstd: GpuBuffer;
}

/**
 * y = (x − mean)·rstd·weight + bias over the last axis. `weight` and `bias` may be null
 * (PyTorch's elementwise_affine=False, or bias=False). Saves mean and rstd for the backward.
 */
export function layerNormForward(
  rt: Runtime,
  x: GpuBuffer,
  weight: GpuBuffer | null,
  bias: GpuBuffer | null,
  options: LayerNormForwardOptions,
): LayerNormForwardResult {
  const op = 'layerNormForward';
  const [n, c] = checkNormShape(rt, op, options.shape, {
    x: { buf: x, elems: 'NC' },
    weight: { buf: weight, elems: 'C' },
    bias: { buf: bias, elems: 'C' },
  });
  const eps = options.eps ?? 1e-5;
  const y = rt.createBuffer(n * c * 4);
  const mean = rt.createBuffer(n * 4);
  const rstd = rt.createBuffer(n * 4);
  if (n > 0) {
    const vec4 = c % 4 === 0;
    const cv = vec4 ? c / 4 : c;
    const params = { kind: 'layer' as const, vec4, ...normRowShape(rt, cv, n, options.threadsPerRow), weight: !!weight, bias: !!bias };
    rt.dispatch(layerNormForwardKernel, params, {
      buffers: { x, weight: weight ?? x, bias: bias ?? x, y, mean, rstd },
      uniforms: { n, cv, c, eps },
    });
  }
  return { y, mean, rstd };
}

export interface LayerNormBackwardOptions {
  shape: readonly [number, number];
  /** Whether the forward had a bias (then dbias is returned). Default true. */
  bias?: boolean;
  /** As in LayerNormForwardOptions. */
  threadsPerRow?: number;
}

export interface LayerNormBackwardResult {
  /** (N, C) */
  dx: GpuBuffer;
  /** (C,) Σ_n dy·x̂; null when the forward had no weight. */
  dweight: GpuBuffer | null;
  /** (C,) Σ_n dy; null when options.bias is false. */
  dbias: GpuBuffer | null;
}

/** Gradients of layerNormForward from its saved mean and rstd (dw/db reduced deterministically). */
export function layerNormBackward(
  rt: Runtime,
  dy: GpuBuffer,
  x: GpuBuffer,
  weight: GpuBuffer | null,
  mean: GpuBuffer,
  rstd: GpuBuffer,
  options: LayerNormBackwardOptions,
): LayerNormBackwardResult {
  const op = 'layerNormBackward';
  const [n, c] = checkNormShape(rt, op, options.shape, {
    dy: { buf: dy, elems: 'NC' },
    x: { buf: x, elems: 'NC' },
    weight: { buf: weight, elems: 'C' },
    mean: { buf: mean, elems: 'N' },
    rstd: { buf: rstd, elems: 'N' },
  });
  const dx = rt.createBuffer(n * c * 4);
  if (n > 0) {
    const vec4 = c % 4 === 0;
    const cv = vec4 ? c / 4 : c;
    const params = { kind: 'layer' as const, vec4, ...normRowShape(rt, cv, n, options.threadsPerRow), weight: !!weight, bias: false };
    rt.dispatch(layerNormBackwardKernel, params, {
      buffers: { dy, x, weight: weight ?? x, mean, rstd, dx },
      uniforms: { n, cv, c },
    });
  }
  const grads = normParamGrads(rt, 'layer', dy, x, mean, rstd, n, c, {
    dweight: !!weight,
    dbias: options.bias ?? true,
  });
  return { dx, ...grads };
}
