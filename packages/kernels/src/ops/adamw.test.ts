import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { Runtime } from '../runtime/runtime.js';
import { expectAllClose, randn, randu, rng } from '../testing/reference.js';
import { maskedAdamW, type AdamWMask } from './adamw.js';
import { adamwReference, gradNormSquaredReference, type AdamWReferenceMask } from './adamw.reference.js';
import { gradNormSquared } from './grad-norm.js';
import { createSegmentTable, releaseSegments, type SegmentTable } from './segments.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroy());

const SENTINEL = 12345.5;
// odd lengths, an empty tensor, a single element, several chunks per tensor at chunkSize 64
const LENGTHS = [5, 0, 130, 257, 1, 64 * 3 + 3];

/** An arena with random values inside the tensors and SENTINEL in the padding. */
function arena(table: SegmentTable, seed: number, fill: (n: number, seed: number) => Float32Array): Float32Array {
  const a = new Float32Array(table.arenaLength).fill(SENTINEL);
  table.offsets.forEach((off, t) => a.set(fill(table.lengths[t]!, seed + t), off));
  return a;
}

interface Harness {
  table: SegmentTable;
  w: GpuBuffer;
  m: GpuBuffer;
  v: GpuBuffer;
  hyper: GpuBuffer;
  hyperHost: Float32Array;
  ref: { w: Float64Array; m: Float64Array; v: Float64Array };
  release(): void;
}

function harness(lengths: number[], chunkSize = 64, seed = 1): Harness {
  const table = createSegmentTable(rt, lengths, chunkSize);
  const w0 = arena(table, seed, (n, s) => randn(n, s, 0.5));
  const m0 = arena(table, seed + 100, (n, s) => randn(n, s, 0.01));
  const v0 = arena(table, seed + 200, (n, s) => randu(n, s, 0, 1e-3));
  // parameter groups: distinct lr and wd per tensor
  const hyperHost = Float32Array.from({ length: 2 * lengths.length }, (_, i) => (i % 2 === 0 ? 1e-2 * (1 + (i >> 1)) : 0.05 * (i >> 1)));
  const h: Harness = {
    table,
    w: rt.upload(w0),
    m: rt.upload(m0),
    v: rt.upload(v0),
    hyper: rt.upload(hyperHost.length ? hyperHost : new Float32Array(2)),
    hyperHost,
    ref: { w: Float64Array.from(w0), m: Float64Array.from(m0), v: Float64Array.from(v0) },
    release() {
      for (const b of [h.w, h.m, h.v, h.hyper]) rt.release(b);
      releaseSegments(rt, table);
    },
  };
  return h;
}

async function expectState(h: Harness, what: string, tol = { atol: 2e-6, rtol: 2e-5 }): Promise<void> {
  expectAllClose(await rt.readF32(h.w), h.ref.w, tol, `${what}: W`);
  expectAllClose(await rt.readF32(h.m), h.ref.m, tol, `${what}: m`);
  expectAllClose(await rt.readF32(h.v), h.ref.v, tol, `${what}: v`);
}

/** Runs steps 1..steps with fresh gradients on GPU and reference, comparing after every step. */
async function runSteps(h: Harness, opts: { maxNorm?: number; mask?: AdamWMask; refMask?: AdamWReferenceMask; gradScale?: number }, steps = 5) {
  const norms: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const gHost = arena(h.table, 1000 + step, (n, s) => randn(n, s, opts.gradScale ?? 1));
    const g = rt.upload(gHost);
    const clip = opts.maxNorm !== undefined ? gradNormSquared(rt, g, h.table, { maxNorm: opts.maxNorm }) : undefined;
    maskedAdamW(rt, { params: h.w, grads: g, m: h.m, v: h.v }, h.table, h.hyper, { step, clip, mask: opts.mask });
    const r = adamwReference(h.ref, gHost, h.table, h.hyperHost, { step, maxNorm: opts.maxNorm, mask: opts.refMask });
    norms.push(r.norm);
    if (clip) {
      const rec = await rt.readF32(clip);
      expectAllClose([rec[1]!, rec[2]!, rec[3]!], [r.norm, r.scale, 0], { atol: 1e-6, rtol: 1e-5 }, `step ${step}: clip record`);
      rt.release(clip);
    }
    await expectState(h, `step ${step}`);
    rt.release(g);
  }
  return norms;
}

describe('maskedAdamW', () => {
  it('plain AdamW, per-tensor lr/wd, steps 1..5, padding untouched', async () => {
    const h = harness(LENGTHS);
    await runSteps(h, {});
    const w = await rt.readF32(h.w);
    // the padding after tensor 0 (5 elements in a 64-element slot) still holds the sentinel
    expect(Array.from(w.slice(5, 64)).every((x) => x === SENTINEL)).toBe(true);
    h.release();
  });

  it('clipping active (scale < 1) and inactive (scale = 1)', async () => {
    const h = harness(LENGTHS, 64, 2);
    // ‖g‖ ≈ √N ≈ 24 for these sizes: maxNorm 1 clips hard, 1e6 leaves g alone
    const active = await runSteps(h, { maxNorm: 1 });
    expect(Math.min(...active)).toBeGreaterThan(1);
    const h2 = harness(LENGTHS, 64, 3);
    await runSteps(h2, { maxNorm: 1e6 });
    h.release();
    h2.release();
  });

  it('hard bit mask: unset elements keep W, m, v exactly', async () => {
    const h = harness(LENGTHS, 64, 4);
    const r = rng(7);
    const bitsHost = Uint32Array.from({ length: Math.ceil(h.table.arenaLength / 32) }, () => (r() * 2 ** 32) >>> 0);
    const bits = rt.upload(bitsHost);
    const before = [await rt.readF32(h.w), await rt.readF32(h.m), await rt.readF32(h.v)];
    await runSteps(h, { mask: { mode: 'bits', bits }, refMask: { mode: 'bits', bits: bitsHost } });
    const after = [await rt.readF32(h.w), await rt.readF32(h.m), await rt.readF32(h.v)];
    let masked = 0;
    let changed = 0;
    h.table.offsets.forEach((off, t) => {
      for (let i = off; i < off + h.table.lengths[t]!; i++) {
        const set = (bitsHost[i >>> 5]! >>> (i & 31)) & 1;
        for (let k = 0; k < 3; k++) {
          if (!set) expect(after[k]![i], `element ${i} state ${k}`).toBe(before[k]![i]);
          else if (after[k]![i] !== before[k]![i]) changed++;
        }
        masked += 1 - set;
      }
    });
    expect(masked).toBeGreaterThan(50);
    expect(changed).toBeGreaterThan(50);
    rt.release(bits);
    h.release();
  });

  it('SPIDER mode: W ← W0 + c ⊙ (W_new − W0) with c ∈ {0, 1, fractional}, moments unmasked', async () => {
    const h = harness(LENGTHS, 64, 5);
    const w0Host = await rt.readF32(h.w);
    const r = rng(9);
    const cHost = new Float32Array(h.table.arenaLength).map(() => {
      const x = r();
      return x < 0.3 ? 0 : x < 0.6 ? 1 : x;
    });
    const w0 = rt.upload(w0Host);
    const c = rt.upload(cHost);
    await runSteps(h, { mask: { mode: 'spider', w0, c }, refMask: { mode: 'spider', w0: w0Host, c: cHost } });
    const w = await rt.readF32(h.w);
    const m = await rt.readF32(h.m);
    let pinned = 0;
    h.table.offsets.forEach((off, t) => {
      for (let i = off; i < off + h.table.lengths[t]!; i++) {
        if (cHost[i] === 0) {
          expect(w[i]).toBe(w0Host[i]);
          pinned++;
          expect(m[i]).not.toBe(0); // moments move even where the weight is pinned
        }
      }
    });
    expect(pinned).toBeGreaterThan(50);
    rt.release(w0);
    rt.release(c);
    h.release();
  });

  it('many chunks (> workgroup size) in the norm reduction, large chunk tails', async () => {
    const h = harness([1000, 37, 2], 4, 6); // 261 chunks of 4 elements
    await runSteps(h, { maxNorm: 3 }, 2);
    const h2 = harness([4099, 70], 4096, 7); // one tensor with a 3-element second chunk
    await runSteps(h2, { maxNorm: 1e3 }, 2);
    h.release();
    h2.release();
  });

  it('empty tensors and an all-empty table', async () => {
    const h = harness([0, 1, 0], 64, 8);
    await runSteps(h, { maxNorm: 1 }, 2);
    h.release();
    const table = createSegmentTable(rt, [0, 0]);
    const g = rt.createBuffer(0);
    const rec = gradNormSquared(rt, g, table, { maxNorm: 1 });
    expect(Array.from(await rt.readF32(rec))).toEqual([0, 0, 1, 0]);
    const hyper = rt.upload(new Float32Array(4));
    maskedAdamW(rt, { params: g, grads: g, m: g, v: g }, table, hyper, { step: 1, clip: rec });
    await rt.sync();
    for (const b of [g, rec, hyper]) rt.release(b);
    releaseSegments(rt, table);
  });

  it('NaN gradient: with a clip record the step is skipped and the norm reads NaN', async () => {
    const h = harness(LENGTHS, 64, 9);
    const gHost = arena(h.table, 50, (n, s) => randn(n, s));
    gHost[h.table.offsets[2]! + 7] = NaN;
    const g = rt.upload(gHost);
    const before = [await rt.readF32(h.w), await rt.readF32(h.m), await rt.readF32(h.v)];
    for (const maxNorm of [1, undefined]) {
      const clip = gradNormSquared(rt, g, h.table, maxNorm === undefined ? {} : { maxNorm });
      maskedAdamW(rt, { params: h.w, grads: g, m: h.m, v: h.v }, h.table, h.hyper, { step: 1, clip });
      const rec = await rt.readF32(clip);
      expect(Number.isNaN(rec[0]) && Number.isNaN(rec[1])).toBe(true);
      expect(rec[3]).toBe(1);
      expect(await rt.readF32(h.w)).toEqual(before[0]);
      expect(await rt.readF32(h.m)).toEqual(before[1]);
      expect(await rt.readF32(h.v)).toEqual(before[2]);
      rt.release(clip);
    }
    // +Inf gradient also reads as non-finite
    const gInf = rt.upload(gHost.map((x) => (Number.isNaN(x) ? Infinity : x)));
    const recInf = gradNormSquared(rt, gInf, h.table, { maxNorm: 1 });
    expect((await rt.readF32(recInf))[1]).toBe(Infinity);
    // without a clip record, NaN propagates into its own element only
    maskedAdamW(rt, { params: h.w, grads: g, m: h.m, v: h.v }, h.table, h.hyper, { step: 1 });
    const r = adamwReference(h.ref, gHost, h.table, h.hyperHost, { step: 1 });
    expect(r.skipped).toBe(false);
    await expectState(h, 'NaN without clip');
    const w = await rt.readF32(h.w);
    expect(w.filter((x) => Number.isNaN(x)).length).toBe(1);
    for (const b of [g, gInf, recInf]) rt.release(b);
    h.release();
  });

  it('gradNormSquared matches the float64 reference', async () => {
    const table = createSegmentTable(rt, [3, 301, 77], 16);
    const gHost = arena(table, 60, (n, s) => randn(n, s, 2));
    const g = rt.upload(gHost);
    const rec = await rt.readF32(gradNormSquared(rt, g, table));
    const s = gradNormSquaredReference(gHost, table);
    expectAllClose([rec[0]!, rec[1]!, rec[2]!, rec[3]!], [s, Math.sqrt(s), 1, 0], { rtol: 1e-5 }, 'norm record');
    rt.release(g);
    releaseSegments(rt, table);
  });

  it('rejects bad inputs, naming the op', () => {
    const h = harness([10, 3]);
    const n = h.table.arenaLength;
    const short = rt.createBuffer((n - 64) * 4);
    const base = { params: h.w, grads: h.w, m: h.m, v: h.v };
    expect(() => maskedAdamW(rt, { ...base, grads: short }, h.table, h.hyper, { step: 1 })).toThrow(
      /maskedAdamW: grads arena has 64 elements, the segment table 128/,
    );
    expect(() => maskedAdamW(rt, base, h.table, h.hyper, { step: 1, mask: { mode: 'bits', bits: rt.createBuffer(4) } })).toThrow(
      /maskedAdamW: bit mask has 1 words, need 4/,
    );
    expect(() => maskedAdamW(rt, base, h.table, h.hyper, { step: 1, mask: { mode: 'spider', w0: h.w, c: short } })).toThrow(/maskedAdamW: c arena/);
    expect(() => maskedAdamW(rt, base, h.table, rt.createBuffer(8), { step: 1 })).toThrow(/maskedAdamW: hyper-parameters/);
    expect(() => maskedAdamW(rt, base, h.table, h.hyper, { step: 0 })).toThrow(/maskedAdamW: step/);
    expect(() => gradNormSquared(rt, short, h.table)).toThrow(/gradNormSquared: gradient arena has 64 elements/);
    expect(() => gradNormSquared(rt, h.w, h.table, { maxNorm: -1 })).toThrow(/gradNormSquared: maxNorm/);
    rt.release(short);
    h.release();
  });
});
