/**
 * matmul benchmarks: the library matmul (`matmul_1024`, `matmul_1024_transB`, path 'auto') against
 * TF.js tf.matMul, plus numbered design variants on the same 1024³ problem so the library's choice is
 * justified by numbers measured on this device:
 *   v1_naive            one output per invocation, scalar loads
 *   v2_shared16         classic 16×16 workgroup-memory tiles, one output per invocation (2 barriers per K-tile)
 *   v3_shared64_reg4x4  64×64 workgroup tiles, K-tile 16, 4×4 register block per invocation (the real-GPU design)
 *   v4.. v9             the tiled library kernel (no workgroup memory) with other register/workgroup tilings;
 *                       v9's 64×1 workgroups make the A-row loads workgroup-uniform (the 'tiled' path's default)
 *   v10_lanes8x2        8 rows × 2 columns per invocation, columns strided by the workgroup width so
 *                       neighbouring lanes read neighbouring B addresses (scalar loads), A as uniform vec4s
 *   v11_sgA_reg8x4      the tiled 8×4 vec4 tiling, but A is read once per 8 k by the 8 lanes of a
 *                       subgroup (one element each) and handed out with subgroupBroadcast
 *   v12_sgA_packedB8x2  8 rows × 2 lane-strided columns, A as in v11 but the 8 k-steps as a small loop
 *                       (subgroupShuffle), B pre-packed (on the CPU, outside the timing) into 16-column
 *                       panels [N/16][K][16] so the K walk is sequential
 *   v13..v16            the library's subgroup kernel, 'cols' layout (ops/matmul-subgroup.ts) with TM
 *                       rows per workgroup and WG lanes: each lane owns TM rows × one vec4 of columns,
 *                       B is one vec4 load per lane and k, A one scalar load per lane per 8 k +
 *                       subgroupBroadcast from a constant lane (the library's matmul_1024 until 2026-12-08)
 *   v17..v19            the 'rows' layout with both operands read from their buffers: each lane owns
 *                       R rows × the workgroup's TN columns, A as vec4s along k, B loaded by lanes
 *                       0..7 (one row of k each) and broadcast
 *   v20..v22            the 'rows' layout with both operands copied into rgba32float textures first
 *                       (counted in the time); v20 (R 3, TN 16) is what `matmul_1024` runs
 * `matmul_1024_f16` is the library with A and B stored as f16 (the tiled kernel, widening on load).
 * `matmul_1024_transA` is the library on transA (the rows layout reading A in place as (K, M)
 * texels, 4 rows per invocation; a transpose pack of A before 2026-12-08's last runs). `matmul_1024_tiled_transB` is the tiled kernel on transB, against which the library's transB path
 * (a transpose pack of B, counted in its time, then the subgroup kernel) is compared. v1–v3 and
 * v10–v12 are bench-only kernels for 1024³ (v11–v16 need the 'subgroups' feature, subgroup size
 * ≥ 8). Every case is validated on a sample of output entries against a float64 CPU dot product.
 *
 * What the numbers say about lavapipe (Mesa 25.0, LLVM 15; disassembly of the JIT code taken with
 * perf + gdb, and with GALLIVM_DEBUG=asm MESA_SHADER_CACHE_DISABLE=true): a storage-buffer load
 * whose address differs per lane is emitted as a loop over the lanes (execution-mask test, reload
 * of the buffer's base and size, then per component a bounds-check branch, scalar load, insert;
 * no hardware gather), and so is a load whose address is uniform only at run time (the uniform
 * fast path needs an address built from constants); a textureLoad is branch-free vector code;
 * a uniform-buffer load with a per-lane address is a branch-free gather too, but a 64 KiB
 * binding limit makes operand panels in uniform buffers cost 64–1024 dispatches (~11–15 µs each)
 * and measured no faster; WGSL fma() is emitted as vmulps + vaddps, and LLVM hoists the products
 * of an unrolled block and spills them; accumulators beyond ~24 vector registers spill.
 * Probes that replace loads by register arithmetic (same 8×3 register block, 1024³; CPU time of
 * both lavapipe threads, which is steadier than wall time on this shared host) put the cost of
 * each part: FMAs alone run at ~42 GFLOP/s; adding 24 per-lane B elements per k halves that
 * (21.5); adding 8 workgroup-uniform A loads per k instead drops it to 12 — a uniform-address load
 * inside a loop costs several times a per-lane element (first-active-lane search, bounds-check
 * branch, broadcast per component), so the fast kernel never loads uniformly in its main loop.
 * A vec4 load per lane costs about what a scalar one does, so B as one vec4 per lane (4 columns)
 * amortizes that cost 4×; reading transB's four columns as four scalar loads is ~1.6× slower than
 * packing B (a transpose, ~20 ms of CPU for 1024²) and running the row-major kernel. Row blocks:
 * TM 8–10 best (TM 12 and 16 spill), 8–32 lanes per workgroup alike, 64+ slower. Measured
 * (best-of, busy host): 'cols' subgroup kernel ~140–185 ms of CPU per 1024³ vs ~235–295 for the
 * tiled kernel. The 'rows' layout loads fewer elements per multiply-add at the same register
 * budget (R 2–4 × TN 12–24 measured alike within noise; R 2–4 × TN 8 slower, with textures too)
 * and, with textures (read-only storage textures: no mip or sampler code, ~1.4× faster than
 * sampled ones), avoids the per-lane load loop for both operands; wall times and ratios to TF.js are in bench/README.md.
 */
import { defineKernel } from '../packages/kernels/src/runtime/kernel.js';
import type { GpuBuffer } from '../packages/kernels/src/runtime/buffer-pool.js';
import type { Runtime } from '../packages/kernels/src/runtime/runtime.js';
import { matmul, MATMUL_DEFAULT_TILE, type MatmulTile } from '../packages/kernels/src/ops/matmul.js';
import { castF16ToF32, castF32ToF16 } from '../packages/kernels/src/ops/elementwise.js';
import { dispatchSubgroupMatmul, type OperandSource } from '../packages/kernels/src/ops/matmul-subgroup.js';
import type { BenchCase } from './harness.js';
import { tfSync } from './peer.js';

const S = 1024;
const FLOPS = 2 * S ** 3;

// ---------------------------------------------------------------- bench-only variants (row-major, no transposes)

const naive = defineKernel({
  name: 'bench_matmul_naive',
  bindings: [
    { name: 'a', type: 'array<f32>', access: 'read' }, // (M, K)
    { name: 'b', type: 'array<f32>', access: 'read' }, // (K, N)
    { name: 'c', type: 'array<f32>', access: 'read_write' }, // (M, N)
  ],
  uniforms: [{ name: 'M', type: 'u32' }, { name: 'N', type: 'u32' }, { name: 'K', type: 'u32' }],
  workgroupSize: () => [16, 16],
  dispatch: (_p, u) => [Math.ceil(u.N / 16), Math.ceil(u.M / 16), 1],
  key: () => '',
  wgsl: () => `
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= u.N || gid.y >= u.M) { return; }
  var acc = 0.0;
  for (var k = 0u; k < u.K; k++) { acc = fma(a[gid.y * u.K + k], b[k * u.N + gid.x], acc); }
  c[gid.y * u.N + gid.x] = acc;
}`,
});

const shared16 = defineKernel({
  name: 'bench_matmul_shared16',
  bindings: naive.bindings,
  uniforms: naive.uniforms,
  workgroupSize: () => [16, 16],
  dispatch: (_p, u) => [u.N / 16, u.M / 16, 1],
  key: () => '',
  wgsl: () => `
var<workgroup> tA: array<array<f32, 16>, 16>; // [m][k]
var<workgroup> tB: array<array<f32, 16>, 16>; // [k][n]
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * 16u + lid.y;
  let col = wid.x * 16u + lid.x;
  var acc = 0.0;
  for (var t = 0u; t < u.K; t += 16u) {
    tA[lid.y][lid.x] = a[row * u.K + t + lid.x];
    tB[lid.y][lid.x] = b[(t + lid.y) * u.N + col];
    workgroupBarrier();
    for (var i = 0u; i < 16u; i++) { acc = fma(tA[lid.y][i], tB[i][lid.x], acc); }
    workgroupBarrier();
  }
  c[row * u.N + col] = acc;
}`,
});

const shared64 = defineKernel({
  name: 'bench_matmul_shared64_reg4x4',
  bindings: naive.bindings,
  uniforms: naive.uniforms,
  workgroupSize: () => [16, 16],
  dispatch: (_p, u) => [u.N / 64, u.M / 64, 1],
  key: () => '',
  wgsl: () => `
var<workgroup> sA: array<f32, 1024>; // [k 16][m 64]
var<workgroup> sB: array<f32, 1024>; // [k 16][n 64]
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let t = lid.y * 16u + lid.x;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < u.K; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let idx = t + i * 256u;
      let am = idx / 16u; let ak = idx % 16u;
      sA[ak * 64u + am] = a[(m0 + am) * u.K + k0 + ak];
      let bk = idx / 64u; let bn = idx % 64u;
      sB[bk * 64u + bn] = b[(k0 + bk) * u.N + n0 + bn];
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let ai = kk * 64u + lid.y * 4u;
      let bi = kk * 64u + lid.x * 4u;
      let av = vec4<f32>(sA[ai], sA[ai + 1u], sA[ai + 2u], sA[ai + 3u]);
      let bv = vec4<f32>(sB[bi], sB[bi + 1u], sB[bi + 2u], sB[bi + 3u]);
      for (var r = 0u; r < 4u; r++) { acc[r] = fma(vec4<f32>(av[r]), bv, acc[r]); }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let o = (m0 + lid.y * 4u + r) * u.N + n0 + lid.x * 4u;
    c[o] = acc[r].x; c[o + 1u] = acc[r].y; c[o + 2u] = acc[r].z; c[o + 3u] = acc[r].w;
  }
}`,
});

/** v10–v12: row-major, 1024-multiple sizes only; A rows are workgroup-uniform (one row block per workgroup). */
interface LaneParams {
  tm: number;
  tn: number;
  /** 'strided': column j of invocation x is n = base + j·WG_X + x; 'vec4': 4 consecutive columns; 'packed': B in [N/(8·tn)][K][8·tn] panels. */
  cols: 'strided' | 'vec4' | 'packed';
  /** A via one subgroup load per 8 k + subgroupBroadcast (else uniform vec4 loads along k). */
  sgA: boolean;
  /** With sgA: the 8 k-steps as a (non-unrolled) inner loop using subgroupShuffle(av, kk). */
  innerLoop?: boolean;
}
const lanes = (() => {
  const mk = (name: string, vecA: boolean, vecB: boolean, sub: boolean) =>
    defineKernel({
      name,
      bindings: [
        { name: 'a', type: vecA ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' }, // (M, K)
        { name: 'b', type: vecB ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' }, // (K, N), or packed panels
        { name: 'c', type: 'array<f32>', access: 'read_write' }, // (M, N)
      ],
      uniforms: naive.uniforms,
      workgroupSize: () => [64, 1],
      dispatch: (p: LaneParams, u) => [u.N / (p.tn * 64), u.M / p.tm, 1],
      key: (p: LaneParams) => `${p.tm}x${p.tn}${p.cols}${p.sgA}`,
      enables: () => (sub ? ['subgroups'] : []),
      wgsl: laneWgsl,
    });
  return { plain: mk('bench_matmul_lanes', true, false, false), sgVec4: mk('bench_matmul_sgA_vec4', false, true, true), sgPacked: mk('bench_matmul_sgA_packed', false, false, true) };
})();

function laneWgsl(p: LaneParams): string {
  const R = [...Array(p.tm).keys()];
  const J = [...Array(p.cols === 'vec4' ? p.tn / 4 : p.tn).keys()];
  const P = 8 * p.tn; // packed panel width: one subgroup of 8 lanes × tn columns
  const col = (j: number) =>
    p.cols === 'strided' ? `gx0 + ${j}u * WG_X + lid.x` : p.cols === 'vec4' ? `(gx0 / ${p.tn}u + lid.x) * ${p.tn}u + ${4 * j}u` : `(gx >> 3u) * ${P}u + ${8 * j}u + (gx & 7u)`;
  const bAt = (j: number, k: string) => (p.cols === 'vec4' ? `b[(${k} * u.N + ${col(j)}) >> 2u]` : p.cols === 'packed' ? `b[bBase + ${k} * ${P}u + ${8 * j}u]` : `b[${k} * u.N + ${col(j)}]`);
  const S: string[] = [];
  const fmas = (a: (r: number) => string, kk: number) => {
    for (const j of J) S.push(`let b${kk}_${j} = ${bAt(j, `(k + ${kk}u)`)};`);
    for (const r of R) for (const j of J) S.push(`acc${r}_${j} = fma(${p.cols === 'vec4' ? `vec4<f32>(${a(r)})` : a(r)}, b${kk}_${j}, acc${r}_${j});`);
  };
  if (p.sgA) {
    for (const r of R) S.push(`let av${r} = a[(m0 + ${r}u) * u.K + k + (sg & 7u)];`);
    if (p.innerLoop) {
      // kn is uniform but not a constant, so the compiler keeps this a small loop (8 unrolled copies
      // let LLVM hoist all products and spill them).
      S.push('let kn = min(8u, u.K - k);', 'for (var q = 0u; q < kn; q++) {');
      for (const j of J) S.push(`  let bq_${j} = ${bAt(j, '(k + q)')};`);
      for (const r of R) for (const j of J) S.push(`  acc${r}_${j} = fma(subgroupShuffle(av${r}, q), bq_${j}, acc${r}_${j});`);
      S.push('}');
    } else for (let kk = 0; kk < 8; kk++) fmas((r) => `subgroupBroadcast(av${r}, ${kk}u)`, kk);
  } else {
    for (const r of R) S.push(`let av${r} = a[((m0 + ${r}u) * u.K + k) >> 2u];`);
    for (let kk = 0; kk < 4; kk++) fmas((r) => `av${r}[${kk}]`, kk);
  }
  const zero = p.cols === 'vec4' ? 'vec4<f32>(0.0)' : '0.0';
  const st = R.flatMap((r) =>
    J.map((j) => (p.cols === 'vec4' ? [0, 1, 2, 3].map((e) => `c[(m0 + ${r}u) * u.N + ${col(j)} + ${e}u] = acc${r}_${j}[${e}];`).join(' ') : `c[(m0 + ${r}u) * u.N + ${col(j)}] = acc${r}_${j};`)),
  );
  return `
@compute @workgroup_size(WG_X, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>${p.sgA ? ', @builtin(subgroup_invocation_id) sg: u32' : ''}) {
  let m0 = wid.y * ${p.tm}u;
  let gx0 = wid.x * WG_X * ${p.tn}u;
  let gx = gid.x;
  let bBase = (gx >> 3u) * u.K * ${P}u + (gx & 7u);
  ${R.flatMap((r) => J.map((j) => `var acc${r}_${j} = ${zero};`)).join('\n  ')}
  for (var k = 0u; k < u.K; k += ${p.sgA ? 8 : 4}u) {
    ${S.join('\n    ')}
  }
  ${st.join('\n  ')}
}`;
}

/** B (K, N) → panels [N/P][K][P] (v12). */
function packPanels(B: Float32Array, P: number): Float32Array {
  const out = new Float32Array(S * S);
  for (let pn = 0; pn < S / P; pn++) for (let k = 0; k < S; k++) out.set(B.subarray(k * S + pn * P, k * S + pn * P + P), (pn * S + k) * P);
  return out;
}

// ---------------------------------------------------------------- shared setup and validation

/** Inputs in [-1, 1) from a fixed LCG (fast for 2·1024² values). */
function data(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Checks 4096 sampled entries of C = op(A)·op(B) against float64 dot products. */
function checkSample(name: string, C: Float32Array, A: Float32Array, B: Float32Array, transB: boolean, transA = false): void {
  let s = 12345;
  for (let t = 0; t < 4096; t++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const i = s % S;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % S;
    let want = 0;
    for (let p = 0; p < S; p++) want += A[transA ? p * S + i : i * S + p]! * B[transB ? j * S + p : p * S + j]!;
    const got = C[i * S + j]!;
    if (!(Math.abs(got - want) <= 1e-3 + 1e-4 * Math.abs(want))) {
      throw new Error(`${name}: C[${i},${j}] = ${got}, expected ${want}`);
    }
  }
}

function matmulCase(
  name: string,
  record: (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => void,
  transB = false,
  peer = false,
  uploadB: (B: Float32Array) => Float32Array = (B) => B,
  transA = false,
): BenchCase {
  const A = data(S * S, 1);
  const B = data(S * S, 2);
  return {
    name,
    flops: FLOPS,
    maxTime: 2,
    async setup(rt) {
      const a = rt.upload(A);
      const b = rt.upload(uploadB(B));
      const c = rt.createBuffer(S * S * 4);
      const run = () => record(rt, a, b, c);
      return {
        run,
        async validate() {
          run();
          checkSample(name, await rt.readF32(c), A, B, transB, transA);
        },
        dispose() {
          [a, b, c].forEach((x) => rt.release(x));
        },
      };
    },
    peer: peer
      ? async (tf) => {
          const a = tf.tensor2d(A, [S, S]);
          const b = tf.tensor2d(B, [S, S]);
          return {
            async run() {
              const c = tf.matMul(a, b, transA, transB);
              await tfSync(tf);
              c.dispose();
            },
            dispose() {
              a.dispose();
              b.dispose();
            },
          };
        }
      : undefined,
  };
}

/** The library on f16 A and B (cast on the GPU outside the timing; validated against the f16-rounded inputs). */
function f16Case(name: string): BenchCase {
  const A = data(S * S, 1);
  const B = data(S * S, 2);
  return {
    name,
    flops: FLOPS,
    maxTime: 2,
    requires: ['shader-f16'],
    async setup(rt) {
      const [a32, b32] = [rt.upload(A), rt.upload(B)];
      const [a, b] = [castF32ToF16(rt, a32, { n: S * S }), castF32ToF16(rt, b32, { n: S * S })];
      const rounded = async (h: GpuBuffer) => {
        const back = castF16ToF32(rt, h, { n: S * S });
        const v = await rt.readF32(back);
        rt.release(back);
        return v;
      };
      const [Ar, Br] = [await rounded(a), await rounded(b)];
      [a32, b32].forEach((x) => rt.release(x));
      const c = rt.createBuffer(S * S * 4);
      const run = () => {
        matmul(rt, a, b, { batch: 1, m: S, n: S, k: S, dtypeA: 'f16', dtypeB: 'f16', out: c });
      };
      return {
        run,
        async validate() {
          run();
          checkSample(name, await rt.readF32(c), Ar, Br, false);
        },
        dispose() {
          [a, b, c].forEach((x) => rt.release(x));
        },
      };
    },
  };
}

const library = (tile: MatmulTile, transB = false) => (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => {
  matmul(rt, a, b, { batch: 1, m: S, n: S, k: S, transB, tile, out: c });
};
/** The library's subgroup kernel with a tm/wgx override (row-major or transB operands, 1024³). */
const subgroupVariant = (tm: number, wgx: number, transB = false) => (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => {
  if (!rt.has('subgroups')) throw new Error(`bench matmul subgroup tm${tm}@${wgx}: needs the 'subgroups' feature`);
  const u = { M: S, N: S, K: S, strideA: 0, strideB: 0, strideC: 0, perGroup: 1, batchC: 1, biasMode: 0, accumulate: 0 };
  const whole = (x: GpuBuffer) => ({ buffer: x, offset: 0, size: S * S * 4 });
  dispatchSubgroupMatmul(rt, { a: whole(a), b: whole(b), bias: whole(a), c: whole(c), uniforms: u, transA: false, transB, batchB: 1, layout: 'cols', tm, wgx });
};
/** The library's subgroup kernel, rows layout, r rows per invocation, tn columns per workgroup, operands from `src`. */
const rowsVariant = (r: number, tn: number, src: OperandSource) => (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => {
  if (!rt.has('subgroups')) throw new Error(`bench matmul rows r${r} tn${tn}: needs the 'subgroups' feature`);
  const u = { M: S, N: S, K: S, strideA: 0, strideB: 0, strideC: 0, perGroup: 1, batchC: 1, biasMode: 0, accumulate: 0 };
  const whole = (x: GpuBuffer) => ({ buffer: x, offset: 0, size: S * S * 4 });
  dispatchSubgroupMatmul(rt, { a: whole(a), b: whole(b), bias: whole(a), c: whole(c), uniforms: u, transA: false, transB: false, batchB: 1, layout: 'rows', rows: r, tn, aSource: src, bSource: src });
};
const laneVariant = (kernel: (typeof lanes)['plain'], p: LaneParams) => (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => {
  if (p.sgA && !rt.has('subgroups')) throw new Error(`bench matmul ${kernel.name}: needs the 'subgroups' feature`);
  rt.dispatch(kernel, p, { buffers: { a, b, c }, uniforms: { M: S, N: S, K: S } });
};
const benchOnly = (kernel: typeof naive) => (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => {
  rt.dispatch(kernel, undefined, { buffers: { a, b, c }, uniforms: { M: S, N: S, K: S } });
};

export const cases: BenchCase[] = [
  matmulCase('matmul_1024', (rt, a, b, c) => matmul(rt, a, b, { batch: 1, m: S, n: S, k: S, out: c }), false, true),
  matmulCase('matmul_1024_transB', (rt, a, b, c) => matmul(rt, a, b, { batch: 1, m: S, n: S, k: S, transB: true, out: c }), true, true),
  matmulCase('matmul_1024_transA', (rt, a, b, c) => matmul(rt, a, b, { batch: 1, m: S, n: S, k: S, transA: true, out: c }), false, true, undefined, true),
  matmulCase('matmul_1024_tiled_transB', library(MATMUL_DEFAULT_TILE, true), true),
  f16Case('matmul_1024_f16'),
  matmulCase('matmul_1024_v1_naive', benchOnly(naive)),
  matmulCase('matmul_1024_v2_shared16', benchOnly(shared16)),
  matmulCase('matmul_1024_v3_shared64_reg4x4', benchOnly(shared64)),
  matmulCase('matmul_1024_v4_reg4x4', library({ tm: 4, tn: 4, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v5_reg8x4', library({ tm: 8, tn: 4, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v6_reg4x8', library({ tm: 4, tn: 8, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v7_reg8x8', library({ tm: 8, tn: 8, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v8_reg4x4_wg16', library({ tm: 4, tn: 4, wgx: 16, wgy: 16 })),
  matmulCase('matmul_1024_v9_reg8x4_wg64x1', library({ tm: 8, tn: 4, wgx: 64, wgy: 1 })),
  matmulCase('matmul_1024_v10_lanes8x2', laneVariant(lanes.plain, { tm: 8, tn: 2, cols: 'strided', sgA: false })),
  { ...matmulCase('matmul_1024_v11_sgA_reg8x4', laneVariant(lanes.sgVec4, { tm: 8, tn: 4, cols: 'vec4', sgA: true })), requires: ['subgroups'] },
  {
    ...matmulCase('matmul_1024_v12_sgA_packedB8x2', laneVariant(lanes.sgPacked, { tm: 8, tn: 2, cols: 'packed', sgA: true, innerLoop: true }), false, false, (B) => packPanels(B, 16)),
    requires: ['subgroups'],
  },
  { ...matmulCase('matmul_1024_v13_sg_tm8_wg16', subgroupVariant(8, 16)), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v14_sg_tm10_wg16', subgroupVariant(10, 16)), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v15_sg_tm12_wg16', subgroupVariant(12, 16)), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v16_sg_tm10_wg64', subgroupVariant(10, 64)), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v17_rows_r3_tn16_buf', rowsVariant(3, 16, 'buffer')), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v18_rows_r3_tn12_buf', rowsVariant(3, 12, 'buffer')), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v19_rows_r2_tn24_buf', rowsVariant(2, 24, 'buffer')), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v20_rows_r3_tn16_tex', rowsVariant(3, 16, 'texture')), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v21_rows_r2_tn24_tex', rowsVariant(2, 24, 'texture')), requires: ['subgroups'] },
  { ...matmulCase('matmul_1024_v22_rows_r4_tn16_tex', rowsVariant(4, 16, 'texture')), requires: ['subgroups'] },
];
