import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../runtime/runtime.js';
import { expectAllClose, randn, randu } from '../testing/reference.js';
import { importanceScores, spiderInit, spiderStep } from './importance.js';
import { importanceScoresRef, importanceStatsRef, spiderRankRef, spiderStepRef } from './importance.reference.js';
import { segmentStats } from './importance-stats.js';
import { createSegmentTable, releaseSegments, segmentLayout, type SegmentLayout, type SegmentTable } from './segments.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

// Odd lengths in one arena; tensor 7 is all zero, 8 mixes huge and tiny magnitudes, 9 sits at 1e3 ± 1,
// 10 is constant non-zero, 11 is empty.
const LENGTHS = [1, 5, 63, 64, 65, 4097, 10000, 200, 300, 3000, 70, 0];
const SENTINEL = 777.25;

/** An arena with `fill(t, n, seed)` per tensor and `pad` in the padding. */
function arena(layout: SegmentLayout, seed: number, pad: number, fill?: (t: number, n: number, seed: number) => Float32Array): Float32Array {
  const a = new Float32Array(layout.arenaLength).fill(pad);
  layout.lengths.forEach((n, t) => {
    const v = fill ? fill(t, n, seed + 17 * t) : randn(n, seed + 17 * t);
    a.set(v, layout.offsets[t]);
  });
  return a;
}

/** The test tensors: random normals except the special ones listed at LENGTHS. */
function special(t: number, n: number, seed: number): Float32Array {
  if (t === 7) return new Float32Array(n);
  if (t === 8) return randn(n, seed).map((v, i) => (i % 3 === 0 ? v * 1e15 : v * 1e-15));
  if (t === 9) return randu(n, seed, 999, 1001);
  if (t === 10) return new Float32Array(n).fill(-0.1);
  return randn(n, seed);
}

/** Per-tensor atol for rank values: 1e-5 plus the f32 conditioning of (|x| − mean)/std. */
function rankTol(x: ArrayLike<number>, layout: SegmentLayout): number[] {
  const stats = importanceStatsRef(Float64Array.from(x), layout);
  return layout.lengths.map((n, t) => {
    let max = 0;
    for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(x[layout.offsets[t]! + i]!));
    const std = stats[2 * t + 1]!;
    return 1e-5 + (std > 0 ? (2 ** -24 * max) / std : 0);
  });
}

function tensor(a: ArrayLike<number>, layout: SegmentLayout, t: number): number[] {
  const off = layout.offsets[t]!;
  return Array.from({ length: layout.lengths[t]! }, (_, i) => a[off + i]!);
}

function expectPadding(a: Float32Array, layout: SegmentLayout, value: number, what: string): void {
  let k = 0;
  layout.lengths.forEach((n, t) => {
    const end = t + 1 < layout.lengths.length ? layout.offsets[t + 1]! : layout.arenaLength;
    for (let i = layout.offsets[t]! + n; i < end; i++, k++) {
      if (!Object.is(a[i], value)) throw new Error(`${what}: padding element ${i} (after tensor ${t}) changed to ${a[i]}`);
    }
  });
  expect(k, `${what}: padding elements checked`).toBeGreaterThan(0);
}

describe('segmentStats', () => {
  it('gives mean and population std of |x| and of x per tensor, ignoring NaN padding', async () => {
    const table = createSegmentTable(rt, LENGTHS, 1024);
    const x = arena(table, 1, NaN, special);
    const xb = rt.upload(x);
    for (const abs of [true, false]) {
      const got = await rt.readF32(segmentStats(rt, xb, table, { abs }));
      const want = importanceStatsRef(x, table, { abs });
      expectAllClose(got, want, { atol: 1e-30, rtol: 2e-5 }, `stats abs=${abs}`);
    }
    releaseSegments(rt, table);
  });

  it('is stable for 1e3 ± 1 (a naive f32 Σx² − (Σx)²/n is not)', async () => {
    const lengths = [4097, 100000];
    const table = createSegmentTable(rt, lengths, 4096);
    const x = arena(table, 5, 0, (_t, n, seed) => randu(n, seed, 999, 1001));
    const got = await rt.readF32(segmentStats(rt, rt.upload(x), table));
    const want = importanceStatsRef(x, table);
    expectAllClose(got, want, { atol: 0, rtol: 1e-4 }, 'clustered stats');
    // the naive f32 formula on the same data is far off: the test can tell the difference
    const f = Math.fround;
    let s1 = 0;
    let s2 = 0;
    for (const v of tensor(x, table, 1)) {
      s1 = f(s1 + v);
      s2 = f(s2 + f(v * v));
    }
    const naiveStd = Math.sqrt(Math.max(f(f(s2 / 100000) - f(f(s1 / 100000) ** 2)), 0));
    expect(Math.abs(naiveStd - want[3]!) / want[3]!).toBeGreaterThan(1e-2);
    releaseSegments(rt, table);
  });

  it('returns zeros for empty tensors and handles a single element', async () => {
    const table = createSegmentTable(rt, [0, 1, 0]);
    const got = await rt.readF32(segmentStats(rt, rt.upload(new Float32Array(table.arenaLength).fill(-3)), table));
    expect(Array.from(got)).toEqual([0, 0, 3, 0, 0, 0]);
    releaseSegments(rt, table);
  });
});

describe('spiderInit', () => {
  it('O = rank(W0) per tensor (all-zero → 0, constant → 0.5), padding untouched', async () => {
    for (const chunk of [256, 4096]) {
      const table = createSegmentTable(rt, LENGTHS, chunk);
      const w0 = arena(table, 2, NaN, special);
      const out = rt.upload(new Float32Array(table.arenaLength).fill(SENTINEL));
      spiderInit(rt, { w0: rt.upload(w0), table, out });
      const got = await rt.readF32(out);
      const want = spiderRankRef(w0, table, new Float32Array(table.arenaLength).fill(SENTINEL));
      const tol = rankTol(w0, table);
      LENGTHS.forEach((_, t) => expectAllClose(tensor(got, table, t), tensor(want, table, t), { atol: tol[t], rtol: 0 }, `O tensor ${t} chunk ${chunk}`));
      expect(tensor(got, table, 7).every((v) => v === 0)).toBe(true);
      expect(tensor(got, table, 10).every((v) => v === 0.5)).toBe(true);
      expectPadding(got, table, SENTINEL, 'O');
      releaseSegments(rt, table);
    }
  });
});

describe('spiderStep', () => {
  /** Arenas for a SPIDER run; tensor 8 of W0 is all zero (O = 0 → c = 1 wherever G > 0). */
  function setup(table: SegmentTable) {
    const w0 = arena(table, 3, NaN, (t, n, seed) => (t === 8 ? new Float32Array(n) : special(t, n, seed)));
    const s0 = arena(table, 4, SENTINEL, (t, n, seed) => (t === 7 ? new Float32Array(n) : randn(n, seed, 0.01)));
    return { w0, s0 };
  }

  it('matches the float64 reference over two steps (S, G, c), padding untouched', async () => {
    const table = createSegmentTable(rt, LENGTHS, 1024);
    const { w0, s0 } = setup(table);
    const o = spiderInit(rt, { w0: rt.upload(w0), table });
    const oRef = spiderRankRef(w0, table);
    const sb = rt.upload(s0);
    const cb = rt.upload(new Float32Array(table.arenaLength).fill(SENTINEL));
    const sRef = Float64Array.from(s0);
    const cRef = new Float64Array(table.arenaLength).fill(SENTINEL);
    for (let step = 0; step < 2; step++) {
      const g = arena(table, 10 + step, NaN, special);
      spiderStep(rt, { g: rt.upload(g), s: sb, o, c: cb, table });
      const { grank, raw } = spiderStepRef(g, sRef, oRef, cRef, table);
      const s = await rt.readF32(sb);
      const c = await rt.readF32(cb);
      expectAllClose(s, sRef, { atol: 1e-6, rtol: 1e-6 }, `S step ${step}`);
      expectPadding(s, table, SENTINEL, 'S');
      expectPadding(c, table, SENTINEL, 'c');
      // G = rank(S), through the same rank kernel as O
      const gb = spiderInit(rt, { w0: sb, table });
      const G = await rt.readF32(gb);
      const tol = rankTol(s, table);
      LENGTHS.forEach((_, t) => expectAllClose(tensor(G, table, t), tensor(grank, table, t), { atol: tol[t], rtol: 0 }, `G tensor ${t} step ${step}`));
      LENGTHS.forEach((n, t) => {
        const off = table.offsets[t]!;
        // entries where G ≈ O may fall either side of G > O in f32; skip them (the count is small)
        const near = (i: number) => {
          const d = Math.abs(grank[off + i]! - oRef[off + i]!);
          return d > 0 && d < 4 * tol[t]!; // exact ties (e.g. 0 = 0) are decided the same way
        };
        const idx = Array.from({ length: n }, (_, i) => i).filter((i) => !near(i));
        expect(n - idx.length, `near ties in tensor ${t}`).toBeLessThanOrEqual(Math.max(2, n / 200));
        const cg = tensor(c, table, t);
        const cr = tensor(cRef, table, t);
        expectAllClose(idx.map((i) => cg[i]!), idx.map((i) => cr[i]!), { atol: 3 * tol[t]! + 2e-3 * (n - idx.length), rtol: 0 }, `c tensor ${t} step ${step}`);
        expect(cg.every((v) => v >= 0 && v <= 1), `c in [0, 1] tensor ${t}`).toBe(true);
        if (raw.subarray(off, off + n).some((v) => v > 0)) expect(Math.max(...cg), `max c tensor ${t}`).toBe(1);
        else expect(cg.every((v) => v === 0)).toBe(true);
      });
      // tensor 7: zero S and zero W0 → c = 0; tensor 8: O = 0 → c = 1 wherever S ≠ 0
      expect(tensor(c, table, 7).every((v) => v === 0)).toBe(true);
      expect(tensor(c, table, 8).every((v) => v === 1)).toBe(true);
    }
    releaseSegments(rt, table);
  });

  it('reference: normalized c is ≤ 1, reaches 1, and the pre-clamp mean of nonzero entries is 1', () => {
    const layout = segmentLayout([1000, 37]);
    const o = spiderRankRef(arena(layout, 20, 0), layout);
    const s = arena(layout, 21, 0);
    const c = new Float64Array(layout.arenaLength);
    const { raw } = spiderStepRef(arena(layout, 22, 0), s, o, c, layout);
    layout.lengths.forEach((n, t) => {
      const off = layout.offsets[t]!;
      const nz = Array.from(raw.subarray(off, off + n)).filter((v) => v > 0);
      expect(nz.length).toBeGreaterThan(0);
      const mean = nz.reduce((a, b) => a + b, 0) / nz.length;
      const scaled = nz.map((v) => v / mean);
      expect(scaled.reduce((a, b) => a + b, 0) / scaled.length).toBeCloseTo(1, 12);
      const ct = Array.from(c.subarray(off, off + n));
      expect(Math.max(...ct)).toBe(1);
      expect(ct.every((v, i) => v === Math.min(raw[off + i]! / mean, 1))).toBe(true);
    });
  });

  it('does nothing for a table without elements, and handles a single element', async () => {
    const empty = createSegmentTable(rt, [0, 0]);
    const z = rt.createBuffer(16);
    spiderStep(rt, { g: rt.createBuffer(16), s: z, o: rt.createBuffer(16), c: rt.createBuffer(16), table: empty });
    await rt.sync();
    const one = createSegmentTable(rt, [1]);
    const buf = (v: number) => rt.upload(new Float32Array(64).fill(v));
    const c = buf(SENTINEL);
    const s = buf(0);
    const o = spiderInit(rt, { w0: buf(2), table: one }); // constant → 0.5
    spiderStep(rt, { g: buf(-3), s, o, c, table: one }); // S = −3, constant → G = 0.5 = O → c = 0
    expect((await rt.readF32(c))[0]).toBe(0);
    expect((await rt.readF32(s))[0]).toBe(-3);
    releaseSegments(rt, empty);
    releaseSegments(rt, one);
  });

  it('rejects mismatched arenas, naming the op', () => {
    const table = createSegmentTable(rt, [100, 5]);
    const ok = rt.createBuffer(table.arenaLength * 4);
    const small = rt.createBuffer((table.arenaLength - 64) * 4);
    const o = rt.createBuffer(table.arenaLength * 4);
    const c = rt.createBuffer(table.arenaLength * 4);
    expect(() => spiderStep(rt, { g: small, s: ok, o, c, table })).toThrow(/spiderStep: arena 'g' has 128 elements .*\[128\] and \[192\]/);
    expect(() => spiderStep(rt, { g: ok, s: ok, o, c, table })).toThrow(/spiderStep: arenas 'g' and 's' must be different/);
    expect(() => spiderInit(rt, { w0: small, table })).toThrow(/spiderInit: arena 'w0'/);
    expect(() => segmentStats(rt, small, table)).toThrow(/segmentStats: arena 'x'/);
    expect(() => importanceScores(rt, { mode: 'snip', w: ok, out: c, table })).toThrow(/importanceScores\(snip\): mode 'snip' needs arena 'g'/);
    expect(() => importanceScores(rt, { mode: 'fisher', f: ok, g: o, out: small, table })).toThrow(/importanceScores\(fisher\): arena 'out'/);
    releaseSegments(rt, table);
  });
});

describe('importanceScores', () => {
  it('magnitude, snip, grad_sum and fisher match the reference (state accumulates), padding untouched', async () => {
    const table = createSegmentTable(rt, LENGTHS, 1024);
    const w0 = arena(table, 30, NaN, special);
    const w = arena(table, 31, NaN, special);
    const s0 = arena(table, 32, SENTINEL);
    const up = (a: Float32Array) => rt.upload(a);
    const sb = up(s0);
    const fb = up(s0.map((v) => (v === SENTINEL ? v : v * v)));
    // f32 state, like the GPU's (each step's update rounded once)
    const sRef = Float32Array.from(s0);
    const fRef = Float32Array.from(s0.map((v) => (v === SENTINEL ? v : v * v)));
    const check = async (out: ReturnType<typeof rt.createBuffer>, want: ArrayLike<number>, what: string) => {
      const got = await rt.readF32(out);
      expectAllClose(got, want, { atol: 0, rtol: 3e-7 }, what);
      expectPadding(got, table, SENTINEL, what);
    };
    const fresh = () => rt.upload(new Float32Array(table.arenaLength).fill(SENTINEL));
    const ref = () => new Float64Array(table.arenaLength).fill(SENTINEL);
    let out = importanceScores(rt, { mode: 'magnitude', w0: up(w0), out: fresh(), table });
    await check(out, importanceScoresRef('magnitude', { w0, out: ref() }, table), 'magnitude');
    for (let step = 0; step < 2; step++) {
      const g = arena(table, 40 + step, NaN, special);
      out = importanceScores(rt, { mode: 'snip', w: up(w), g: up(g), out: fresh(), table });
      await check(out, importanceScoresRef('snip', { w, g, out: ref() }, table), `snip ${step}`);
      out = importanceScores(rt, { mode: 'grad_sum', s: sb, g: up(g), out: fresh(), table });
      await check(out, importanceScoresRef('grad_sum', { s: sRef, g, out: ref() }, table), `grad_sum ${step}`);
      await check(sb, sRef, `S ${step}`);
      out = importanceScores(rt, { mode: 'fisher', f: fb, g: up(g), out: fresh(), table });
      await check(out, importanceScoresRef('fisher', { f: fRef, g, out: ref() }, table), `fisher ${step}`);
      await check(fb, fRef, `F ${step}`);
    }
    releaseSegments(rt, table);
  });
});
