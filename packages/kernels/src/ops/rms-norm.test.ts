import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn } from '../testing/reference.js';
import { normBackwardRef, rmsNormRef } from './layer-norm.reference.js';
import { rmsNormBackward, rmsNormForward } from './rms-norm.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const EPS = 1e-6;

async function runRms(n: number, c: number, withWeight: boolean, seed: number, threadsPerRow?: number) {
  const x = randn(n * c, seed, 1.5);
  const w = withWeight ? randn(c, seed + 1) : null;
  const dy = randn(n * c, seed + 2);
  const bx = rt.upload(x);
  const bw = w ? rt.upload(w) : null;
  const bdy = rt.upload(dy);
  const fwd = rmsNormForward(rt, bx, bw, { shape: [n, c], eps: EPS, threadsPerRow });
  const bwd = rmsNormBackward(rt, bdy, bx, bw, fwd.rstd, { shape: [n, c], threadsPerRow });
  const out = {
    y: await rt.readF32(fwd.y),
    rstd: await rt.readF32(fwd.rstd),
    dx: await rt.readF32(bwd.dx),
    dweight: bwd.dweight ? await rt.readF32(bwd.dweight) : null,
  };
  for (const b of [bx, bw, bdy, fwd.y, fwd.rstd, bwd.dx, bwd.dweight] as (GpuBuffer | null)[]) if (b) rt.release(b);
  return { x, w, dy, out };
}

describe('rmsNormForward / rmsNormBackward', () => {
  const shapes: [number, number][] = [
    [1, 37],
    [3, 257],
    [129, 1000],
    [4, 1],
    [33, 64],
  ];
  // threadsPerRow: the device default (1 on lavapipe: no barriers) and 64 (the GPU tree reduction)
  for (const [[n, c], tpr] of shapes.flatMap((s) => [[s, undefined], [s, 64]] as const)) {
    it(`matches the float64 reference for (N, C) = (${n}, ${c}), threadsPerRow ${tpr ?? 'default'}`, async () => {
      const { x, w, dy, out } = await runRms(n, c, true, 7 * n + c, tpr);
      const ref = rmsNormRef(x, w, n, c, EPS);
      expectAllClose(out.y, ref.y, { atol: 2e-5, rtol: 1e-4 }, 'y');
      expectAllClose(out.rstd, ref.rstd, { atol: 0, rtol: 1e-5 }, 'rstd');
      const g = normBackwardRef(dy, x, w, n, c, EPS, true);
      expectAllClose(out.dx, g.dx, { atol: 5e-5, rtol: 1e-4 }, 'dx');
      expectAllClose(out.dweight!, g.dweight, { atol: 4e-5 * Math.sqrt(n), rtol: 1e-4 }, 'dweight');
    });
  }

  it('works without a weight (no dweight)', async () => {
    const { x, dy, out } = await runRms(6, 21, false, 3, 2);
    expect(out.dweight).toBeNull();
    expectAllClose(out.y, rmsNormRef(x, null, 6, 21, EPS).y, { atol: 2e-5, rtol: 1e-4 }, 'y');
    expectAllClose(out.dx, normBackwardRef(dy, x, null, 6, 21, EPS, true).dx, { atol: 5e-5, rtol: 1e-4 }, 'dx');
  });

  it('reference gradients agree with finite differences of the reference forward', () => {
    const n = 2;
    const c = 6;
    const x = Float64Array.from(randn(n * c, 1));
    const w = Float64Array.from(randn(c, 2));
    const dy = randn(n * c, 3);
    const g = normBackwardRef(dy, x, w, n, c, EPS, true);
    expectAllClose(g.dx, numericGrad((v) => dot(rmsNormRef(v, w, n, c, EPS).y, dy), x), { atol: 1e-6, rtol: 1e-5 }, 'dx vs numeric');
    expectAllClose(g.dweight, numericGrad((v) => dot(rmsNormRef(x, v, n, c, EPS).y, dy), w), { atol: 1e-6, rtol: 1e-5 }, 'dw vs numeric');
  });

  it('maps an all-zero row to zeros with rstd = 1/sqrt(eps), and propagates NaN to its row', async () => {
    const c = 9;
    const x = new Float32Array(3 * c);
    x.set(randn(c, 4), c);
    x[c + 2] = NaN;
    x.set(randn(c, 5, 1e-3), 2 * c); // tiny magnitudes: eps matters
    const bx = rt.upload(x);
    const fwd = rmsNormForward(rt, bx, null, { shape: [3, c], eps: EPS });
    const y = await rt.readF32(fwd.y);
    const rstd = await rt.readF32(fwd.rstd);
    expect(Array.from(y.subarray(0, c))).toEqual(new Array(c).fill(0));
    expectAllClose([rstd[0]!], [1 / Math.sqrt(EPS)], { atol: 0, rtol: 1e-5 }, 'rstd of zero row');
    expect(y.subarray(c, 2 * c).every(Number.isNaN)).toBe(true);
    expectAllClose(y.subarray(2 * c), rmsNormRef(x.subarray(2 * c), null, 1, c, EPS).y, { atol: 1e-5, rtol: 1e-4 }, 'tiny row');
    for (const b of [bx, fwd.y, fwd.rstd]) rt.release(b);
  });

  it('handles N = 0 (empty output, zero dweight)', async () => {
    const c = 8;
    const bx = rt.createBuffer(0);
    const bw = rt.upload(randn(c, 1));
    const fwd = rmsNormForward(rt, bx, bw, { shape: [0, c] });
    const bwd = rmsNormBackward(rt, bx, bx, bw, fwd.rstd, { shape: [0, c] });
    expect(fwd.y.size + bwd.dx.size).toBe(0);
    expect(Array.from(await rt.readF32(bwd.dweight!))).toEqual(new Array(c).fill(0));
    for (const b of [bx, bw, fwd.y, fwd.rstd, bwd.dx, bwd.dweight!]) rt.release(b);
  });

  it('rejects bad shapes, naming the op and the shapes', () => {
    const x = rt.createBuffer(4 * 12);
    const w = rt.createBuffer(4 * 4);
    expect(() => rmsNormForward(rt, x, w, { shape: [4, 3] })).toThrow(/rmsNormForward: weight .*\[4, 3\].*weight \[4\]/);
    expect(() => rmsNormBackward(rt, x, x, w, w, { shape: [3, 4] })).toThrow(/rmsNormBackward: rstd .*\[3, 4\].*rstd \[4\]/);
    expect(() => rmsNormForward(rt, x, null, { shape: [3, 4], threadsPerRow: 3 })).toThrow(/threadsPerRow must be a power of two/);
    rt.release(x);
    rt.release(w);
  });
});
