import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitError } from '../runtime/errors.js';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn } from '../testing/reference.js';
import { castF16ToF32, castF32ToF16 } from './elementwise.js';
import { matmul, matmulBackward, matmulDims, MATMUL_DEFAULT_TILE, type MatmulDtype } from './matmul.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

interface Case {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  batchA?: number;
  batchB?: number;
}

/** float64 C[z] = op(A[z|0])·op(B[z|0]) (sumBatch: Σ_z) */
function refMatmul(A: ArrayLike<number>, B: ArrayLike<number>, c: Case, sumBatch = false): Float64Array {
  const { batch, m: M, n: N, k: K, transA = false, transB = false } = c;
  const sA = (c.batchA ?? batch) === 1 ? 0 : M * K;
  const sB = (c.batchB ?? batch) === 1 ? 0 : K * N;
  const C = new Float64Array((sumBatch ? 1 : batch) * M * N);
  for (let z = 0; z < batch; z++) {
    const zc = sumBatch ? 0 : z;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) s += A[z * sA + (transA ? p * M + i : i * K + p)]! * B[z * sB + (transB ? j * K + p : p * N + j)]!;
        C[zc * M * N + i * N + j]! += s;
      }
    }
  }
  return C;
}

const tol = (k: number) => ({ atol: 1e-4 * Math.sqrt(Math.max(k, 1)), rtol: 1e-4 });
const inputs = (c: Case, seed: number) => ({
  A: randn((c.batchA ?? c.batch) * c.m * c.k, seed),
  B: randn((c.batchB ?? c.batch) * c.k * c.n, seed + 1),
});

async function run(c: Case, extra: Parameters<typeof matmul>[3] extends infer O ? Partial<O> : never = {}, seed = 1) {
  const { A, B } = inputs(c, seed);
  const a = rt.upload(A);
  const b = rt.upload(B);
  const out = matmul(rt, a, b, { ...c, ...extra });
  const got = await rt.readF32(out);
  rt.release(a);
  rt.release(b);
  if (out !== extra.out) rt.release(out);
  return { A, B, got };
}

const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [1, 3, 5, 7],
  [2, 37, 29, 41],
  [1, 65, 1, 130],
  [3, 20, 36, 12], // every contiguous dim a multiple of 4: the vec4 paths
  [1, 1, 67, 33],
];

describe('matmul forward', () => {
  for (const [batch, m, n, k] of SHAPES) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      it(`B=${batch} M=${m} N=${n} K=${k} transA=${transA} transB=${transB}`, async () => {
        const c = { batch, m, n, k, transA, transB };
        const { A, B, got } = await run(c, {}, batch * 1000 + m * 10 + n + k);
        expectAllClose(got, refMatmul(A, B, c), tol(k), 'C');
      });
    }
  }

  it('adds a per-column (n) or per-row (m) bias, with vec4 and scalar stores', async () => {
    for (const [c, mode] of [
      [{ batch: 2, m: 9, n: 12, k: 17 }, 'n'],
      [{ batch: 1, m: 10, n: 7, k: 5, transB: true }, 'n'],
      [{ batch: 2, m: 6, n: 11, k: 8, transA: true }, 'm'],
    ] as const) {
      const bias = randn(mode === 'n' ? c.n : c.m, 7);
      const zb = rt.upload(bias);
      const { A, B, got } = await run(c, { bias: zb, biasMode: mode }, 3);
      const want = refMatmul(A, B, c).map((v, idx) => v + bias[mode === 'n' ? idx % c.n : Math.floor(idx / c.n) % c.m]!);
      expectAllClose(got, want, tol(c.k), `bias ${mode}`);
      rt.release(zb);
    }
  });

  it('accumulates into out (C += op(A)·op(B) + bias)', async () => {
    for (const c of [{ batch: 2, m: 13, n: 8, k: 9 }, { batch: 1, m: 5, n: 3, k: 4, transA: true, transB: true }]) {
      const prev = randn(c.batch * c.m * c.n, 11);
      const bias = randn(c.n, 12);
      const out = rt.upload(prev);
      const zb = rt.upload(bias);
      const { A, B, got } = await run(c, { out, accumulate: true, bias: zb }, 5);
      const want = refMatmul(A, B, c).map((v, i) => v + prev[i]! + bias[i % c.n]!);
      expectAllClose(got, want, tol(c.k), 'accumulated C');
      rt.release(out);
      rt.release(zb);
    }
  });

  it('overwrites a reused output buffer that holds garbage', async () => {
    const c = { batch: 1, m: 7, n: 9, k: 3 };
    const out = rt.upload(new Float32Array(63).fill(Number.NaN));
    const { A, B, got } = await run(c, { out }, 9);
    expectAllClose(got, refMatmul(A, B, c), tol(3), 'C');
    rt.release(out);
  });

  it('broadcasts a batch-1 operand (shared weights) and sums over the batch (sumBatch)', async () => {
    for (const c of [
      { batch: 3, m: 10, n: 6, k: 7, batchB: 1 },
      { batch: 4, m: 8, n: 5, k: 12, batchA: 1, transA: true },
      { batch: 2, m: 5, n: 9, k: 6, batchB: 1, transB: true },
    ]) {
      const { A, B, got } = await run(c, {}, 21);
      expectAllClose(got, refMatmul(A, B, c), tol(c.k), 'broadcast C');
      const s = await run(c, { sumBatch: true }, 22);
      expectAllClose(s.got, refMatmul(s.A, s.B, c, true), tol(c.k * c.batch), 'sumBatch C');
    }
  });

  it('is correct for a larger register tile (8×8: two vec4 groups along M and N)', async () => {
    const c = { batch: 2, m: 45, n: 38, k: 23, transB: true };
    for (const tile of [MATMUL_DEFAULT_TILE, { tm: 8, tn: 8, wgx: 8, wgy: 8 }]) {
      const { A, B, got } = await run(c, { tile }, 31);
      expectAllClose(got, refMatmul(A, B, c), tol(c.k), `tile ${JSON.stringify(tile)}`);
    }
  });

  it('propagates NaN and Inf through the rows and columns they touch', async () => {
    const c = { batch: 1, m: 3, n: 4, k: 4 };
    const A = new Float32Array(12).fill(1);
    A[0] = Number.NaN; // row 0
    A[4] = Number.POSITIVE_INFINITY; // row 1
    const B = new Float32Array(16).fill(0.5);
    const a = rt.upload(A);
    const b = rt.upload(B);
    const got = await rt.readF32(matmul(rt, a, b, c));
    const want = refMatmul(A, B, c);
    expectAllClose(got, want, tol(4), 'C');
    expect(Number.isNaN(got[0]!) && got[4] === Number.POSITIVE_INFINITY && got[8] === 2).toBe(true);
    rt.release(a);
    rt.release(b);
  });

  it('handles empty sizes: M = 0 gives an empty C, K = 0 gives C = bias', async () => {
    const a = rt.createBuffer(0);
    const b = rt.upload(new Float32Array(8));
    expect(matmul(rt, a, b, { batch: 2, m: 0, n: 4, k: 1 }).size).toBe(0);
    const zb = rt.upload(new Float32Array([1, 2, 3]));
    const c = matmul(rt, a, b, { batch: 2, m: 2, n: 3, k: 0, bias: zb });
    expect(Array.from(await rt.readF32(c))).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    [a, b, zb, c].forEach((x) => rt.release(x));
  });
});

describe('matmul with f16 operands', () => {
  /** An f16 copy of x on the GPU, and the f16-rounded values back as f32 (what the kernel sees). */
  async function half(x: Float32Array) {
    const f32 = rt.upload(x);
    const h = castF32ToF16(rt, f32, { n: x.length });
    const back = castF16ToF32(rt, h, { n: x.length });
    const rounded = await rt.readF32(back, 0, x.length);
    [f32, back].forEach((t) => rt.release(t));
    return { h, rounded };
  }

  for (const [batch, m, n, k] of [[1, 5, 7, 3], [2, 13, 12, 20], [1, 9, 16, 33]] as const) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      it(`B=${batch} M=${m} N=${n} K=${k} transA=${transA} transB=${transB}: f16 A and/or B against float64`, async (ctx) => {
        if (!rt.has('shader-f16')) ctx.skip();
        const c = { batch, m, n, k, transA, transB };
        const { A, B } = inputs(c, 61 + m + k);
        for (const [dtypeA, dtypeB] of [['f16', 'f16'], ['f16', 'f32'], ['f32', 'f16']] as [MatmulDtype, MatmulDtype][]) {
          const ha = dtypeA === 'f16' ? await half(A) : { h: rt.upload(A), rounded: A };
          const hb = dtypeB === 'f16' ? await half(B) : { h: rt.upload(B), rounded: B };
          const out = matmul(rt, ha.h, hb.h, { ...c, dtypeA, dtypeB });
          expectAllClose(await rt.readF32(out), refMatmul(ha.rounded, hb.rounded, c), tol(k), `C (A ${dtypeA}, B ${dtypeB})`);
          [ha.h, hb.h, out].forEach((t) => rt.release(t));
        }
      });
    }
  }

  it('reads f16 operands through rgba16float textures on the subgroup path (rows of 128 halves)', async (ctx) => {
    if (!rt.has('shader-f16') || !rt.has('subgroups')) ctx.skip();
    for (const c of [
      { batch: 1, m: 9, n: 128, k: 128 },
      { batch: 2, m: 13, n: 128, k: 256, batchB: 1 },
    ]) {
      const { A, B } = inputs(c, 91 + c.m);
      const [ha, hb] = [await half(A), await half(B)];
      const [fa, fb] = [rt.upload(A), rt.upload(B)];
      for (const [dtypeA, dtypeB] of [['f16', 'f16'], ['f16', 'f32'], ['f32', 'f16']] as [MatmulDtype, MatmulDtype][]) {
        const a = dtypeA === 'f16' ? ha : { h: fa, rounded: A };
        const b = dtypeB === 'f16' ? hb : { h: fb, rounded: B };
        const out = matmul(rt, a.h, b.h, { ...c, dtypeA, dtypeB, path: 'subgroup' });
        expectAllClose(await rt.readF32(out), refMatmul(a.rounded, b.rounded, c), tol(c.k), `C (A ${dtypeA}, B ${dtypeB}, subgroup)`);
        rt.release(out);
      }
      [ha.h, hb.h, fa, fb].forEach((t) => rt.release(t));
    }
  });

  it('adds bias, accumulates and broadcasts with f16 operands', async (ctx) => {
    if (!rt.has('shader-f16')) ctx.skip();
    const c = { batch: 3, m: 6, n: 8, k: 12, batchB: 1 };
    const { A, B } = inputs(c, 71);
    const [ha, hb] = [await half(A), await half(B)];
    const bias = randn(c.n, 72);
    const prev = randn(c.batch * c.m * c.n, 73);
    const [zb, out] = [rt.upload(bias), rt.upload(prev)];
    matmul(rt, ha.h, hb.h, { ...c, dtypeA: 'f16', dtypeB: 'f16', bias: zb, out, accumulate: true });
    const want = refMatmul(ha.rounded, hb.rounded, c).map((v, i) => v + prev[i]! + bias[i % c.n]!);
    expectAllClose(await rt.readF32(out), want, tol(c.k), 'bias + accumulate');
    [ha.h, hb.h, zb, out].forEach((t) => rt.release(t));
  });

  it('backward with f16 inputs gives f32 gradients of the f16-rounded inputs', async (ctx) => {
    if (!rt.has('shader-f16')) ctx.skip();
    for (const c of [
      { batch: 2, m: 5, n: 8, k: 6 },
      { batch: 2, m: 7, n: 4, k: 9, transA: true, transB: true },
    ]) {
      const { A, B } = inputs(c, 81);
      const [ha, hb] = [await half(A), await half(B)];
      const dC = randn(c.batch * c.m * c.n, 82);
      const g = rt.upload(dC);
      const { dA, dB } = matmulBackward(rt, ha.h, hb.h, g, { ...c, dtypeA: 'f16', dtypeB: 'f16' });
      const [gotA, gotB] = [await rt.readF32(dA!), await rt.readF32(dB!)];
      // float64 gradients of the f16-rounded inputs: dA = dC·op(B)ᵀ, dB = op(A)ᵀ·dC, in A's and B's layouts.
      const M = c.m, N = c.n, K = c.k;
      const wantA = new Float64Array(A.length);
      const wantB = new Float64Array(B.length);
      for (let z = 0; z < c.batch; z++) {
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            const d = dC[z * M * N + i * N + j]!;
            for (let p = 0; p < K; p++) {
              const ia = z * M * K + (c.transA ? p * M + i : i * K + p);
              const ib = z * K * N + (c.transB ? j * K + p : p * N + j);
              wantA[ia]! += d * hb.rounded[ib]!;
              wantB[ib]! += d * ha.rounded[ia]!;
            }
          }
        }
      }
      expectAllClose(gotA.subarray(0, A.length), wantA, tol(N), 'dA');
      expectAllClose(gotB.subarray(0, B.length), wantB, tol(M), 'dB');
      [ha.h, hb.h, g, dA!, dB!].forEach((t) => rt.release(t));
    }
  });

  it('rejects a bad dtype, a forced subgroup path and a short f16 buffer, naming what is wrong', async (ctx) => {
    if (!rt.has('shader-f16')) ctx.skip();
    const a = rt.createBuffer(2 * 12); // 12 f16 values
    expect(() => matmul(rt, a, a, { batch: 1, m: 3, n: 4, k: 4, dtypeA: 'bf16' as MatmulDtype })).toThrow(/dtypeA must be 'f32' or 'f16', got bf16/);
    expect(() => matmul(rt, a, a, { batch: 1, m: 3, n: 4, k: 3, dtypeA: 'f16', dtypeB: 'f16', path: 'subgroup' })).toThrow(/path 'subgroup' reads an f16 operand only untransposed, with K % 4 == 0 .*dtypeA f16, dtypeB f16, transA false, transB false, K = 3/);
    expect(() => matmul(rt, a, a, { batch: 1, m: 4, n: 4, k: 4, dtypeA: 'f16', dtypeB: 'f16' })).toThrow(/A holds 12 f16 values, shape \[1,4,4\] needs 16/);
    rt.release(a);
  });
});

describe('matmul backward', () => {
  /** float64 gradients of L = Σ dC ⊙ C with respect to A and B (same layouts, batch summed when broadcast). */
  function refGrads(A: ArrayLike<number>, B: ArrayLike<number>, dC: ArrayLike<number>, c: Case) {
    const { batch, m: M, n: N, k: K, transA = false, transB = false } = c;
    const bA = c.batchA ?? batch;
    const bB = c.batchB ?? batch;
    const dA = new Float64Array(bA * M * K);
    const dB = new Float64Array(bB * K * N);
    for (let z = 0; z < batch; z++) {
      const za = bA === 1 ? 0 : z;
      const zb = bB === 1 ? 0 : z;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          const g = dC[z * M * N + i * N + j]!;
          for (let p = 0; p < K; p++) {
            const ia = za * M * K + (transA ? p * M + i : i * K + p);
            const ib = zb * K * N + (transB ? j * K + p : p * N + j);
            dA[ia]! += g * B[ib]!;
            dB[ib]! += g * A[ia]!;
          }
        }
      }
    }
    return { dA, dB };
  }

  it('reference gradients match numeric gradients of the reference forward (tiny case)', () => {
    const c = { batch: 2, m: 2, n: 3, k: 2, transA: true, batchB: 1 };
    const A = Float64Array.from(randn(8, 41));
    const B = Float64Array.from(randn(6, 42));
    const dC = randn(12, 43);
    const { dA, dB } = refGrads(A, B, dC, c);
    expectAllClose(dA, numericGrad((x) => dot(refMatmul(x, B, c), dC), A), { atol: 1e-6, rtol: 1e-6 }, 'dA');
    expectAllClose(dB, numericGrad((x) => dot(refMatmul(A, x, c), dC), B), { atol: 1e-6, rtol: 1e-6 }, 'dB');
  });

  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    it(`dA = dC·op(B)ᵀ, dB = op(A)ᵀ·dC and dBias with transA=${transA} transB=${transB}, B broadcast`, async () => {
      for (const c of [
        { batch: 3, m: 11, n: 6, k: 9, transA, transB, batchB: 1 },
        { batch: 2, m: 8, n: 12, k: 5, transA, transB, batchA: 1 },
      ]) {
        const { A, B } = inputs(c, 50);
        const dC = randn(c.batch * c.m * c.n, 52);
        const [a, b, g] = [rt.upload(A), rt.upload(B), rt.upload(dC)];
        const grads = matmulBackward(rt, a, b, g, { ...c, needBias: true });
        const want = refGrads(A, B, dC, c);
        expectAllClose(await rt.readF32(grads.dA!), want.dA, tol(c.n * c.batch), 'dA');
        expectAllClose(await rt.readF32(grads.dB!), want.dB, tol(c.m * c.batch), 'dB');
        const dBias = new Float64Array(c.n).map((_, j) => {
          let s = 0;
          for (let r = 0; r < c.batch * c.m; r++) s += dC[r * c.n + j]!;
          return s;
        });
        expectAllClose(await rt.readF32(grads.dBias!), dBias, tol(c.m * c.batch), 'dBias');
        [a, b, g, grads.dA!, grads.dB!, grads.dBias!].forEach((x) => rt.release(x));
      }
    });
  }

  it('accumulates gradients into existing buffers', async () => {
    const c = { batch: 2, m: 5, n: 7, k: 6, batchB: 1 };
    const { A, B } = inputs(c, 60);
    const dC = randn(c.batch * c.m * c.n, 61);
    const prevA = randn(A.length, 62);
    const prevB = randn(B.length, 63);
    const [a, b, g, oa, ob] = [rt.upload(A), rt.upload(B), rt.upload(dC), rt.upload(prevA), rt.upload(prevB)];
    matmulBackward(rt, a, b, g, { ...c, outA: oa, outB: ob, accumulate: true });
    const want = refGrads(A, B, dC, c);
    expectAllClose(await rt.readF32(oa), want.dA.map((v, i) => v + prevA[i]!), tol(c.n), 'dA + prev');
    expectAllClose(await rt.readF32(ob), want.dB.map((v, i) => v + prevB[i]!), tol(c.m * 2), 'dB + prev');
    [a, b, g, oa, ob].forEach((x) => rt.release(x));
  });
});

describe('matmul errors', () => {
  it('names the op and shapes when dimensions differ', () => {
    expect(() => matmulDims([2, 3], [4, 5])).toThrow('matmul: inner dimensions differ (A is [2,3], B is [4,5])');
    expect(() => matmulDims([2, 4, 3], [5, 3, 6])).toThrow(/matmul: batch dimensions differ \(A is \[2,4,3\], B is \[5,3,6\]\)/);
    expect(matmulDims([4, 3, 2], [5, 3], { transA: true, transB: true })).toEqual({ batch: 4, m: 2, n: 5, k: 3, batchA: 4, batchB: 1 });
  });

  it('rejects buffers smaller than their shape and a bad batch count', () => {
    const a = rt.createBuffer(4 * 6);
    const b = rt.createBuffer(4 * 6);
    expect(() => matmul(rt, a, b, { batch: 1, m: 2, n: 3, k: 4 })).toThrow(/matmul: A holds 6 floats, shape \[1,2,4\] needs 8/);
    expect(() => matmul(rt, a, b, { batch: 2, m: 1, n: 1, k: 1, batchB: 3 })).toThrow(/batchB must be 1 or batch/);
    expect(() => matmul(rt, a, b, { batch: 1, m: 1, n: 1, k: 1, accumulate: true })).toThrow(/accumulate needs an `out`/);
    rt.release(a);
    rt.release(b);
  });

  it('rejects operands above maxStorageBufferBindingSize with a LimitError naming the limit', () => {
    const a = rt.createBuffer(16);
    const big = rt.limits.maxStorageBufferBindingSize / 4;
    const call = () => matmul(rt, a, a, { batch: 1, m: big, n: 1, k: 2 });
    expect(call).toThrow(LimitError);
    expect(call).toThrow(/maxStorageBufferBindingSize/);
    rt.release(a);
  });
});
