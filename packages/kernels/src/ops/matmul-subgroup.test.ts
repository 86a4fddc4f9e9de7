/**
 * Tests of the subgroup matmul path (ops/matmul-subgroup.ts) against a float64 reference, next to
 * the tiled path on the same inputs. Both layouts: 'cols' on random shapes that are not multiples
 * of the row block (10), the 8-wide K step or the workgroup width; 'rows' on shapes with K % 4 == 0
 * and K % 8 == 4 tails, and with texture operands (every pair of buffer / texture sources, storage
 * and sampled textures). All four transposes, batches with broadcast operands and sumBatch, both
 * bias modes, accumulation, other tilings, NaN/Inf propagation, and the errors of forced choices.
 * Legend: B batch, M rows, N columns, K contraction.
 * Skipped (visibly) on devices without subgroups of ≥ 8 lanes, where the path never runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../runtime/runtime.js';
import { expectAllClose, randn } from '../testing/reference.js';
import { matmul, type MatmulOptions, type MatmulPath } from './matmul.js';
import { dispatchSubgroupMatmul, subgroupMatmulFits, subgroupMatmulLayout, subgroupMatmulWidth, storageTextureReads, textureFits, type SubgroupMatmulDispatch } from './matmul-subgroup.js';

let rt: Runtime;
let fits = false;
beforeAll(async () => {
  rt = await Runtime.create();
  fits = subgroupMatmulFits(rt, { m: 1, n: 4 });
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

/** float64 C[z] = op(A[z|0])·op(B[z|0]), or Σ_z with sumBatch. */
function reference(A: Float32Array, B: Float32Array, c: Case, sumBatch = false): Float64Array {
  const { batch, m: M, n: N, k: K, transA = false, transB = false } = c;
  const sA = (c.batchA ?? batch) === 1 ? 0 : M * K;
  const sB = (c.batchB ?? batch) === 1 ? 0 : K * N;
  const C = new Float64Array((sumBatch ? 1 : batch) * M * N);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) s += A[z * sA + (transA ? p * M + i : i * K + p)]! * B[z * sB + (transB ? j * K + p : p * N + j)]!;
        C[(sumBatch ? 0 : z) * M * N + i * N + j]! += s;
      }
    }
  }
  return C;
}

/**
 * A (12, K) of ones with NaN at row 0 and +Inf at row 11, column `infAt`; B (K, 8) of halves. Through
 * the subgroup path, rows 0 and 11 of C must be NaN and +Inf and every other entry K/2.
 */
async function expectNanInfRows(k: number, infAt: number): Promise<void> {
  const c = { batch: 1, m: 12, n: 8, k };
  const A = new Float32Array(c.m * k).fill(1);
  A[0] = Number.NaN;
  A[k * 11 + infAt] = Number.POSITIVE_INFINITY;
  const [a, b] = [rt.upload(A), rt.upload(new Float32Array(k * c.n).fill(0.5))];
  const got = await rt.readF32(matmul(rt, a, b, { ...c, path: 'subgroup' }));
  for (let i = 0; i < c.m; i++) {
    for (let j = 0; j < c.n; j++) {
      const v = got[i * c.n + j]!;
      if (i === 0) expect(Number.isNaN(v)).toBe(true);
      else if (i === 11) expect(v).toBe(Number.POSITIVE_INFINITY);
      else expect(v).toBe(k / 2);
    }
  }
  [a, b].forEach((x) => rt.release(x));
}

const tol = (k: number) => ({ atol: 1e-4 * Math.sqrt(Math.max(k, 1)), rtol: 1e-4 });

async function run(c: Case, path: MatmulPath, extra: Partial<MatmulOptions> = {}, seed = 1) {
  const A = randn((c.batchA ?? c.batch) * c.m * c.k, seed);
  const B = randn((c.batchB ?? c.batch) * c.k * c.n, seed + 1);
  const [a, b] = [rt.upload(A), rt.upload(B)];
  const out = matmul(rt, a, b, { ...c, ...extra, path });
  const got = await rt.readF32(out);
  rt.release(a);
  rt.release(b);
  if (out !== extra.out) rt.release(out);
  return { A, B, got };
}

// N % 4 == 0 everywhere (the subgroup path's requirement); M, K and N/4 deliberately ragged.
const SHAPES: [number, number, number, number][] = [
  [1, 1, 4, 1],
  [1, 5, 4, 3], // K < 8: only the tail loop runs
  [2, 37, 28, 41],
  [3, 23, 36, 16],
  [1, 10, 68, 8],
  [2, 131, 100, 77], // several row blocks and 2 workgroups along N
];

describe('subgroup matmul forward', () => {
  for (const [batch, m, n, k] of SHAPES) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      it(`B=${batch} M=${m} N=${n} K=${k} transA=${transA} transB=${transB}: subgroup and tiled paths`, async (ctx) => {
        if (!fits) ctx.skip();
        const c = { batch, m, n, k, transA, transB };
        for (const path of ['subgroup', 'tiled'] as const) {
          const { A, B, got } = await run(c, path, {}, batch * 1000 + m * 10 + n + k);
          expectAllClose(got, reference(A, B, c), tol(k), `C (${path})`);
        }
      });
    }
  }

  it('adds a bias per column (n) or per row (m) and accumulates into out', async (ctx) => {
    if (!fits) ctx.skip();
    for (const [c, mode] of [
      [{ batch: 2, m: 19, n: 12, k: 17 }, 'n'],
      [{ batch: 1, m: 33, n: 40, k: 9, transB: true }, 'n'],
      [{ batch: 2, m: 14, n: 8, k: 24, transA: true }, 'm'],
    ] as const) {
      const bias = randn(mode === 'n' ? c.n : c.m, 7);
      const prev = randn(c.batch * c.m * c.n, 8);
      const [zb, out] = [rt.upload(bias), rt.upload(prev)];
      const { A, B, got } = await run(c, 'subgroup', { bias: zb, biasMode: mode, out, accumulate: true }, 3);
      const want = reference(A, B, c).map((v, i) => v + prev[i]! + bias[mode === 'n' ? i % c.n : Math.floor(i / c.n) % c.m]!);
      expectAllClose(got, want, tol(c.k), `bias ${mode} + accumulate`);
      rt.release(zb);
      rt.release(out);
    }
  });

  it('broadcasts a batch-1 operand and sums over the batch (sumBatch)', async (ctx) => {
    if (!fits) ctx.skip();
    for (const c of [
      { batch: 3, m: 21, n: 12, k: 19, batchB: 1 },
      { batch: 4, m: 12, n: 20, k: 12, batchA: 1, transA: true },
      { batch: 2, m: 15, n: 16, k: 11, batchB: 1, transB: true },
    ]) {
      const { A, B, got } = await run(c, 'subgroup', {}, 21);
      expectAllClose(got, reference(A, B, c), tol(c.k), 'broadcast C');
      const s = await run(c, 'subgroup', { sumBatch: true }, 22);
      expectAllClose(s.got, reference(s.A, s.B, c, true), tol(c.k * c.batch), 'sumBatch C');
    }
  });

  it('is correct for other row blocks and workgroup widths', async (ctx) => {
    if (!fits) ctx.skip();
    const c = { batch: 1, m: 29, n: 136, k: 35 };
    const A = randn(c.m * c.k, 31);
    const B = randn(c.k * c.n, 32);
    const [a, b, out] = [rt.upload(A), rt.upload(B), rt.createBuffer(c.m * c.n * 4)];
    const whole = (x: typeof a, n: number) => ({ buffer: x, offset: 0, size: Math.ceil(n / 4) * 16 });
    const uniforms = { M: c.m, N: c.n, K: c.k, strideA: 0, strideB: 0, strideC: 0, perGroup: 1, batchC: 1, biasMode: 0, accumulate: 0 };
    for (const [tm, wgx] of [[1, 8], [8, 32], [12, 64], [16, 16]]) {
      dispatchSubgroupMatmul(rt, { a: whole(a, A.length), b: whole(b, B.length), bias: whole(a, A.length), c: whole(out, c.m * c.n), uniforms, transA: false, transB: false, batchB: 1, layout: 'cols', tm, wgx });
      expectAllClose(await rt.readF32(out), reference(A, B, c), tol(c.k), `tm ${tm} wgx ${wgx}`);
    }
    expect(() => dispatchSubgroupMatmul(rt, { a: whole(a, 1), b: whole(b, 1), bias: whole(a, 1), c: whole(out, 1), uniforms, transA: false, transB: false, batchB: 1, wgx: 24 })).toThrow(
      /wgx must be a power of two in \[8, 256\], got 24/,
    );
    [a, b, out].forEach((x) => rt.release(x));
  });

  it('propagates NaN and Inf only through the rows they touch', async (ctx) => {
    if (!fits) ctx.skip();
    await expectNanInfRows(9, 8); // K = 9: the cols layout; Inf in the K tail
  });
});

/** Records the subgroup kernel directly (layout and tiling forced) on uploaded A, B; returns C. */
async function direct(c: Case & { sumBatch?: boolean }, o: Partial<SubgroupMatmulDispatch>, seed: number, bias?: Float32Array, prev?: Float32Array) {
  const { batch, m: M, n: N, k: K, transA = false, transB = false } = c;
  const [bA, bB] = [c.batchA ?? batch, c.batchB ?? batch];
  const A = randn(bA * M * K, seed);
  const B = randn(bB * K * N, seed + 1);
  const batchC = c.sumBatch ? 1 : batch;
  const [a, b, out] = [rt.upload(A), rt.upload(B), prev ? rt.upload(prev) : rt.createBuffer(batchC * M * N * 4)];
  const zb = bias ? rt.upload(bias) : a;
  const whole = (x: typeof a, n: number) => ({ buffer: x, offset: 0, size: Math.ceil(Math.max(n, 4) / 4) * 16 });
  const uniforms = {
    M, N, K,
    strideA: bA === 1 ? 0 : M * K,
    strideB: bB === 1 ? 0 : K * N,
    strideC: M * N,
    perGroup: c.sumBatch ? batch : 1,
    batchC,
    biasMode: bias ? (bias.length === N ? 1 : 2) : 0,
    accumulate: prev ? 1 : 0,
  };
  dispatchSubgroupMatmul(rt, { a: whole(a, A.length), b: whole(b, B.length), bias: whole(zb, bias?.length ?? A.length), c: whole(out, batchC * M * N), uniforms, transA, transB, batchB: bB, ...o });
  const got = await rt.readF32(out);
  [a, b, out, ...(bias ? [zb] : [])].forEach((x) => rt.release(x));
  return { A, B, got };
}

describe('subgroup matmul, rows layout', () => {
  // K % 4 == 0 (the layout's requirement), with K % 8 == 4 tails; M not a multiple of rows × lanes,
  // N not a multiple of the 16 columns of a workgroup.
  const ROWS_SHAPES: [number, number, number, number][] = [
    [1, 1, 4, 4], // only the 4-step tail
    [1, 7, 12, 8],
    [2, 25, 20, 12],
    [1, 50, 36, 44],
    [3, 9, 64, 100],
    [1, 61, 132, 36],
  ];
  for (const [batch, m, n, k] of ROWS_SHAPES) {
    for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      it(`B=${batch} M=${m} N=${n} K=${k} transA=${transA} transB=${transB}`, async (ctx) => {
        if (!fits) ctx.skip();
        const c = { batch, m, n, k, transA, transB };
        const { A, B, got } = await direct(c, { layout: 'rows' }, batch * 100 + m + n + k);
        expectAllClose(got, reference(A, B, c), tol(k), 'C (rows)');
      });
    }
  }

  it('is what matmul picks wherever K % 4 == 0, and only there', () => {
    expect(subgroupMatmulLayout({ k: 1024 })).toBe('rows');
    expect(subgroupMatmulLayout({ k: 36 })).toBe('rows');
    expect(subgroupMatmulLayout({ k: 37 })).toBe('cols');
  });

  it('adds a bias per column or per row, accumulates, broadcasts a batch-1 operand and sums batches', async (ctx) => {
    if (!fits) ctx.skip();
    const c1 = { batch: 2, m: 19, n: 24, k: 20 };
    const bn = randn(c1.n, 41);
    const prev = randn(c1.batch * c1.m * c1.n, 42);
    const r1 = await direct(c1, { layout: 'rows' }, 43, bn, prev);
    expectAllClose(r1.got, reference(r1.A, r1.B, c1).map((v, i) => v + prev[i]! + bn[i % c1.n]!), tol(c1.k), 'bias n + accumulate');
    const c2 = { batch: 1, m: 30, n: 8, k: 12, transB: true };
    const bm = randn(c2.m, 44);
    const r2 = await direct(c2, { layout: 'rows' }, 45, bm);
    expectAllClose(r2.got, reference(r2.A, r2.B, c2).map((v, i) => v + bm[Math.floor(i / c2.n)]!), tol(c2.k), 'bias m');
    for (const c of [
      { batch: 3, m: 21, n: 12, k: 16, batchB: 1 },
      { batch: 4, m: 12, n: 20, k: 12, batchA: 1 },
      { batch: 2, m: 10, n: 16, k: 20, batchA: 1, transA: true },
    ]) {
      const r = await direct(c, { layout: 'rows' }, 46);
      expectAllClose(r.got, reference(r.A, r.B, c), tol(c.k), 'broadcast C');
      const sb = await direct({ ...c, sumBatch: true }, { layout: 'rows' }, 47);
      expectAllClose(sb.got, reference(sb.A, sb.B, c, true), tol(c.k * c.batch), 'sumBatch C');
    }
  });

  it('is correct for other row counts, column widths and workgroup widths', async (ctx) => {
    if (!fits) ctx.skip();
    const c = { batch: 1, m: 45, n: 76, k: 28 };
    for (const [rows, tn, wgx] of [[1, 4, 8], [2, 24, 16], [4, 12, 8], [8, 8, 32]]) {
      const r = await direct(c, { layout: 'rows', rows, tn, wgx }, 48);
      expectAllClose(r.got, reference(r.A, r.B, c), tol(c.k), `rows ${rows} tn ${tn} wgx ${wgx}`);
    }
  });

  it('propagates NaN and Inf only through the rows they touch', async (ctx) => {
    if (!fits) ctx.skip();
    await expectNanInfRows(12, 9); // K = 12: the rows layout; Inf in the 4-step K tail
  });

  it('rejects shapes and tilings it cannot run, naming what is wrong', async (ctx) => {
    if (!fits) ctx.skip();
    await expect(direct({ batch: 1, m: 4, n: 4, k: 6 }, { layout: 'rows' }, 49)).rejects.toThrow(/the rows layout needs K % 4 == 0, got K = 6/);
    await expect(direct({ batch: 1, m: 4, n: 4, k: 8 }, { layout: 'rows', tn: 10 }, 49)).rejects.toThrow(/tn must be a multiple of 4 in \[4, 32\], got 10/);
    await expect(direct({ batch: 1, m: 4, n: 4, k: 8 }, { layout: 'rows', rows: 9 }, 49)).rejects.toThrow(/rows must be an integer in \[1, 8\], got 9/);
    await expect(direct({ batch: 1, m: 4, n: 4, k: 8 }, { layout: 'diag' as 'rows' }, 49)).rejects.toThrow(/layout must be 'cols' or 'rows', got diag/);
  });
});

describe('subgroup matmul, rows layout with texture operands', () => {
  // K and N multiples of 64 (a texture row must be a multiple of 256 bytes); M ragged.
  const SOURCES = [['texture', 'texture'], ['texture', 'buffer'], ['buffer', 'texture'], ['buffer', 'buffer']] as const;
  for (const [batch, m, n, k, transA, transB] of [[1, 37, 64, 64, false, false], [2, 19, 128, 192, false, true], [3, 50, 64, 128, true, false]] as const) {
    it(`B=${batch} M=${m} N=${n} K=${k} transA=${transA} transB=${transB}: every pair of operand sources`, async (ctx) => {
      if (!fits) ctx.skip();
      const c = { batch, m, n, k, transA, transB };
      for (const [aSource, bSource] of SOURCES) {
        for (const storageTextures of [true, false]) {
          if (storageTextures && !storageTextureReads(rt)) continue;
          const r = await direct(c, { layout: 'rows', aSource, bSource, storageTextures }, batch + m + n + k);
          expectAllClose(r.got, reference(r.A, r.B, c), tol(k), `C (A ${aSource}, B ${bSource}, ${storageTextures ? 'storage' : 'sampled'} textures)`);
        }
      }
    });
  }

  it('reads a transposed A in place (textureT: 4 consecutive rows per texel) where M % 64 == 0', async (ctx) => {
    if (!fits) ctx.skip();
    for (const c of [
      { batch: 1, m: 64, n: 64, k: 64, transA: true },
      { batch: 2, m: 128, n: 36, k: 36, transA: true, transB: true }, // K % 8 == 4 tail, ragged N
      { batch: 3, m: 64, n: 16, k: 24, transA: true, batchA: 1 },
    ]) {
      for (const bSource of c.n % 64 === 0 ? (['texture', 'buffer'] as const) : (['buffer'] as const)) {
        const r = await direct(c, { layout: 'rows', aSource: 'textureT', bSource }, 57 + c.m);
        expectAllClose(r.got, reference(r.A, r.B, c), tol(c.k), `C (A textureT, B ${bSource})`);
      }
      const sb = await direct({ ...c, sumBatch: true }, { layout: 'rows' }, 58); // the default picks textureT
      expectAllClose(sb.got, reference(sb.A, sb.B, c, true), tol(c.k * c.batch), 'sumBatch C (default source)');
    }
    const c = { batch: 1, m: 64, n: 8, k: 8, transA: true };
    const bn = randn(c.m, 59);
    const prev = randn(c.m * c.n, 60);
    const r = await direct(c, { layout: 'rows' }, 61, bn, prev);
    expectAllClose(r.got, reference(r.A, r.B, c).map((v, i) => v + prev[i]! + bn[Math.floor(i / c.n)]!), tol(c.k), 'bias m + accumulate');
    await expect(direct({ batch: 1, m: 64, n: 8, k: 8 }, { layout: 'rows', aSource: 'textureT' }, 62)).rejects.toThrow(/'textureT' reads a transposed A; transA is false/);
    await expect(direct(c, { layout: 'rows', aSource: 'textureT', rows: 3 }, 62)).rejects.toThrow(/'textureT' owns 4 rows per invocation, got rows 3/);
  });

  it('reads layer 0 of a broadcast operand, sums batches, adds bias and accumulates', async (ctx) => {
    if (!fits) ctx.skip();
    for (const c of [
      { batch: 3, m: 21, n: 64, k: 64, batchB: 1 },
      { batch: 2, m: 12, n: 64, k: 128, batchA: 1 },
    ]) {
      for (const sumBatch of [false, true]) {
        const r = await direct({ ...c, sumBatch }, { layout: 'rows', aSource: 'texture', bSource: 'texture' }, 51);
        expectAllClose(r.got, reference(r.A, r.B, c, sumBatch), tol(c.k * (sumBatch ? c.batch : 1)), `C (sumBatch ${sumBatch})`);
      }
    }
    const c = { batch: 2, m: 9, n: 64, k: 64 };
    const bn = randn(c.n, 52);
    const prev = randn(c.batch * c.m * c.n, 53);
    const r = await direct(c, { layout: 'rows', aSource: 'texture', bSource: 'texture' }, 54, bn, prev);
    expectAllClose(r.got, reference(r.A, r.B, c).map((v, i) => v + prev[i]! + bn[i % c.n]!), tol(c.k), 'bias n + accumulate');
  });

  it('is what the rows layout picks where a texture fits, and a forced texture that does not fit names why', async (ctx) => {
    if (!fits) ctx.skip();
    expect(textureFits(rt, { rowFloats: 64, rows: 10, layers: 1, offset: 0 })).toBe(true);
    expect(textureFits(rt, { rowFloats: 60, rows: 10, layers: 1, offset: 0 })).toBe(false);
    expect(textureFits(rt, { rowFloats: 64, rows: rt.limits.maxTextureDimension2D + 1, layers: 1, offset: 0 })).toBe(false);
    expect(textureFits(rt, { rowFloats: 64, rows: 10, layers: 1, offset: 8 })).toBe(false);
    await expect(direct({ batch: 1, m: 4, n: 8, k: 12 }, { layout: 'rows', aSource: 'texture' }, 55)).rejects.toThrow(/a row of 48 bytes is not a multiple of 256/);
  });
});

describe('subgroup matmul selection', () => {
  it('picks a workgroup width of 8 or 16 lanes, never below the widest subgroup', () => {
    expect([subgroupMatmulWidth(4, 8), subgroupMatmulWidth(32, 8), subgroupMatmulWidth(36, 8), subgroupMatmulWidth(4096, 8)]).toEqual([8, 8, 16, 16]);
    expect([subgroupMatmulWidth(4, 32), subgroupMatmulWidth(1024, 64), subgroupMatmulWidth(1024, 128)]).toEqual([32, 64, 128]);
  });

  it('rejects a forced subgroup path that does not fit, and an unknown path', () => {
    const a = rt.upload(new Float32Array(12));
    expect(() => matmul(rt, a, a, { batch: 1, m: 2, n: 3, k: 2, path: 'subgroup' })).toThrow(/path 'subgroup' needs .*N % 4 == 0 \(N = 3/);
    expect(() => matmul(rt, a, a, { batch: 1, m: 2, n: 2, k: 2, path: 'fast' as MatmulPath })).toThrow(/path must be 'auto', 'tiled' or 'subgroup', got fast/);
    rt.release(a);
  });
});
