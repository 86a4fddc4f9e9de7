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
 * Storage: A and B f32, or f16 where the device grants 'shader-f16' (dtypeA / dtypeB; widened to
 * f32 on load: through an rgba16float texture on the subgroup path where the shape allows, else by
 * the tiled kernel); bias and C are f32, and accumulation is f32 throughout.
 *
 * Non-goals: f16 C or bias, strided (non-contiguous) operands other than the transposes, K split
 * across workgroups, more than 65535 workgroups along a dimension (LimitError from the runtime).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { dispatchSubgroupMatmul, subgroupMatmulFits, textureFits } from './matmul-subgroup.js';
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
  /**
   * Storage type of A / B (default 'f32'). 'f16' (needs the device's 'shader-f16' feature) halves
   * the operand's memory; it is widened to f32 on load, and accumulation, bias and C stay f32.
   * An f16 operand runs the subgroup path where it can be read as an rgba16float texture
   * (untransposed, rows of a multiple of 128 halves), else the tiled kernel.
   */
  dtypeA?: MatmulDtype;
  dtypeB?: MatmulDtype;
}

export type MatmulDtype = 'f32' | 'f16';

/** C = op(A)·op(B) (+ bias) (+ C): see the file header for layouts. Returns C (`out` if given). */
export function matmul(rt: Runtime, a: GpuBuffer, b: GpuBuffer, o: MatmulOptions): GpuBuffer {
  const { batch, m: M, n: N, k: K, transA = false, transB = false, accumulate = false, sumBatch = false } = o;
  const batchA = o.batchA ?? batch;
  const batchB = o.batchB ?? batch;
  const biasMode = o.bias ? (o.biasMode ?? 'n') : 'none';
  const tile = o.tile ?? MATMUL_DEFAULT_TILE;
  const dtypeA = o.dtypeA ?? 'f32';
  const dtypeB = o.dtypeB ?? 'f32';
  for (const [what, v] of [['dtypeA', dtypeA], ['dtypeB', dtypeB]] as const) {
    if (v !== 'f32' && v !== 'f16') throw new Error(`matmul: ${what} must be 'f32' or 'f16', got ${String(v)}`);
    if (v === 'f16' && !rt.has('shader-f16')) throw new Error(`matmul: ${what} 'f16' needs the 'shader-f16' feature, which this device does not grant`);
  }
  const bytesA = dtypeA === 'f16' ? 2 : 4;
  const bytesB = dtypeB === 'f16' ? 2 : 4;
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
  const need: [string, GpuBuffer | undefined, number, number[], number][] = [
    ['A', a, batchA * M * K, shapeA, bytesA],
    ['B', b, batchB * K * N, shapeB, bytesB],
    ['bias', o.bias, biasMode === 'none' ? 0 : biasMode === 'n' ? N : M, [biasMode === 'm' ? M : N], 4],
    ['out', o.out, o.out ? outCount : 0, [sumBatch ? 1 : batch, M, N], 4],
  ];
  const maxBind = rt.limits.maxStorageBufferBindingSize;
  for (const [what, bytes, shape] of [['A', batchA * M * K * bytesA, shapeA], ['B', batchB * K * N * bytesB, shapeB], ['C', outCount * 4, [sumBatch ? 1 : batch, M, N]]] as const) {
    if (bytes > maxBind) throw new LimitError('maxStorageBufferBindingSize', bytes, maxBind, `matmul ${what} [${shape.join(',')}]`);
  }
  for (const [what, buf, count, shape, bytes] of need) {
    if (buf && Math.floor(buf.size / bytes) < count) {
      const unit = bytes === 2 ? 'f16 values' : 'floats';
      throw new Error(`matmul: ${what} holds ${Math.floor(buf.size / bytes)} ${unit}, shape [${shape.join(',')}] needs ${count} (A is [${shapeA.join(',')}], B is [${shapeB.join(',')}])`);
    }
  }
  if (accumulate && !o.out) throw new Error('matmul: accumulate needs an `out` buffer to accumulate into');
  const c = o.out ?? rt.createBuffer(outCount * 4);
  // K = 0 (or sumBatch over 0 batches) still dispatches: the empty contraction gives C = bias (+ C).
  if (outCount === 0) return c;

  const path = o.path ?? 'auto';
  if (path !== 'auto' && path !== 'tiled' && path !== 'subgroup') throw new Error(`matmul: path must be 'auto', 'tiled' or 'subgroup', got ${String(path)}`);
  const [f16A, f16B] = [dtypeA === 'f16', dtypeB === 'f16'];
  // f16 operands take the subgroup path only through a texture (rows layout, untransposed).
  const halfFits =
    (!f16A || (!transA && K % 4 === 0 && textureFits(rt, { rowFloats: K, rows: M, layers: batchA, offset: 0, f16: true }))) &&
    (!f16B || (!transB && K % 4 === 0 && textureFits(rt, { rowFloats: N, rows: K, layers: batchB, offset: 0, f16: true })));
  const fits = subgroupMatmulFits(rt, { m: M, n: N }) && halfFits;
  if (path === 'subgroup' && !fits) {
    if (!halfFits) {
      throw new Error(
        `matmul: path 'subgroup' reads an f16 operand only untransposed, with K % 4 == 0 and rows of a multiple of 128 halves within the texture limits (dtypeA ${dtypeA}, dtypeB ${dtypeB}, transA ${transA}, transB ${transB}, K = ${K}, N = ${N})`,
      );
    }
    throw new Error(`matmul: path 'subgroup' needs the 'subgroups' feature with subgroups of ≥ 8 lanes and N % 4 == 0 (N = ${N}, subgroups ${rt.has('subgroups') ? 'granted' : 'not granted'})`);
  }
  /** A binding of `count` elements of `bytes` each, sized in whole vec4s. */
  const bind = (buf: GpuBuffer, count: number, bytes = 4) => ({ buffer: buf, offset: 0, size: Math.min(buf.capacity, Math.ceil(Math.max(count, 4) / 4) * 4 * bytes) });
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
    a: bind(a, batchA * M * K, bytesA),
    b: bind(b, batchB * K * N, bytesB),
    bias: o.bias ? bind(o.bias, biasMode === 'n' ? N : M) : bind(a, batchA * M * K, bytesA),
    c: bind(c, outCount),
  };
  if (path === 'subgroup' || (path === 'auto' && fits && !o.tile)) {
    dispatchSubgroupMatmul(rt, { ...buffers, uniforms, transA, transB, batchB, f16A, f16B });
    return c;
  }
  dispatchTiledMatmul(rt, { ...buffers, uniforms, transA, transB, tile, f16A: dtypeA === 'f16', f16B: dtypeB === 'f16' });
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
  // Gradients are f32; an f16 input stays f16 where it is an operand of a gradient product.
  const { dtypeA = 'f32', dtypeB = 'f32' } = o;
  const batchA = o.batchA ?? batch;
  const batchB = o.batchB ?? batch;
  const grads: MatmulGrads = {};
  const common = { batch, tile, path, accumulate };
  if (o.needA ?? true) {
    const sumBatch = batchA === 1 && batch > 1;
    grads.dA = transA
      ? matmul(rt, b, dC, { ...common, m: K, n: M, k: N, transA: transB, transB: true, batchA: batchB, batchB: batch, sumBatch, out: o.outA, dtypeA: dtypeB })
      : matmul(rt, dC, b, { ...common, m: M, n: K, k: N, transA: false, transB: !transB, batchA: batch, batchB, sumBatch, out: o.outA, dtypeB });
  }
  if (o.needB ?? true) {
    const sumBatch = batchB === 1 && batch > 1;
    grads.dB = transB
      ? matmul(rt, dC, a, { ...common, m: N, n: K, k: M, transA: true, transB: transA, batchA: batch, batchB: batchA, sumBatch, out: o.outB, dtypeB: dtypeA })
      : matmul(rt, a, dC, { ...common, m: K, n: N, k: M, transA: !transA, transB: false, batchA, batchB: batch, sumBatch, out: o.outB, dtypeA });
  }
  if (o.needBias) {
    // dBias (1, N) = ones (1, batch·M) · dC (batch·M, N)
    const ones = rt.upload(new Float32Array(batch * M).fill(1));
    grads.dBias = matmul(rt, ones, dC, { batch: 1, m: 1, n: N, k: batch * M, accumulate, out: o.outBias, tile, path });
    rt.release(ones);
  }
  return grads;
}
