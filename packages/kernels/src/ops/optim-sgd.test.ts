import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../runtime/runtime.js';
import { expectAllClose, randn } from '../testing/reference.js';
import { gradNormSquaredReference } from './adamw.reference.js';
import { gradNormSquared } from './grad-norm.js';
import { sgdMomentum } from './optim-sgd.js';
import { createSegmentTable, releaseSegments, type SegmentLayout, type SegmentTable } from './segments.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroy());

const SENTINEL = -777.25;
const LENGTHS = [3, 0, 129, 66, 1];

function arena(table: SegmentTable, seed: number): Float32Array {
  const a = new Float32Array(table.arenaLength).fill(SENTINEL);
  table.offsets.forEach((off, t) => a.set(randn(table.lengths[t]!, seed + t), off));
  return a;
}

/** Float64 PyTorch SGD step in place (padding untouched); returns false when skipped. */
function sgdReference(
  w: Float64Array,
  buf: Float64Array,
  g: Float32Array,
  layout: SegmentLayout,
  hyper: Float32Array,
  o: { step: number; momentum: number; dampening: number; nesterov: boolean; maxNorm?: number },
): boolean {
  const norm = Math.sqrt(gradNormSquaredReference(g, layout));
  if (o.maxNorm !== undefined && !Number.isFinite(norm)) return false;
  const scale = o.maxNorm === undefined ? 1 : Math.min(1, o.maxNorm / (norm + 1e-6));
  layout.offsets.forEach((off, t) => {
    for (let i = off; i < off + layout.lengths[t]!; i++) {
      const gi = g[i]! * scale + hyper[2 * t + 1]! * w[i]!;
      buf[i] = o.step === 1 ? gi : o.momentum * buf[i]! + (1 - o.dampening) * gi;
      w[i] = w[i]! - hyper[2 * t]! * (o.nesterov ? gi + o.momentum * buf[i]! : buf[i]!);
    }
  });
  return true;
}

describe('sgdMomentum', () => {
  for (const [label, o] of [
    ['heavy-ball with dampening', { momentum: 0.9, dampening: 0.1, nesterov: false }],
    ['Nesterov, clipped', { momentum: 0.8, dampening: 0, nesterov: true, maxNorm: 2 }],
    ['plain SGD (momentum 0)', { momentum: 0, dampening: 0, nesterov: false }],
  ] as const) {
    it(`${label}: steps 1..4 match the float64 reference, padding untouched`, async () => {
      const table = createSegmentTable(rt, LENGTHS, 64);
      const w0 = arena(table, 1);
      const wRef = Float64Array.from(w0);
      const bRef = new Float64Array(table.arenaLength).fill(SENTINEL);
      const w = rt.upload(w0);
      const mb = rt.upload(new Float32Array(table.arenaLength).fill(SENTINEL));
      const hyperHost = Float32Array.from({ length: 2 * LENGTHS.length }, (_, i) => (i % 2 ? 0.01 * i : 0.05 + 0.01 * i));
      const hyper = rt.upload(hyperHost);
      for (let step = 1; step <= 4; step++) {
        const gHost = arena(table, 100 * step);
        const g = rt.upload(gHost);
        const maxNorm = 'maxNorm' in o ? o.maxNorm : undefined;
        const clip = maxNorm !== undefined ? gradNormSquared(rt, g, table, { maxNorm }) : undefined;
        sgdMomentum(rt, { params: w, grads: g, momentumBuffer: mb }, table, hyper, { step, clip, ...o });
        expect(sgdReference(wRef, bRef, gHost, table, hyperHost, { step, maxNorm, ...o })).toBe(true);
        expectAllClose(await rt.readF32(w), wRef, { atol: 1e-5, rtol: 1e-5 }, `step ${step}: W`);
        expectAllClose(await rt.readF32(mb), bRef, { atol: 1e-5, rtol: 1e-5 }, `step ${step}: momentum buffer`);
        rt.release(g);
        if (clip) rt.release(clip);
      }
      for (const b of [w, mb, hyper]) rt.release(b);
      releaseSegments(rt, table);
    });
  }

  it('skips the step on a NaN gradient norm; rejects bad inputs naming the op', async () => {
    const table = createSegmentTable(rt, LENGTHS, 64);
    const w0 = arena(table, 3);
    const w = rt.upload(w0);
    const mb = rt.upload(arena(table, 4));
    const hyper = rt.upload(new Float32Array(2 * LENGTHS.length).fill(0.1));
    const gHost = arena(table, 5);
    gHost[table.offsets[2]!] = NaN;
    const g = rt.upload(gHost);
    const clip = gradNormSquared(rt, g, table, { maxNorm: 1 });
    sgdMomentum(rt, { params: w, grads: g, momentumBuffer: mb }, table, hyper, { step: 2, clip });
    expect(await rt.readF32(w)).toEqual(w0);
    const short = rt.createBuffer(64 * 4);
    expect(() => sgdMomentum(rt, { params: w, grads: short, momentumBuffer: mb }, table, hyper, { step: 1 })).toThrow(
      new RegExp(`sgdMomentum: grads arena has 64 elements, the segment table ${table.arenaLength}`),
    );
    expect(() => sgdMomentum(rt, { params: w, grads: g, momentumBuffer: mb }, table, hyper, { step: 1, nesterov: true, momentum: 0 })).toThrow(
      /sgdMomentum: Nesterov/,
    );
    for (const b of [w, mb, hyper, g, clip, short]) rt.release(b);
    releaseSegments(rt, table);
  });
});
