/**
 * The tiled matmul kernel: the path of `matmul` (ops/matmul.ts) that runs any shape on any device.
 * Same contract as `matmul`: C[b] = op(A[b])·op(B[b]) (+ bias) (+ C[b]), f32 accumulation,
 * A and B stored as f32 or f16 (widened on load), bias and C f32, both transposes, broadcast
 * operands, sumBatch. matmul.ts validates the arguments
 * and picks this path; this file only builds and records the kernel.
 *
 * Dimension legend: B batch, M rows of C, N columns of C, K the contracted dimension.
 *   A: (B, M, K), or (B, K, M) with transA      B: (B, K, N), or (B, N, K) with transB
 *   C: (B, M, N)                                 bias: (N,) or (M,)
 *
 * Design (see bench/matmul.ts for the numbers behind it): no workgroup memory and no
 * barriers. Each invocation owns a TM×TN block of C (default 8×4) held in vec4 registers and walks
 * K four at a time; for every k-step it loads a TM×4 fragment of A and a 4×TN fragment of B straight
 * from global memory, as vec4s along whichever dimension is contiguous in memory (the load
 * expressions are specialized for transA/transB). On lavapipe (llvmpipe) a workgroup barrier costs
 * more than the reuse that shared-memory tiling buys, and neighbouring invocations' loads hit the
 * CPU caches anyway; on real GPUs the same register blocking is the inner loop of every fast GEMM
 * and the L1/L2 caches play the role of the shared tile. Out-of-range rows/columns load clamped
 * (in-bounds, unused) data and are never stored; a K tail (K mod 4) runs a scalar step.
 *
 * Non-goals: workgroup-memory tiling (slower on lavapipe, see MATMUL_DEFAULT_TILE), subgroup
 * operations (ops/matmul-subgroup.ts).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, type Kernel } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

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

interface MatmulParams {
  tile: MatmulTile;
  transA: boolean;
  transB: boolean;
  /** Operands bound as array<vec4<f32>> (their contiguous dimension is a multiple of 4). */
  vecA: boolean;
  vecB: boolean;
  vecC: boolean;
  /** A / B stored as f16 (loaded and widened to f32; needs the 'shader-f16' feature). */
  f16A: boolean;
  f16B: boolean;
}

export type TiledMatmulUniform = 'M' | 'N' | 'K' | 'strideA' | 'strideB' | 'strideC' | 'perGroup' | 'batchC' | 'biasMode' | 'accumulate';
type MatmulKernel = Kernel<MatmulParams, 'a' | 'b' | 'bias' | 'c', TiledMatmulUniform>;

const arrayOf = (v: boolean, f16 = false) => (v ? `array<vec4<${f16 ? 'f16' : 'f32'}>>` : `array<${f16 ? 'f16' : 'f32'}>`);
const kernels = new Map<string, MatmulKernel>();

/** One kernel spec per combination of binding types (the spec's binding types are fixed). */
function kernelFor(p: MatmulParams): MatmulKernel {
  const name = `matmul_${p.vecA ? 'a4' : 'a1'}${p.f16A ? 'h' : ''}${p.vecB ? 'b4' : 'b1'}${p.f16B ? 'h' : ''}${p.vecC ? 'c4' : 'c1'}`;
  let kern = kernels.get(name);
  if (!kern) {
    kern = defineKernel({
      name,
      bindings: [
        { name: 'a', type: arrayOf(p.vecA, p.f16A), access: 'read' }, // (B|1, M, K) or (B|1, K, M)
        { name: 'b', type: arrayOf(p.vecB, p.f16B), access: 'read' }, // (B|1, K, N) or (B|1, N, K)
        { name: 'bias', type: 'array<f32>', access: 'read' }, // (N,) or (M,); A as a dummy without bias
        { name: 'c', type: arrayOf(p.vecC), access: 'read_write' }, // (B, M, N)
      ],
      uniforms: ['M', 'N', 'K', 'strideA', 'strideB', 'strideC', 'perGroup', 'batchC', 'biasMode', 'accumulate'].map((n) => ({ name: n as TiledMatmulUniform, type: 'u32' as const })),
      workgroupSize: (q) => [q.tile.wgx, q.tile.wgy],
      dispatch: (q, u) => [Math.ceil(u.N / (q.tile.tn * q.tile.wgx)), Math.ceil(u.M / (q.tile.tm * q.tile.wgy)), u.batchC],
      key: (q) =>
        `${q.tile.tm}x${q.tile.tn}@${q.tile.wgx}x${q.tile.wgy}|${q.transA ? 'T' : 'N'}${q.transB ? 'T' : 'N'}`,
      enables: (q) => (q.f16A || q.f16B ? ['f16'] : []),
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
  // Operand loads, widened to f32 when the operand is stored as f16.
  const ldA = (i: string, v4: boolean) => (p.f16A ? `${v4 ? 'vec4<f32>' : 'f32'}(a[${i}])` : `a[${i}]`);
  const ldB = (i: string, v4: boolean) => (p.f16B ? `${v4 ? 'vec4<f32>' : 'f32'}(b[${i}])` : `b[${i}]`);

  // A(r, kk) and B(kk, c) expressions after the loads of one k-step of width W (4, or 1 for the tail).
  const step = (W: number): string => {
    const S: string[] = [];
    const a: string[][] = rows.map(() => []);
    const b: string[][] = [...Array(W)].map(() => []);
    if (!p.transA) {
      for (const r of rows) {
        if (W === 4) {
          S.push(p.vecA ? `let a${r} = ${ldA(`(aRow${r} + k) >> 2u`, true)};` : `let a${r} = vec4<f32>(${[0, 1, 2, 3].map((j) => ldA(`aRow${r} + k + ${j}u`, false)).join(', ')});`);
          for (let kk = 0; kk < W; kk++) a[r]![kk] = `a${r}[${kk}]`;
        } else {
          S.push(`let a${r} = ${ldA(`aRow${r} + k`, false)};`);
          a[r]![0] = `a${r}`;
        }
      }
    } else {
      for (let kk = 0; kk < W; kk++) {
        if (p.vecA) {
          for (let g = 0; g < TM / 4; g++) {
            S.push(`let a${kk}_${g} = ${ldA(`(aCol${g} + (k + ${kk}u) * u.M) >> 2u`, true)};`);
            for (let j = 0; j < 4; j++) a[4 * g + j]![kk] = `a${kk}_${g}[${j}]`;
          }
        } else {
          for (const r of rows) {
            S.push(`let a${kk}_${r} = ${ldA(`aColS${r} + (k + ${kk}u) * u.M`, false)};`);
            a[r]![kk] = `a${kk}_${r}`;
          }
        }
      }
    }
    if (!p.transB) {
      for (let kk = 0; kk < W; kk++) {
        for (const g of groups) {
          if (p.vecB) S.push(`let b${kk}_${g} = ${ldB(`(bCol${g} + (k + ${kk}u) * u.N) >> 2u`, true)};`);
          else {
            const e = [0, 1, 2, 3].map((j) => ldB(`bColS${4 * g + j} + (k + ${kk}u) * u.N`, false));
            S.push(`let b${kk}_${g} = vec4<f32>(${e.join(', ')});`);
          }
          b[kk]![g] = `b${kk}_${g}`;
        }
      }
    } else {
      for (const c of cols) {
        if (W === 4) {
          S.push(p.vecB ? `let b${c} = ${ldB(`(bRow${c} + k) >> 2u`, true)};` : `let b${c} = vec4<f32>(${[0, 1, 2, 3].map((j) => ldB(`bRow${c} + k + ${j}u`, false)).join(', ')});`);
        } else S.push(`let b${c} = ${ldB(`bRow${c} + k`, false)};`);
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

type Binding = { buffer: GpuBuffer; offset: number; size: number };

export interface TiledMatmulDispatch {
  a: Binding;
  b: Binding;
  bias: Binding;
  c: Binding;
  uniforms: Record<TiledMatmulUniform, number>;
  /** A is stored (batch, K, M). */
  transA: boolean;
  /** B is stored (batch, N, K). */
  transB: boolean;
  tile: MatmulTile;
  /** A / B stored as f16 (default f32). */
  f16A?: boolean;
  f16B?: boolean;
}

/** Records the tiled kernel; matmul.ts has validated shapes, buffers and the tile. */
export function dispatchTiledMatmul(rt: Runtime, d: TiledMatmulDispatch): void {
  const { M, N, K } = d.uniforms;
  const params: MatmulParams = {
    tile: d.tile,
    transA: d.transA,
    transB: d.transB,
    vecA: (d.transA ? M : K) % 4 === 0,
    vecB: (d.transB ? K : N) % 4 === 0,
    vecC: N % 4 === 0,
    f16A: d.f16A ?? false,
    f16B: d.f16B ?? false,
  };
  rt.dispatch(kernelFor(params), params, { buffers: { a: d.a, b: d.b, bias: d.bias, c: d.c }, uniforms: d.uniforms });
}
