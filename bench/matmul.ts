/**
 * matmul benchmarks: the library kernel (`matmul_1024`, `matmul_1024_transB`) against TF.js
 * tf.matMul, plus numbered design variants on the same 1024³ problem so the library's choice is
 * justified by numbers measured on this device:
 *   v1_naive            one output per invocation, scalar loads
 *   v2_shared16         classic 16×16 workgroup-memory tiles, one output per invocation (2 barriers per K-tile)
 *   v3_shared64_reg4x4  64×64 workgroup tiles, K-tile 16, 4×4 register block per invocation (the real-GPU design)
 *   v4.. v9             the library kernel (no workgroup memory) with other register/workgroup tilings;
 *                       v9's 64×1 workgroups make the A-row loads workgroup-uniform
 * `matmul_1024` runs the library default (MATMUL_DEFAULT_TILE, the same tiling as v9, which won on
 * lavapipe; v6 is the runner-up). v1–v3 are bench-only kernels for sizes that are multiples of 64.
 * Every case is validated on a sample of output entries against a float64 CPU dot product.
 */
import { defineKernel } from '../packages/kernels/src/runtime/kernel.js';
import type { GpuBuffer } from '../packages/kernels/src/runtime/buffer-pool.js';
import type { Runtime } from '../packages/kernels/src/runtime/runtime.js';
import { matmul, MATMUL_DEFAULT_TILE, type MatmulTile } from '../packages/kernels/src/ops/matmul.js';
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
function checkSample(name: string, C: Float32Array, A: Float32Array, B: Float32Array, transB: boolean): void {
  let s = 12345;
  for (let t = 0; t < 4096; t++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const i = s % S;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % S;
    let want = 0;
    for (let p = 0; p < S; p++) want += A[i * S + p]! * B[transB ? j * S + p : p * S + j]!;
    const got = C[i * S + j]!;
    if (!(Math.abs(got - want) <= 1e-3 + 1e-4 * Math.abs(want))) {
      throw new Error(`${name}: C[${i},${j}] = ${got}, expected ${want}`);
    }
  }
}

function matmulCase(name: string, record: (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => void, transB = false, peer = false): BenchCase {
  const A = data(S * S, 1);
  const B = data(S * S, 2);
  return {
    name,
    flops: FLOPS,
    maxTime: 2,
    async setup(rt) {
      const a = rt.upload(A);
      const b = rt.upload(B);
      const c = rt.createBuffer(S * S * 4);
      const run = () => record(rt, a, b, c);
      return {
        run,
        async validate() {
          run();
          checkSample(name, await rt.readF32(c), A, B, transB);
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
              const c = tf.matMul(a, b, false, transB);
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

const library = (tile: MatmulTile, transB = false) => (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => {
  matmul(rt, a, b, { batch: 1, m: S, n: S, k: S, transB, tile, out: c });
};
const benchOnly = (kernel: typeof naive) => (rt: Runtime, a: GpuBuffer, b: GpuBuffer, c: GpuBuffer) => {
  rt.dispatch(kernel, undefined, { buffers: { a, b, c }, uniforms: { M: S, N: S, K: S } });
};

export const cases: BenchCase[] = [
  matmulCase('matmul_1024', library(MATMUL_DEFAULT_TILE), false, true),
  matmulCase('matmul_1024_transB', library(MATMUL_DEFAULT_TILE, true), true, true),
  matmulCase('matmul_1024_v1_naive', benchOnly(naive)),
  matmulCase('matmul_1024_v2_shared16', benchOnly(shared16)),
  matmulCase('matmul_1024_v3_shared64_reg4x4', benchOnly(shared64)),
  matmulCase('matmul_1024_v4_reg4x4', library({ tm: 4, tn: 4, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v5_reg8x4', library({ tm: 8, tn: 4, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v6_reg4x8', library({ tm: 4, tn: 8, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v7_reg8x8', library({ tm: 8, tn: 8, wgx: 8, wgy: 8 })),
  matmulCase('matmul_1024_v8_reg4x4_wg16', library({ tm: 4, tn: 4, wgx: 16, wgy: 16 })),
  matmulCase('matmul_1024_v9_reg8x4_wg64x1', library({ tm: 8, tn: 4, wgx: 64, wgy: 1 })),
];
