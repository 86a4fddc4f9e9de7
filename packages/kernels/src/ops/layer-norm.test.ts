import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn } from '../testing/reference.js';
import { layerNormBackward, layerNormForward } from './layer-norm.js';
import { layerNormRef, normBackwardRef } from './layer-norm.reference.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const EPS = 1e-5;

async function read(buf: GpuBuffer | null): Promise<Float32Array> {
  if (!buf) throw new Error('expected a buffer');
  return rt.readF32(buf);
}

function releaseAll(...bufs: (GpuBuffer | null)[]): void {
  for (const b of bufs) if (b) rt.release(b);
}

async function runLayerNorm(n: number, c: number, affine: { weight: boolean; bias: boolean }, seed: number, threadsPerRow?: number) {
  const x = randn(n * c, seed, 2);
  for (let i = 0; i < x.length; i++) x[i]! += 0.5 * (i % 7); // non-zero row means
  const w = affine.weight ? randn(c, seed + 1) : null;
  const b = affine.bias ? randn(c, seed + 2) : null;
  const dy = randn(n * c, seed + 3);
  const bx = rt.upload(x);
  const bw = w ? rt.upload(w) : null;
  const bb = b ? rt.upload(b) : null;
  const bdy = rt.upload(dy);
  const fwd = layerNormForward(rt, bx, bw, bb, { shape: [n, c], eps: EPS, threadsPerRow });
  const bwd = layerNormBackward(rt, bdy, bx, bw, fwd.mean, fwd.rstd, { shape: [n, c], bias: affine.bias, threadsPerRow });
  const out = {
    y: await read(fwd.y),
    mean: await read(fwd.mean),
    rstd: await read(fwd.rstd),
    dx: await read(bwd.dx),
    dweight: bwd.dweight ? await read(bwd.dweight) : null,
    dbias: bwd.dbias ? await read(bwd.dbias) : null,
  };
  releaseAll(bx, bw, bb, bdy, fwd.y, fwd.mean, fwd.rstd, bwd.dx, bwd.dweight, bwd.dbias);
  return { x, w, b, dy, out };
}

describe('layerNormForward / layerNormBackward', () => {
  const shapes: [number, number][] = [
    [1, 37],
    [3, 257],
    [129, 1000],
    [5, 64],
    [2, 1],
    [129, 37],
  ];
  // threadsPerRow: the device default (1 on lavapipe: no barriers) and 32 (the GPU tree reduction)
  for (const [[n, c], tpr] of shapes.flatMap((s) => [[s, undefined], [s, 32]] as const)) {
    it(`matches the float64 reference for (N, C) = (${n}, ${c}), threadsPerRow ${tpr ?? 'default'}`, async () => {
      const { x, w, b, dy, out } = await runLayerNorm(n, c, { weight: true, bias: true }, n * 1000 + c, tpr);
      const ref = layerNormRef(x, w, b, n, c, EPS);
      expectAllClose(out.y, ref.y, { atol: 2e-5, rtol: 1e-4 }, 'y');
      expectAllClose(out.mean, ref.mean, { atol: 1e-5, rtol: 1e-5 }, 'mean');
      expectAllClose(out.rstd, ref.rstd, { atol: 0, rtol: 1e-5 }, 'rstd');
      const g = normBackwardRef(dy, x, w, n, c, EPS, false);
      expectAllClose(out.dx, g.dx, { atol: 5e-5, rtol: 1e-4 }, 'dx');
      // dw/db sum over N rows: the f32 error grows with N
      const tol = { atol: 1e-5 * Math.sqrt(n) * 4, rtol: 1e-4 };
      expectAllClose(out.dweight!, g.dweight, tol, 'dweight');
      expectAllClose(out.dbias!, g.dbias, tol, 'dbias');
    });
  }

  it('supports elementwise_affine = false and bias-only / weight-only', async () => {
    for (const affine of [
      { weight: false, bias: false },
      { weight: true, bias: false },
      { weight: false, bias: true },
    ]) {
      const n = 7;
      const c = 30;
      const { x, w, b, dy, out } = await runLayerNorm(n, c, affine, 11, 4);
      const ref = layerNormRef(x, w, b, n, c, EPS);
      const g = normBackwardRef(dy, x, w, n, c, EPS, false);
      const what = JSON.stringify(affine);
      expectAllClose(out.y, ref.y, { atol: 2e-5, rtol: 1e-4 }, `y ${what}`);
      expectAllClose(out.dx, g.dx, { atol: 5e-5, rtol: 1e-4 }, `dx ${what}`);
      expect(out.dweight === null).toBe(!affine.weight);
      expect(out.dbias === null).toBe(!affine.bias);
      if (out.dweight) expectAllClose(out.dweight, g.dweight, { atol: 5e-5, rtol: 1e-4 }, `dweight ${what}`);
      if (out.dbias) expectAllClose(out.dbias, g.dbias, { atol: 5e-5, rtol: 1e-4 }, `dbias ${what}`);
    }
  });

  it('reference gradients agree with finite differences of the reference forward', () => {
    const n = 3;
    const c = 5;
    const x = Float64Array.from(randn(n * c, 1, 1.5));
    const w = Float64Array.from(randn(c, 2));
    const b = Float64Array.from(randn(c, 3));
    const dy = randn(n * c, 4);
    const g = normBackwardRef(dy, x, w, n, c, EPS, false);
    const loss = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) =>
      dot(layerNormRef(xx, ww, bb, n, c, EPS).y, dy);
    expectAllClose(g.dx, numericGrad((v) => loss(v, w, b), x), { atol: 1e-6, rtol: 1e-5 }, 'dx vs numeric');
    expectAllClose(g.dweight, numericGrad((v) => loss(x, v, b), w), { atol: 1e-6, rtol: 1e-5 }, 'dw vs numeric');
    expectAllClose(g.dbias, numericGrad((v) => loss(x, w, v), b), { atol: 1e-6, rtol: 1e-5 }, 'db vs numeric');
  });

  it('normalizes a row of constant values to the bias, with rstd = 1/sqrt(eps)', async () => {
    const c = 37;
    const x = new Float32Array(2 * c).fill(3.25);
    x.fill(-1e3, c); // second row: a different constant
    const w = randn(c, 5);
    const b = randn(c, 6);
    const bx = rt.upload(x);
    const bw = rt.upload(w);
    const bb = rt.upload(b);
    const fwd = layerNormForward(rt, bx, bw, bb, { shape: [2, c], eps: EPS });
    const dy = randn(2 * c, 7);
    const bdy = rt.upload(dy);
    const bwd = layerNormBackward(rt, bdy, bx, bw, fwd.mean, fwd.rstd, { shape: [2, c] });
    expectAllClose(await read(fwd.rstd), [1 / Math.sqrt(EPS), 1 / Math.sqrt(EPS)], { atol: 0, rtol: 1e-5 }, 'rstd');
    expectAllClose(await read(fwd.mean), [3.25, -1e3], { atol: 0, rtol: 1e-7 }, 'mean');
    expectAllClose(await read(fwd.y), [...b, ...b], { atol: 1e-6, rtol: 0 }, 'y');
    // x̂ = 0, so dx = rstd·(g − mean(g)): large (rstd ≈ 316) but finite and exact up to f32 rounding
    expectAllClose(await read(bwd.dx), normBackwardRef(dy, x, w, 2, c, EPS, false).dx, { atol: 1e-3, rtol: 1e-4 }, 'dx');
    releaseAll(bx, bw, bb, bdy, fwd.y, fwd.mean, fwd.rstd, bwd.dx, bwd.dweight, bwd.dbias);
  });

  it('keeps precision for a large offset (two-pass variance, no E[x²] − E[x]² cancellation)', async () => {
    const n = 4;
    const c = 257;
    const x = randn(n * c, 9);
    for (let i = 0; i < x.length; i++) x[i] = 1e4 + x[i]!;
    const bx = rt.upload(x);
    const fwd = layerNormForward(rt, bx, null, null, { shape: [n, c] });
    const ref = layerNormRef(x, null, null, n, c, EPS);
    // ulp(1e4) ≈ 1e-3 limits what f32 x itself can represent; cancellation would give O(1) errors
    expectAllClose(await read(fwd.y), ref.y, { atol: 2e-3, rtol: 1e-3 }, 'y');
    expectAllClose(await read(fwd.rstd), ref.rstd, { atol: 0, rtol: 1e-3 }, 'rstd');
    releaseAll(bx, fwd.y, fwd.mean, fwd.rstd);
  });

  it('propagates NaN and Inf to their own row only', async () => {
    const n = 3;
    const c = 40;
    const x = randn(n * c, 12);
    x[5] = NaN;
    x[c + 9] = Infinity;
    const bx = rt.upload(x);
    const fwd = layerNormForward(rt, bx, null, null, { shape: [n, c] });
    const y = await read(fwd.y);
    expect(y.subarray(0, 2 * c).every(Number.isNaN)).toBe(true);
    expectAllClose(y.subarray(2 * c), layerNormRef(x.subarray(2 * c), null, null, 1, c, EPS).y, {}, 'clean row');
    releaseAll(bx, fwd.y, fwd.mean, fwd.rstd);
  });

  it('handles N = 0 (empty outputs, zero parameter gradients)', async () => {
    const c = 12;
    const bx = rt.createBuffer(0);
    const bw = rt.upload(randn(c, 1));
    const fwd = layerNormForward(rt, bx, bw, bw, { shape: [0, c] });
    expect(fwd.y.size).toBe(0);
    expect(fwd.mean.size).toBe(0);
    const bwd = layerNormBackward(rt, bx, bx, bw, fwd.mean, fwd.rstd, { shape: [0, c] });
    expect(bwd.dx.size).toBe(0);
    expect(Array.from(await read(bwd.dweight))).toEqual(new Array(c).fill(0));
    expect(Array.from(await read(bwd.dbias))).toEqual(new Array(c).fill(0));
    releaseAll(bx, bw, fwd.y, fwd.mean, fwd.rstd, bwd.dx, bwd.dweight, bwd.dbias);
  });

  it('gives bit-identical parameter gradients on repeated runs', async () => {
    const n = 300;
    const c = 64;
    const bx = rt.upload(randn(n * c, 21));
    const bw = rt.upload(randn(c, 22));
    const bdy = rt.upload(randn(n * c, 23));
    const fwd = layerNormForward(rt, bx, bw, bw, { shape: [n, c] });
    const runs: Float32Array[] = [];
    for (let k = 0; k < 3; k++) {
      const g = layerNormBackward(rt, bdy, bx, bw, fwd.mean, fwd.rstd, { shape: [n, c] });
      runs.push(await read(g.dweight));
      releaseAll(g.dx, g.dweight, g.dbias);
    }
    expect(Array.from(runs[1]!)).toEqual(Array.from(runs[0]!));
    expect(Array.from(runs[2]!)).toEqual(Array.from(runs[0]!));
    releaseAll(bx, bw, bdy, fwd.y, fwd.mean, fwd.rstd);
  });

  it('rejects bad shapes, naming the op and the shapes', () => {
    const x = rt.createBuffer(4 * 12);
    const w = rt.createBuffer(4 * 5);
    expect(() => layerNormForward(rt, x, null, null, { shape: [3, 5] })).toThrow(
      /layerNormForward: x must have 15 elements \(shapes \[3, 5\] and x \[12\]/,
    );
    expect(() => layerNormForward(rt, x, w, null, { shape: [3, 4] })).toThrow(/layerNormForward: weight .*\[3, 4\].*weight \[5\]/);
    expect(() => layerNormForward(rt, x, null, null, { shape: [12, 0] })).toThrow(/layerNormForward: .*\[12, 0\]/);
    expect(() => layerNormBackward(rt, x, x, null, w, w, { shape: [4, 3] })).toThrow(/layerNormBackward: mean .*\[4, 3\].*mean \[5\]/);
    rt.release(x);
    rt.release(w);
  });
});
