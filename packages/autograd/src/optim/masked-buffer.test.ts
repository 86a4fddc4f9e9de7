/**
 * MaskedAdamW's GPU-side mask inputs: setBitMaskBuffer (owned bit arena), setSpiderArenas (borrowed
 * W0 and c arenas) and the onGradients hook (this step's arenas, before the fused update), checked
 * against the CPU-mask path and the float64 AdamW reference.
 */
import { Runtime, segmentLayout, topkThreshold, type GpuBuffer } from '@keel/kernels';
import { adamwReference } from '../../../kernels/src/ops/adamw.reference.js';
import { expectAllClose, randn, randu } from '../../../kernels/src/testing/reference.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensor } from '../creation.js';
import { Parameter } from '../module.js';
import { MaskedAdamW } from './adamw.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

// sizes off the 4- and 64-element grids; one tensor spans several 64-element segments
const SHAPES = [[3, 5], [7], [1], [130]];
const LENGTHS = SHAPES.map((s) => s.reduce((a, b) => a * b, 1));
const layout = segmentLayout(LENGTHS);
const N = layout.arenaLength;
const STEPS = 3;
const HYPER = LENGTHS.flatMap(() => [0.01, 0.05]);

const params = (seed: number) =>
  SHAPES.map((shape, i) => {
    const t = tensor(rt, randn(LENGTHS[i]!, seed + i), shape);
    const p = new Parameter(t);
    t.dispose();
    return p;
  });
const grads = (step: number) => LENGTHS.map((n, i) => randn(n, 100 * step + i));
const setGrads = (ps: readonly Parameter[], gs: readonly Float32Array[]) =>
  ps.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = tensor(rt, gs[i]!, p.shape);
  });
const toArena = (xs: readonly ArrayLike<number>[]) => {
  const a = new Float64Array(N);
  xs.forEach((x, i) => a.set(Array.from(x), layout.offsets[i]!));
  return a;
};
const arenaOf = async (ps: readonly Parameter[]) => toArena(await Promise.all(ps.map(async (p) => (await p.toArray()) as Float32Array)));
const bitsOf = (keep: (t: number, k: number) => boolean) => {
  const words = new Uint32Array(Math.ceil(N / 32));
  LENGTHS.forEach((n, t) => {
    for (let k = 0; k < n; k++) if (keep(t, k)) words[(layout.offsets[t]! + k) >>> 5]! |= 1 << ((layout.offsets[t]! + k) & 31);
  });
  return words;
};
const expectArena = (a: Float64Array, b: Float64Array, what: string) =>
  LENGTHS.forEach((n, t) => expectAllClose(a.subarray(layout.offsets[t]!, layout.offsets[t]! + n), b.subarray(layout.offsets[t]!, layout.offsets[t]! + n), { atol: 2e-6, rtol: 2e-5 }, `${what}: tensor ${t}`));

describe('MaskedAdamW.setBitMaskBuffer', () => {
  it('equals setBitMask with the same bits, bit for bit, and the float64 reference', async () => {
    const keep = (t: number, k: number) => (k + 2 * t) % 3 !== 0;
    const a = params(1);
    const b = params(1);
    const optA = new MaskedAdamW(rt, a, { lr: 0.01, weightDecay: 0.05 });
    const optB = new MaskedAdamW(rt, b, { lr: 0.01, weightDecay: 0.05 });
    optA.setBitMask(new Map(a.map((p, t) => [p, Array.from({ length: p.size }, (_, k) => keep(t, k))] as const)));
    const words = bitsOf(keep);
    optB.setBitMaskBuffer(rt.upload(words), optB.table);
    expect(optB.maskMode).toBe('bits');
    const ref = { w: await arenaOf(a), m: new Float64Array(N), v: new Float64Array(N) };
    for (let t = 1; t <= STEPS; t++) {
      setGrads(a, grads(t));
      setGrads(b, grads(t));
      optA.step();
      optB.step();
      adamwReference(ref, toArena(grads(t)), layout, HYPER, { step: t, mask: { mode: 'bits', bits: words } });
    }
    for (const [i, p] of b.entries()) expect(await p.toArray(), `param ${i}`).toEqual(await a[i]!.toArray());
    expectArena(await arenaOf(b), ref.w, 'bit-mask buffer');
    optA.dispose();
    optB.dispose();
  });

  it('takes ownership: the buffer is released by the next mask and by dispose', () => {
    const ps = params(2);
    const opt = new MaskedAdamW(rt, ps, { lr: 0.01 });
    const first = rt.upload(bitsOf(() => true));
    opt.setBitMaskBuffer(first, opt.table);
    const second = rt.upload(bitsOf(() => false));
    opt.setBitMaskBuffer(second, opt.table);
    expect(first.isReleased).toBe(true);
    expect(second.isReleased).toBe(false);
    opt.dispose();
    expect(second.isReleased).toBe(true);
  });

  it('rejects a mask laid out for other tensors, or too small', () => {
    const ps = params(3);
    const opt = new MaskedAdamW(rt, ps, { lr: 0.01 });
    const other = segmentLayout([15, 7, 1, 129]);
    const bits = rt.upload(bitsOf(() => true));
    expect(() => opt.setBitMaskBuffer(bits, other)).toThrow(/setBitMaskBuffer: the mask was laid out for tensors \[15,7,1,129\].*this optimizer holds \[15,7,1,130\]/);
    const small = rt.createBuffer(4);
    expect(() => opt.setBitMaskBuffer(small, opt.table)).toThrow(`mask of 1 words, need ${Math.ceil(N / 32)} for ${N} arena elements`);
    expect(opt.maskMode).toBe('none');
    for (const b of [bits, small]) rt.release(b);
    opt.dispose();
  });
});

describe('MaskedAdamW.setSpiderArenas', () => {
  it('blends towards the given W0 with the given c (float64 reference) and never releases them', async () => {
    const ps = params(4);
    const opt = new MaskedAdamW(rt, ps, { lr: 0.01, weightDecay: 0.05 });
    const w0 = toArena(LENGTHS.map((n, t) => randn(n, 40 + t)));
    const c = toArena(LENGTHS.map((n, t) => randu(n, 50 + t, 0, 1)));
    const w0Buf = rt.upload(Float32Array.from(w0));
    const cBuf = rt.upload(Float32Array.from(c));
    opt.setSpiderArenas(w0Buf, cBuf, opt.table);
    expect(opt.maskMode).toBe('spider');
    const ref = { w: await arenaOf(ps), m: new Float64Array(N), v: new Float64Array(N) };
    const w032 = Float64Array.from(Float32Array.from(w0));
    const c32 = Float64Array.from(Float32Array.from(c));
    for (let t = 1; t <= STEPS; t++) {
      setGrads(ps, grads(t));
      opt.step();
      adamwReference(ref, toArena(grads(t)), layout, HYPER, { step: t, mask: { mode: 'spider', w0: w032, c: c32 } });
    }
    expectArena(await arenaOf(ps), ref.w, 'spider arenas');
    // a later setSpider takes its own snapshot and leaves the borrowed arenas alone
    opt.setSpider(new Map());
    expect(w0Buf.isReleased || cBuf.isReleased).toBe(false);
    opt.setSpiderArenas(w0Buf, cBuf, opt.table);
    opt.dispose();
    expect(w0Buf.isReleased || cBuf.isReleased).toBe(false);
    const fresh = new MaskedAdamW(rt, ps, { lr: 0.01 });
    expect(() => fresh.setSpiderArenas(w0Buf, w0Buf, layout)).toThrow(/'w0' and 'c' must be different buffers/);
    const short = rt.createBuffer(8);
    expect(() => fresh.setSpiderArenas(w0Buf, short, layout)).toThrow(`arena 'c' has 2 elements, the optimizer's arena ${N}`);
    expect(() => fresh.setSpiderArenas(w0Buf, cBuf, segmentLayout([15, 7, 2, 130]))).toThrow(/setSpiderArenas: the mask was laid out for tensors \[15,7,2,130\]/);
    fresh.dispose();
    for (const b of [w0Buf, cBuf, short]) rt.release(b);
  });
});

describe('MaskedAdamW.onGradients', () => {
  it("sees this step's gathered W, raw g and clip record; a mask set there applies to this very step", async () => {
    const ps = params(5);
    const opt = new MaskedAdamW(rt, ps, { lr: 0.01, weightDecay: 0.05, maxNorm: 2 });
    const seen: { step: number; w: Promise<Float32Array>; g: Promise<Float32Array>; clip: Promise<Float32Array> }[] = [];
    const order: string[] = [];
    opt.onGradients(({ params: w, grads: g, clip, step }) => {
      const copy = (b: GpuBuffer) => {
        const out = rt.createBuffer(b.size);
        rt.copy(b, out);
        return rt.readF32(out).finally(() => rt.release(out));
      };
      seen.push({ step, w: copy(w), g: copy(g), clip: copy(clip!) });
      // the top 3 |g| entries of each tensor update (exactly 3 per tensor, 1 in the 1-element one)
      const { threshold, mask } = topkThreshold(rt, g, { k: 3 }, { mode: 'tensor', table: opt.table });
      rt.release(threshold);
      opt.setBitMaskBuffer(mask, opt.table);
      order.push(`hook ${step}`);
      return () => order.push(`after ${step}`);
    });
    const ref = { w: await arenaOf(ps), m: new Float64Array(N), v: new Float64Array(N) };
    for (let t = 1; t <= STEPS; t++) {
      const before = Float64Array.from(ref.w);
      const gs = grads(t);
      setGrads(ps, gs);
      opt.step();
      order.push(`step ${t} returned`);
      const g = toArena(gs);
      const top = (tt: number, k: number) => {
        const off = layout.offsets[tt]!;
        const mags = Array.from({ length: LENGTHS[tt]! }, (_, i) => Math.abs(g[off + i]!));
        return mags.filter((x) => x > mags[k]!).length < 3;
      };
      const r = adamwReference(ref, g, layout, HYPER, { step: t, maxNorm: 2, mask: { mode: 'bits', bits: bitsOf(top) } });
      const s = seen[t - 1]!;
      expect(s.step).toBe(t);
      expectArena(Float64Array.from(await s.w), before, `W seen at step ${t}`);
      expectArena(Float64Array.from(await s.g), g, `g seen at step ${t}`);
      const clip = await s.clip;
      expect(clip[1]).toBeCloseTo(r.norm, 4);
      expect(clip[2]).toBeCloseTo(r.scale, 6);
    }
    expectArena(await arenaOf(ps), ref.w, 'masked by the hook');
    expect(order).toEqual([1, 2, 3].flatMap((t) => [`hook ${t}`, `after ${t}`, `step ${t} returned`]));
    opt.onGradients(null);
    setGrads(ps, grads(4));
    opt.step();
    expect(seen.length).toBe(STEPS);
    opt.dispose();
  });
});
