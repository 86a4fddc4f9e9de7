/**
 * matmul: batched, row-major C[b] = op(A[b]) · op(B[b]) (+ bias) (+ C[b] when accumulating), with
 * f32 storage and f32 accumulation. op(X) is X or Xᵀ (transA / transB), so the four layouts a
 * linear layer and its backward need run without a transpose copy.
 *
 * Dimension legend: B batch, M rows of C, N columns of C, K the contracted dimension.
 *   A: (B, M, K), or (B, K, M) with transA      B: (B, K, N), or (B, N, K) with transB
 *   C: (B, M, N)                                 bias: (N,) ('n', added to every row) or (M,) ('m')
 * An operand with batch 1 is broadcast over the batch (weights shared by every batch element).
 * `sumBatch` instead contracts over the batch as well: C (1, M, N) = Σ_b op(A[b])·op(B[b]) (the
 * gradient of a broadcast operand).
 *
 * Two kernels (path 'auto' picks): where the device grants 'subgroups' with subgroups of ≥ 8 lanes
 * and N % 4 == 0, the subgroup kernels of ops/matmul-subgroup.ts (one operand shared through
 * subgroup broadcasts, vec4 loads, operands copied into textures where the shape allows, transB
 * through a pack pass; ~2–3× the tiled kernel on lavapipe);
 * otherwise the tiled kernel of ops/matmul-tiled.ts (register blocking, no workgroup memory), which
 * runs any shape on any device.
 *
 * Non-goals: f16 storage, strided (non-contiguous) operands other than the transposes, K split
 * across workgroups, more than 65535 workgroups along a dimension (LimitError from the runtime).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { dispatchSubgroupMatmul, subgroupMatmulFits } from './matmul-subgroup.js';
import { dispatchTiledMatmul, MATMUL_DEFAULT_TILE, type MatmulTile } from './matmul-tiled.js';

export { MATMUL_DEFAULT_TILE, type MatmulTile } from './matmul-tiled.js';

export type MatmulBiasMode = 'n' | 'm';

/**
 * Which kernel runs: 'subgroup' (ops/matmul-subgroup.ts; needs the 'subgroups' feature with
 * subgroups of ≥ 8 lanes and N % 4 == 0), 'tiled' (ops/matmul-tiled.ts, any device and shape), or
 * 'auto' (default: subgroup where it fits and no `tile` is given, else tiled).
 */
export type MatmulPath = 'auto' | 'tiled' | 'subgroup';

export interface MatmulOptions {
  batch: number;
  m: number;
  n: number;
  k: number;
  /** A is stored (batch, K, M). */
  transA?: boolean;
  /** B is stored (batch, N, K). */
  transB?: boolean;
  /** Batch count of A: `batch` (default) or 1 (broadcast). */
  batchA?: number;
  /** Batch count of B: `batch` (default) or 1 (broadcast). */
  batchB?: number;
  /** Added to every output: (N,) per column with biasMode 'n' (default), (M,) per row with 'm'. */
  bias?: GpuBuffer;
  biasMode?: MatmulBiasMode;
  /** C += result instead of C = result (needs `out`; gradient accumulation). */
  accumulate?: boolean;
  /** C (1, M, N) = Σ_b op(A[b])·op(B[b]) instead of a per-batch result. */
  sumBatch?: boolean;
  /** Output buffer (at least batch·M·N floats, or M·N with sumBatch); allocated if absent. */
  out?: GpuBuffer;
  /** Tiling override for the tiled kernel (benchmarks); the default is MATMUL_DEFAULT_TILE. */
  tile?: MatmulTile;
  /** Kernel choice (tests, benchmarks); default 'auto'. */
  path?: MatmulPath;
}

const elems = (x: GpuBuffer) => x.size / 4;

/** C = op(A)·op(B) (+ bias) (+ C): see the file header for layouts. Returns C (`out` if given). */
export function matmul(rt: Runtime, a: GpuBuffer, b: GpuBuffer, o: MatmulOptions): GpuBuffer {
  const { batch, m: M, n: N, k: K, transA = false, transB = false, accumulate = false, sumBatch = false } = o;
  const batchA = o.batchA ?? batch;
  const batchB = o.batchB ?? batch;
  const biasMode = o.bias ? (o.biasMode ?? 'n') : 'none';
  const tile = o.tile ?? MATMUL_DEFAULT_TILE;
  for (const [what, v] of Object.entries({ batch, m: M, n: N, k: K })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`matmul: ${what} must be a non-negative integer, got ${v}`);
  }
  for (const [what, v] of [['batchA', batchA], ['batchB', batchB]] as const) {
    if (v !== batch && v !== 1) throw new Error(`matmul: ${what} must be 1 or batch (${batch}), got ${v}`);
  }
  if (tile.tm % 4 || tile.tn % 4 || tile.tm <= 0 || tile.tn <= 0) throw new Error(`matmul: tile tm/tn must be positive multiples of 4`);
  const shapeA = transA ? [batchA, K, M] : [batchA, M, K];
  const shapeB = transB ? [batchB, N, K] : [batchB, K, N];
  const outCount = (sumBatch ? 1 : batch) * M * N;
  const need: [string, GpuBuffer | undefined, number, number[]][] = [
    ['A', a, batchA * M * K, shapeA],
    ['B', b, batchB * K * N, shapeB],
    ['bias', o.bias, biasMode === 'none' ? 0 : biasMode === 'n' ? N : M, [biasMode === 'm' ? M : N]],
    ['out', o.out, o.out ? outCount : 0, [sumBatch ? 1 : batch, M, N]],
  ];
  const maxBind = rt.limits.maxStorageBufferBindingSize;
  for (const [what, count, shape] of [['A', batchA * M * K, shapeA], ['B', batchB * K * N, shapeB], ['C', outCount, [sumBatch ? 1 : batch, M, N]]] as const) {
    if (count * 4 > maxBind) throw new LimitError('maxStorageBufferBindingSize', count * 4, maxBind, `matmul ${what} [${shape.join(',')}]`);
  }
  for (const [what, buf, count, shape] of need) {
    if (buf && elems(buf) < count) {
      throw new Error(`matmul: ${what} holds ${elems(buf)} floats, shape [${shape.join(',')}] needs ${count} (A is [${shapeA.join(',')}], B is [${shapeB.join(',')}])`);
    }
  }
  if (accumulate && !o.out) throw new Error('matmul: accumulate needs an `out` buffer to accumulate into');
  const c = o.out ?? rt.createBuffer(outCount * 4);
  // K = 0 (or sumBatch over 0 batches) still dispatches: the empty contraction gives C = bias (+ C).
  if (outCount === 0) return c;

  const path = o.path ?? 'auto';
  if (path !== 'auto' && path !== 'tiled' && path !== 'subgroup') throw new Error(`matmul: path must be 'auto', 'tiled' or 'subgroup', got ${String(path)}`);
  const fits = subgroupMatmulFits(rt, { m: M, n: N });
  if (path === 'subgroup' && !fits) {
    throw new Error(`matmul: path 'subgroup' needs the 'subgroups' feature with subgroups of ≥ 8 lanes and N % 4 == 0 (N = ${N}, subgroups ${rt.has('subgroups') ? 'granted' : 'not granted'})`);
  }
  const bind = (buf: GpuBuffer, count: number) => ({ buffer: buf, offset: 0, size: Math.min(buf.capacity, Math.ceil(Math.max(count, 4) / 4) * 16) });
  const perGroup = sumBatch ? batch : 1;
  const uniforms = {
    M,
    N,
    K,
    strideA: batchA === 1 ? 0 : M * K,
    strideB: batchB === 1 ? 0 : K * N,
    strideC: sumBatch ? 0 : M * N,
    perGroup,
    batchC: sumBatch ? 1 : batch,
    biasMode: biasMode === 'none' ? 0 : biasMode === 'n' ? 1 : 2,
    accumulate: accumulate ? 1 : 0,
  };
  const buffers = {
    a: bind(a, batchA * M * K),
    b: bind(b, batchB * K * N),
    bias: o.bias ? bind(o.bias, biasMode === 'n' ? N : M) : bind(a, batchA * M * K),
    c: bind(c, outCount),
  };
  if (path === 'subgroup' || (path === 'auto' && fits && !o.tile)) {
    dispatchSubgroupMatmul(rt, { ...buffers, uniforms, transA, transB, batchB });
    return c;
  }
  dispatchTiledMatmul(rt, { ...buffers, uniforms, transA, transB, tile });
  return c;
}

export interface MatmulDims {
  batch: number;
  m: number;
  n: number;
  k: number;
  batchA: number;
  batchB: number;
}

/**
 * Dims of op(A)·op(B) from tensor shapes: [M, K] / [B, M, K] for A ([K, M] with transA), [K, N] /
 * [B, K, N] for B ([N, K] with transB); a 2-D operand or batch 1 is broadcast. Throws on a mismatch.
 */
export function matmulDims(shapeA: readonly number[], shapeB: readonly number[], o: { transA?: boolean; transB?: boolean } = {}): MatmulDims {
  const shapes = `(A is [${shapeA.join(',')}], B is [${shapeB.join(',')}])`;
  for (const s of [shapeA, shapeB]) {
    if (s.length < 2 || s.length > 3 || s.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(`matmul: operands must be 2-D or 3-D with non-negative integer dims ${shapes}`);
    }
  }
  const [ba, ra, ca] = shapeA.length === 3 ? shapeA : [1, ...shapeA];
  const [bb, rb, cb] = shapeB.length === 3 ? shapeB : [1, ...shapeB];
  const [m, ka] = o.transA ? [ca!, ra!] : [ra!, ca!];
  const [kb, n] = o.transB ? [cb!, rb!] : [rb!, cb!];
  if (ka !== kb) throw new Error(`matmul: inner dimensions differ ${shapes}`);
  if (ba !== bb && ba !== 1 && bb !== 1) throw new Error(`matmul: batch dimensions differ ${shapes}`);
  return { batch: Math.max(ba!, bb!), m, n, k: ka, batchA: ba!, batchB: bb! };
}

export interface MatmulBackwardOptions extends Omit<MatmulOptions, 'bias' | 'biasMode' | 'out' | 'accumulate' | 'sumBatch'> {
  /** Which gradients to compute (default: both, and dBias only if asked). */
  needA?: boolean;
  needB?: boolean;
  needBias?: boolean;
  /** Gradient buffers to write, or to add into with `accumulate`. */
  outA?: GpuBuffer;
  outB?: GpuBuffer;
  outBias?: GpuBuffer;
  accumulate?: boolean;
}

export interface MatmulGrads {
  /** Same layout as A (transposed if transA; batch 1 when A was broadcast). */
  dA?: GpuBuffer;
  /** Same layout as B. */
  dB?: GpuBuffer;
  /** (N,): Σ over batch and rows of dC (for biasMode 'n'). */
  dBias?: GpuBuffer;
}

/**
 * The backward of `matmul` given dC (batch, M, N), as matmuls of the saved inputs A and B:
 *   dop(A) = dC·op(B)ᵀ and dop(B) = op(A)ᵀ·dC, laid out like A and B (a transposed operand gets the
 * transposed product: dA = op(B)·dCᵀ when transA, dB = dCᵀ·op(A) when transB). A broadcast operand's
 * gradient sums over the batch (sumBatch). dBias = 1ᵀ·dC over all batch·M rows.
 */
export function matmulBackward(rt: Runtime, a: GpuBuffer, b: GpuBuffer, dC: GpuBuffer, o: MatmulBackwardOptions): MatmulGrads {
  const { batch, m: M, n: N, k: K, transA = false, transB = false, accumulate = false, tile, path } = o;
  const batchA = o.batchA ?? batch;
  const batchB = o.batchB ?? batch;
  const grads: MatmulGrads = {};
  const common = { batch, tile, path, accumulate };
  if (o.needA ?? true) {
    const sumBatch = batchA === 1 && batch > 1;
    grads.dA = transA
      ? matmul(rt, b, dC, { ...common, m: K, n: M, k: N, transA: transB, transB: true, batchA: batchB, batchB: batch, sumBatch, out: o.outA })
      : matmul(rt, dC, b, { ...common, m: M, n: K, k: N, transA: false, transB: !transB, batchA: batch, batchB, sumBatch, out: o.outA });
  }
  if (o.needB ?? true) {
    const sumBatch = batchB === 1 && batch > 1;
    grads.dB = transB
      ? matmul(rt, dC, a, { ...common, m: N, n: K, k: M, transA: true, transB: transA, batchA: batch, batchB: batchA, sumBatch, out: o.outB })
      : matmul(rt, a, dC, { ...common, m: K, n: N, k: M, transA: !transA, transB: false, batchA, batchB: batch, sumBatch, out: o.outB });
  }
  if (o.needBias) {
    // dBias (1, N) = ones (1, batch·M) · dC (batch·M, N)
    const ones = rt.upload(new Float32Array(batch * M).fill(1));
    grads.dBias = matmul(rt, ones, dC, { batch: 1, m: 1, n: N, k: batch * M, accumulate, out: o.outBias, tile, path });
    rt.release(ones);
  }
  return grads;
}
