import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../runtime/runtime.js';
import { randn, rng } from '../testing/reference.js';
import { createSegmentTable, releaseSegments } from './segments.js';
import { topkThreshold, type TopkAmount, type TopkOptions } from './topk.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroy());

/**
 * Float64 reference: per group (a list of arena indices in order), sort the non-NaN elements by
 * |x| descending, then index ascending; take the first k. Returns thresholds and the packed mask.
 */
function reference(x: Float32Array, groups: number[][], ks: number[], n: number) {
  const mask = new Uint32Array(Math.max(1, Math.ceil(n / 32)));
  const thr = groups.map((idx, g) => {
    const cand = idx.filter((i) => !Number.isNaN(x[i]!));
    cand.sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
    const k = Math.min(ks[g]!, cand.length);
    for (let j = 0; j < k; j++) mask[cand[j]! >>> 5]! |= 1 << (cand[j]! & 31);
    return k === 0 ? NaN : Math.abs(x[cand[k - 1]!]!);
  });
  return { thr, mask };
}

const popcount = (m: Uint32Array) => m.reduce((s, w) => s + w.toString(2).split('1').length - 1, 0);
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

async function runTopk(x: Float32Array, amount: TopkAmount, options: TopkOptions) {
  const buf = rt.upload(x);
  const { threshold, mask, groups } = topkThreshold(rt, buf, amount, options);
  const thr = await rt.readF32(threshold);
  const m = await rt.readU32(mask);
  for (const b of [buf, threshold, mask]) rt.release(b);
  expect(thr.length).toBe(groups);
  return { thr, mask: m };
}

function expectSame(got: { thr: Float32Array; mask: Uint32Array }, want: { thr: number[]; mask: Uint32Array }, what: string) {
  expect(Array.from(got.thr), `${what}: thresholds`).toEqual(want.thr);
  const words = want.mask.length;
  const bad = range(0, words).find((w) => got.mask[w] !== want.mask[w]);
  expect(bad, `${what}: first differing mask word (got ${got.mask[bad ?? 0]}, want ${want.mask[bad ?? 0]})`).toBeUndefined();
}

/** Plain (global, no table) check of x with k against the reference, including the exact count. */
async function checkPlain(x: Float32Array, k: number, what: string, extra: Partial<TopkOptions> = {}) {
  const got = await runTopk(x, { k }, { mode: 'global', ...extra });
  const want = reference(x, [range(0, x.length)], [k], x.length);
  expectSame(got, want, what);
  const valid = x.filter((v) => !Number.isNaN(v)).length;
  expect(popcount(got.mask.subarray(0, Math.ceil(x.length / 32))), `${what}: popcount`).toBe(Math.min(k, valid));
}

describe('topkThreshold (global, one buffer)', () => {
  it('random sizes that are multiples of nothing, k from 1 to N', async () => {
    for (const n of [1, 2, 1000, 100003]) {
      const x = randn(n, n, 3);
      for (const k of new Set([1, Math.ceil(n / 3), n - 1, n].filter((k) => k >= 1))) {
        await checkPlain(x, k, `n=${n} k=${k}`);
      }
    }
  });

  it('fraction: k = ceil(fraction · N)', async () => {
    const x = randn(10007, 5);
    const got = await runTopk(x, { fraction: 0.05 }, { mode: 'global' });
    expectSame(got, reference(x, [range(0, x.length)], [Math.ceil(0.05 * 10007)], x.length), 'fraction 0.05');
    expect(popcount(got.mask)).toBe(501);
  });

  it('heavy ties: the lowest indices win among elements equal to the threshold', async () => {
    const r = rng(7);
    const few = Float32Array.from({ length: 5003 }, () => (r() < 0.5 ? -1 : 1) * Math.floor(r() * 10));
    for (const k of [1, 17, 2500, 4999]) await checkPlain(few, k, `10 values k=${k}`);
    await checkPlain(new Float32Array(3001).fill(-2.5), 1000, 'all equal');
    const zeros = new Float32Array(4099);
    zeros[100] = -0;
    zeros[4000] = 1e-3;
    await checkPlain(zeros, 17, 'zeros with one positive');
    const got = await runTopk(zeros, { k: 17 }, { mode: 'global' });
    expect(got.thr[0]).toBe(0);
    // index 4000 plus the 16 lowest zero indices
    expect(got.mask[0]).toBe(0xffff);
    expect(got.mask[4000 >>> 5]).toBe(1 << (4000 & 31));
  });

  it('negative scores select by magnitude; ±Inf are the largest', async () => {
    const x = randn(777, 11);
    x[3] = -Infinity;
    x[500] = Infinity;
    x[10] = -1e30;
    const got = await runTopk(x, { k: 3 }, { mode: 'global' });
    expect(Array.from(got.thr)).toEqual([Math.fround(1e30)]);
    expect(got.mask[0]).toBe((1 << 3) | (1 << 10));
    expect(got.mask[500 >>> 5]).toBe(1 << (500 & 31));
    await checkPlain(x, 2, 'two infinities');
    expect((await runTopk(x, { k: 2 }, { mode: 'global' })).thr[0]).toBe(Infinity);
  });

  it('NaN is never selected: k ≥ N selects every non-NaN element; all-NaN selects nothing', async () => {
    const x = randn(1501, 13);
    for (const i of [0, 31, 32, 700, 1500]) x[i] = NaN;
    await checkPlain(x, 1501, 'k = N with NaN');
    await checkPlain(x, 1496, 'k = non-NaN count');
    await checkPlain(x, 40, 'k = 40 with NaN');
    const got = await runTopk(new Float32Array(100).fill(NaN), { k: 100 }, { mode: 'global' });
    expect(got.thr[0]).toBeNaN();
    expect(popcount(got.mask)).toBe(0);
  });

  it('tiny and huge magnitudes (denormals keep their order)', async () => {
    const x = Float32Array.from([1e-45, -3e-39, 1e-38, 3.4e38, -3.3e38, 0, 2e-45, -1e-45]);
    await checkPlain(x, 5, 'extremes');
    const got = await runTopk(x, { k: 6 }, { mode: 'global' });
    expect(got.thr[0]).toBe(Math.fround(2e-45));
  });

  it('k = 0 and n = 0 give an empty mask and a NaN threshold', async () => {
    const x = randn(300, 17);
    const got = await runTopk(x, { k: 0 }, { mode: 'global' });
    expect(got.thr[0]).toBeNaN();
    expect(popcount(got.mask)).toBe(0);
    const empty = await runTopk(x, { k: 5 }, { mode: 'global', n: 0 });
    expect(empty.thr[0]).toBeNaN();
  });

  it('forced chunking: windows of 2048 / 8192 elements give the same mask (ties across windows)', async () => {
    const r = rng(19);
    const x = Float32Array.from({ length: 100003 }, () => Math.round(r() * 50) / 8);
    for (const k of [1, 3000, 50001]) {
      await checkPlain(x, k, `chunked 8192 k=${k}`, { maxChunkElements: 8192 });
    }
    await checkPlain(x, 77777, 'chunked 2048', { maxChunkElements: 2048 });
  });

  it('sample bracket: ties split by index ranking, many ties, and a bracket that overflows', async () => {
    const r = rng(31);
    const n = 200003;
    // ~10 copies of each value: the cut usually splits a few ties (ranked by index among candidates)
    const fine = Float32Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * Math.round(r() * 20000) / 20000);
    for (const k of [1, 777, 10001, 150000]) await checkPlain(fine, k, `fine ties k=${k}`);
    await checkPlain(fine, 10001, 'fine ties, windows', { maxChunkElements: 8192 });
    // ~4000 copies per value: more ties than the index ranking holds (chunked tie count instead)
    const coarse = Float32Array.from({ length: n }, () => Math.floor(r() * 50) - 25);
    for (const k of [5, 60001]) await checkPlain(coarse, k, `coarse ties k=${k}`);
    // one value almost everywhere: the bracket holds more than the candidate capacity (full passes)
    const flat = new Float32Array(n).fill(0.5);
    for (let i = 0; i < n; i += 997) flat[i] = -0.75;
    flat[5] = NaN;
    for (const k of [3, 201, 100000]) await checkPlain(flat, k, `flat k=${k}`);
  });

  it('rejects bad amounts naming the op and the value', () => {
    const buf = rt.upload(new Float32Array(10));
    for (const f of [0, 1.5, -0.1, NaN]) {
      expect(() => topkThreshold(rt, buf, { fraction: f }, { mode: 'global' })).toThrow(
        new RegExp(`topkThreshold: fraction must be in \\(0, 1\\], got ${f}`),
      );
    }
    expect(() => topkThreshold(rt, buf, { k: -1 }, { mode: 'global' })).toThrow(/topkThreshold: k must be a non-negative integer, got -1/);
    expect(() => topkThreshold(rt, buf, { k: 2.5 }, { mode: 'global' })).toThrow(/got 2.5/);
    expect(() => topkThreshold(rt, buf, { k: 1 }, { mode: 'global', n: 11 })).toThrow(/topkThreshold: scores hold 10 elements, need 11/);
    expect(() => topkThreshold(rt, buf, { k: 1 }, { mode: 'global', maxChunkElements: 100 })).toThrow(/maxChunkElements/);
    rt.release(buf);
  });
});

describe('topkThreshold over a segment arena', () => {
  const lengths = [5, 0, 130, 1000, 3, 4097, 777, 64];
  function arena(chunkSize: number, seed: number) {
    const table = createSegmentTable(rt, lengths, chunkSize);
    // padding holds huge values: selecting any of it would show up in the mask
    const x = new Float32Array(table.arenaLength).fill(1e30);
    const r = rng(seed);
    const groups = lengths.map((len, t) => range(table.offsets[t]!, table.offsets[t]! + len));
    for (const idx of groups) for (const i of idx) x[i] = (r() < 0.5 ? -1 : 1) * Math.floor(r() * 20);
    x[groups[3]![10]!] = NaN;
    return { table, x, groups };
  }

  it('per tensor: k_t = ceil(fraction · len_t), one threshold per tensor, exact ties', async () => {
    for (const chunkSize of [256, 4096]) {
      const { table, x, groups } = arena(chunkSize, chunkSize);
      const got = await runTopk(x, { fraction: 0.3 }, { mode: 'tensor', table });
      const ks = lengths.map((l) => Math.ceil(0.3 * l));
      expectSame(got, reference(x, groups, ks, table.arenaLength), `per tensor, chunk ${chunkSize}`);
      expect(got.thr[1]).toBeNaN(); // the empty tensor
      releaseSegments(rt, table);
    }
  });

  it('per tensor: explicit k per tensor, including 0 and ≥ length, and forced windows', async () => {
    const { table, x, groups } = arena(256, 23);
    const ks = [5, 3, 0, 999, 1, 2048, 800, 1];
    const want = reference(x, groups, ks, table.arenaLength);
    expectSame(await runTopk(x, { k: ks }, { mode: 'tensor', table }), want, 'per tensor k');
    expectSame(await runTopk(x, { k: ks }, { mode: 'tensor', table, maxChunkElements: 4096 }), want, 'per tensor k, windows');
    expect(() => topkThreshold(rt, rt.upload(x), { k: [1, 2] }, { mode: 'tensor', table })).toThrow(/topkThreshold: 2 counts k for 8 groups/);
    releaseSegments(rt, table);
  });

  it('global over all tensors: one threshold, ties broken in arena order, windows agree', async () => {
    const { table, x, groups } = arena(256, 29);
    const all = groups.flat();
    for (const k of [1, 1000, 3000, all.length]) {
      const want = reference(x, [all], [k], table.arenaLength);
      expectSame(await runTopk(x, { k }, { mode: 'global', table }), want, `global k=${k}`);
      expectSame(await runTopk(x, { k }, { mode: 'global', table, maxChunkElements: 4096 }), want, `global k=${k}, windows`);
    }
    expect(() => topkThreshold(rt, rt.upload(x), { k: 1 }, { mode: 'global', table, maxChunkElements: 100 })).toThrow(
      /topkThreshold: maxChunkElements/,
    );
    releaseSegments(rt, table);
  });

  it('rejects a table whose chunks do not start on mask words', () => {
    const table = createSegmentTable(rt, [100], 20);
    const buf = rt.createBuffer(table.arenaLength * 4);
    expect(() => topkThreshold(rt, buf, { k: 1 }, { mode: 'tensor', table })).toThrow(/chunkSize must be a multiple of 32, got 20/);
    rt.release(buf);
    releaseSegments(rt, table);
  });
});
