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
 * and N % 4 == 0, the subgroup kernel of ops/matmul-subgroup.ts (A shared through subgroup
 * broadcasts, B as vec4 loads, transB through a pack pass; ~1.5× this file's kernel on lavapipe);
 * otherwise the tiled kernel below, which runs any shape on any device.
 *
 * Tiled kernel design (see bench/matmul.ts for the numbers behind it): no workgroup memory and no
 * barriers. Each invocation owns a TM×TN block of C (default 8×4) held in vec4 registers and walks
 * K four at a time; for every k-step it loads a TM×4 fragment of A and a 4×TN fragment of B straight
 * from global memory, as vec4s along whichever dimension is contiguous in memory (the load
 * expressions are specialized for transA/transB). On lavapipe (llvmpipe) a workgroup barrier costs
 * more than the reuse that shared-memory tiling buys, and neighbouring invocations' loads hit the
 * CPU caches anyway; on real GPUs the same register blocking is the inner loop of every fast GEMM
 * and the L1/L2 caches play the role of the shared tile. Out-of-range rows/columns load clamped
 * (in-bounds, unused) data and are never stored; a K tail (K mod 4) runs a scalar step.
 *
 * Non-goals: f16 storage, strided (non-contiguous) operands other than the transposes, K split
 * across workgroups, more than 65535 workgroups along a dimension (LimitError from the runtime).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, type Kernel } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import { dispatchSubgroupMatmul, subgroupMatmulFits } from './matmul-subgroup.js';

/** Register/workgroup tiling: each invocation computes tm×tn outputs; a workgroup is wgx×wgy invocations. */
export interface MatmulTile {
  /** Rows of C per invocation (multiple of 4). */
  tm: number;
  /** Columns of C per invocation (multiple of 4). */
  tn: number;
  wgx: number;
  wgy: number;
}

/**
 * The library default, chosen by bench/matmul.ts on lavapipe: 8×4 outputs per invocation, 64×1
 * invocations per workgroup (one workgroup = 8 rows × 256 columns of C). With one row of
 * invocations, the A loads are workgroup-uniform (a broadcast on GPUs, and llvmpipe can load a
 * uniform address once instead of per lane) and the B loads are contiguous vec4s across
 * neighbouring invocations. More than 8×4 accumulators per invocation spills registers on llvmpipe
 * (12×4 and 16×4 run at half speed). Best-of-N on 1024³ (busy 2-core host, variants interleaved):
 * 8×4@64×1 14–16 GFLOP/s, 4×8@8×8 12–14, 8×8@8×8 11–13, 4×4@8×8 10–12; workgroup-memory tiling
 * 4.8 (64×64 tiles, 4×4 per invocation) and 0.9 (16×16); naive 1.8.
 */
export const MATMUL_DEFAULT_TILE: MatmulTile = { tm: 8, tn: 4, wgx: 64, wgy: 1 };

export type MatmulBiasMode = 'n' | 'm';

/**
 * Which kernel runs: 'subgroup' (ops/matmul-subgroup.ts; needs the 'subgroups' feature with
 * subgroups of ≥ 8 lanes and N % 4 == 0), 'tiled' (this file's kernel, any device and shape), or
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

interface MatmulParams {
  tile: MatmulTile;
  transA: boolean;
  transB: boolean;
  /** Operands bound as array<vec4<f32>> (their contiguous dimension is a multiple of 4). */
  vecA: boolean;
  vecB: boolean;
  vecC: boolean;
}

type MatmulKernel = Kernel<MatmulParams, 'a' | 'b' | 'bias' | 'c', MatmulUniform>;
type MatmulUniform = 'M' | 'N' | 'K' | 'strideA' | 'strideB' | 'strideC' | 'perGroup' | 'batchC' | 'biasMode' | 'accumulate';

const f32or4 = (v: boolean) => (v ? 'array<vec4<f32>>' : 'array<f32>');
const kernels = new Map<string, MatmulKernel>();

/** One kernel spec per combination of binding types (the spec's binding types are fixed). */
function kernelFor(p: MatmulParams): MatmulKernel {
  const name = `matmul_${p.vecA ? 'a4' : 'a1'}${p.vecB ? 'b4' : 'b1'}${p.vecC ? 'c4' : 'c1'}`;
  let kern = kernels.get(name);
  if (!kern) {
    kern = defineKernel({
      name,
      bindings: [
        { name: 'a', type: f32or4(p.vecA), access: 'read' }, // (B|1, M, K) or (B|1, K, M)
        { name: 'b', type: f32or4(p.vecB), access: 'read' }, // (B|1, K, N) or (B|1, N, K)
        { name: 'bias', type: 'array<f32>', access: 'read' }, // (N,) or (M,); A as a dummy without bias
        { name: 'c', type: f32or4(p.vecC), access: 'read_write' }, // (B, M, N)
      ],
      uniforms: ['M', 'N', 'K', 'strideA', 'strideB', 'strideC', 'perGroup', 'batchC', 'biasMode', 'accumulate'].map((n) => ({ name: n as MatmulUniform, type: 'u32' as const })),
      workgroupSize: (q) => [q.tile.wgx, q.tile.wgy],
      dispatch: (q, u) => [Math.ceil(u.N / (q.tile.tn * q.tile.wgx)), Math.ceil(u.M / (q.tile.tm * q.tile.wgy)), u.batchC],
      key: (q) =>
        `${q.tile.tm}x${q.tile.tn}@${q.tile.wgx}x${q.tile.wgy}|${q.transA ? 'T' : 'N'}${q.transB ? 'T' : 'N'}`,
      wgsl: matmulWgsl,
    });
    kernels.set(name, kern);
  }
  return kern;
}

/** WGSL for one specialization; every loop over the register tile is unrolled here in TypeScript. */
function matmulWgsl(p: MatmulParams): string {
  const { tm: TM, tn: TN } = p.tile;
  const G = TN / 4; // vec4 column groups per row
  const L: string[] = [];
  const rows = [...Array(TM).keys()];
  const groups = [...Array(G).keys()];
  const cols = [...Array(TN).keys()];
  // Per-invocation base offsets (elements) that do not change along K.
  if (!p.transA) for (const r of rows) L.push(`let aRow${r} = aBase + min(m0 + ${r}u, u.M - 1u) * u.K;`);
  else if (p.vecA) for (let g = 0; g < TM / 4; g++) L.push(`let aCol${g} = aBase + min(m0 + ${4 * g}u, u.M - 4u);`);
  else for (const r of rows) L.push(`let aColS${r} = aBase + min(m0 + ${r}u, u.M - 1u);`);
  if (p.transB) for (const c of cols) L.push(`let bRow${c} = bBase + min(n0 + ${c}u, u.N - 1u) * u.K;`);
  else if (p.vecB) for (const g of groups) L.push(`let bCol${g} = bBase + min(n0 + ${4 * g}u, u.N - 4u);`);
  else for (const c of cols) L.push(`let bColS${c} = bBase + min(n0 + ${c}u, u.N - 1u);`);
  const pre = L.join('\n      ');

  // A(r, kk) and B(kk, c) expressions after the loads of one k-step of width W (4, or 1 for the tail).
  const step = (W: number): string => {
    const S: string[] = [];
    const a: string[][] = rows.map(() => []);
    const b: string[][] = [...Array(W)].map(() => []);
    if (!p.transA) {
      for (const r of rows) {
        if (W === 4) {
          S.push(p.vecA ? `let a${r} = a[(aRow${r} + k) >> 2u];` : `let a${r} = vec4<f32>(a[aRow${r} + k], a[aRow${r} + k + 1u], a[aRow${r} + k + 2u], a[aRow${r} + k + 3u]);`);
          for (let kk = 0; kk < W; kk++) a[r]![kk] = `a${r}[${kk}]`;
        } else {
          S.push(`let a${r} = a[aRow${r} + k];`);
          a[r]![0] = `a${r}`;
        }
      }
    } else {
      for (let kk = 0; kk < W; kk++) {
        if (p.vecA) {
          for (let g = 0; g < TM / 4; g++) {
            S.push(`let a${kk}_${g} = a[(aCol${g} + (k + ${kk}u) * u.M) >> 2u];`);
            for (let j = 0; j < 4; j++) a[4 * g + j]![kk] = `a${kk}_${g}[${j}]`;
          }
        } else {
          for (const r of rows) {
            S.push(`let a${kk}_${r} = a[aColS${r} + (k + ${kk}u) * u.M];`);
            a[r]![kk] = `a${kk}_${r}`;
          }
        }
      }
    }
    if (!p.transB) {
      for (let kk = 0; kk < W; kk++) {
        for (const g of groups) {
          if (p.vecB) S.push(`let b${kk}_${g} = b[(bCol${g} + (k + ${kk}u) * u.N) >> 2u];`);
          else {
            const e = [0, 1, 2, 3].map((j) => `b[bColS${4 * g + j} + (k + ${kk}u) * u.N]`);
            S.push(`let b${kk}_${g} = vec4<f32>(${e.join(', ')});`);
          }
          b[kk]![g] = `b${kk}_${g}`;
        }
      }
    } else {
      for (const c of cols) {
        if (W === 4) {
          S.push(p.vecB ? `let b${c} = b[(bRow${c} + k) >> 2u];` : `let b${c} = vec4<f32>(b[bRow${c} + k], b[bRow${c} + k + 1u], b[bRow${c} + k + 2u], b[bRow${c} + k + 3u]);`);
        } else S.push(`let b${c} = b[bRow${c} + k];`);
      }
      for (let kk = 0; kk < W; kk++) {
        for (const g of groups) {
          const e = [0, 1, 2, 3].map((j) => (W === 4 ? `b${4 * g + j}[${kk}]` : `b${4 * g + j}`));
          b[kk]![g] = `vec4<f32>(${e.join(', ')})`;
        }
      }
    }
    for (let kk = 0; kk < W; kk++) {
      for (const r of rows) for (const g of groups) S.push(`acc${r}_${g} = fma(vec4<f32>(${a[r]![kk]}), ${b[kk]![g]}, acc${r}_${g});`);
    }
    return S.join('\n        ');
  };

  // A vec4 binding along K means K % 4 == 0: no tail (and its scalar loads would not type-check).
  const kTail = !((!p.transA && p.vecA) || (p.transB && p.vecB));
  const accDecl = rows.flatMap((r) => groups.map((g) => `var acc${r}_${g} = vec4<f32>(0.0);`)).join('\n  ');
  // The epilogue (uniform-driven, so bias and accumulate cost no extra pipelines): bias mode 1 adds
  // bias[n] to every row, mode 2 adds bias[m] to every column; accumulate adds the old C. Stores are
  // guarded, vec4 when N % 4 == 0.
  const E: string[] = [];
  E.push('let biasN = u.biasMode == 1u;', 'let biasM = u.biasMode == 2u;', 'let addC = u.accumulate != 0u;');
  for (const g of groups) {
    const e = [0, 1, 2, 3].map((j) => `bias[min(n0 + ${4 * g + j}u, u.N - 1u)]`);
    E.push(`var z${g} = vec4<f32>(0.0);`, `if (biasN) { z${g} = vec4<f32>(${e.join(', ')}); }`);
  }
  for (const r of rows) {
    E.push(`if (m0 + ${r}u < u.M) {`);
    E.push(`  let row = cBase + (m0 + ${r}u) * u.N;`);
    E.push(`  var zr = 0.0;`, `  if (biasM) { zr = bias[m0 + ${r}u]; }`);
    for (const g of groups) {
      const v = `acc${r}_${g} + z${g} + zr`;
      const n = `n0 + ${4 * g}u`;
      if (p.vecC) {
        E.push(`  if (${n} < u.N) { let i = (row + ${n}) >> 2u; var v = ${v}; if (addC) { v += c[i]; } c[i] = v; }`);
      } else {
        E.push(`  { let v = ${v};`);
        for (let j = 0; j < 4; j++) {
          E.push(`    if (${n} + ${j}u < u.N) { let i = row + ${n} + ${j}u; var w = v[${j}]; if (addC) { w += c[i]; } c[i] = w; }`);
        }
        E.push('  }');
      }
    }
    E.push('}');
  }

  return /* wgsl */ `
// Invocation (x, y, z) owns C[z][m0 .. m0+${TM}, n0 .. n0+${TN}]; with perGroup > 1 it sums batches
// z·perGroup .. z·perGroup + perGroup - 1 into one output (sumBatch).
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let n0 = gid.x * ${TN}u;
  // With one row of invocations per workgroup, m0 comes from workgroup_id: uniform, so A loads are too.
  let m0 = ${p.tile.wgy === 1 ? 'wid.y' : 'gid.y'} * ${TM}u;
  if (n0 >= u.N || m0 >= u.M) { return; }
  let K4 = u.K & ~3u;
  ${accDecl}
  for (var t = 0u; t < u.perGroup; t++) {
    let bt = gid.z * u.perGroup + t;
    let aBase = bt * u.strideA;
    let bBase = bt * u.strideB;
    {
      ${pre}
      for (var k = 0u; k < K4; k += 4u) {
        ${step(4)}
      }
${kTail ? `      for (var k = K4; k < u.K; k++) {
        ${step(1)}
      }` : ''}
    }
  }
  let cBase = gid.z * u.strideC;
  ${E.join('\n  ')}
}`;
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

  const params: MatmulParams = {
    tile,
    transA,
    transB,
    vecA: (transA ? M : K) % 4 === 0,
    vecB: (transB ? K : N) % 4 === 0,
    vecC: N % 4 === 0,
  };
  rt.dispatch(kernelFor(params), params, { buffers, uniforms });
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
