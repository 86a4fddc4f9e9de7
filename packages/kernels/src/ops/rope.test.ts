import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn } from '../testing/reference.js';
import { ropeBackward, ropeForward, type RopeLayout } from './rope.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

interface Geometry {
  shape: [number, number, number, number];
  layout: RopeLayout;
  offset: number;
  theta: number;
}

/** float64 RoPE (rotate_half pairs); sign −1 applies the inverse rotation. */
function ropeRef(x: ArrayLike<number>, g: Geometry, sign = 1): Float64Array {
  const [b, d1, d2, d] = g.shape;
  const [t, h] = g.layout === 'BTHD' ? [d1, d2] : [d2, d1];
  const half = d / 2;
  const y = new Float64Array(x.length);
  for (let bi = 0; bi < b; bi++) {
    for (let ti = 0; ti < t; ti++) {
      for (let hi = 0; hi < h; hi++) {
        const base = g.layout === 'BTHD' ? ((bi * t + ti) * h + hi) * d : ((bi * h + hi) * t + ti) * d;
        for (let i = 0; i < half; i++) {
          const ang = (g.offset + ti) * g.theta ** ((-2 * i) / d);
          const c = Math.cos(ang);
          const s = sign * Math.sin(ang);
          const x1 = x[base + i]!;
          const x2 = x[base + i + half]!;
          y[base + i] = x1 * c - x2 * s;
          y[base + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
  return y;
}

async function run(x: Float32Array, g: Geometry, backward = false): Promise<Float32Array> {
  const bx = rt.upload(x);
  const opts = { shape: g.shape, layout: g.layout, offset: g.offset, theta: g.theta };
  const by = backward ? ropeBackward(rt, bx, opts) : ropeForward(rt, bx, opts);
  const out = await rt.readF32(by);
  rt.release(bx);
  rt.release(by);
  return out;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

describe('ropeForward / ropeBackward', () => {
  const cases: Geometry[] = [
    { shape: [1, 1, 1, 2], layout: 'BTHD', offset: 0, theta: 10000 },
    { shape: [2, 5, 3, 64], layout: 'BTHD', offset: 0, theta: 10000 },
    { shape: [2, 3, 7, 38], layout: 'BHTD', offset: 0, theta: 10000 },
    { shape: [1, 129, 2, 18], layout: 'BTHD', offset: 17, theta: 500000 },
    { shape: [3, 2, 37, 10], layout: 'BHTD', offset: 5, theta: 10000 },
  ];
  for (const g of cases) {
    it(`matches the float64 reference: ${g.layout} [${g.shape.join(', ')}], offset ${g.offset}, θ ${g.theta}`, async () => {
      const x = randn(size(g.shape), size(g.shape), 1);
      // small positions: the f32 angle error is ≲ 1e-5 rad
      expectAllClose(await run(x, g), ropeRef(x, g), { atol: 5e-5, rtol: 1e-5 }, 'y');
      expectAllClose(await run(x, g, true), ropeRef(x, g, -1), { atol: 5e-5, rtol: 1e-5 }, 'dx');
    });
  }

  it('stays within the stated tolerance at KV-cache positions around 3000', async () => {
    const g: Geometry = { shape: [1, 4, 2, 128], layout: 'BTHD', offset: 3000, theta: 10000 };
    const x = randn(size(g.shape), 3, 1);
    // angle = pos·inv_freq rounds to f32: ≤ ½ ulp(3003) ≈ 1.2e-4 rad, times |x| ≲ 4
    expectAllClose(await run(x, g), ropeRef(x, g), { atol: 1e-3, rtol: 0 }, 'y at pos 3000');
  });

  it('uses the rotate_half pairing (i, i + D/2), not interleaved pairs', async () => {
    // D = 4, position 1, θ = 10000: pair (0, 2) rotates by 1 rad, pair (1, 3) by 0.01 rad
    const g: Geometry = { shape: [1, 2, 1, 4], layout: 'BTHD', offset: 0, theta: 10000 };
    const y = await run(Float32Array.from([0, 0, 0, 0, 1, 0, 0, 0]), g);
    expectAllClose(y.subarray(4), [Math.cos(1), 0, Math.sin(1), 0], { atol: 1e-6, rtol: 0 }, 'rotated e0');
    expect(Array.from(y.subarray(0, 4))).toEqual([0, 0, 0, 0]);
  });

  it('backward inverts forward and the reference gradient matches finite differences', async () => {
    const g: Geometry = { shape: [2, 3, 2, 6], layout: 'BHTD', offset: 2, theta: 100 };
    const x = randn(size(g.shape), 8, 1);
    const y = await run(x, g);
    expectAllClose(await run(y, g, true), x, { atol: 1e-5, rtol: 0 }, 'backward(forward(x))');
    const dy = randn(size(g.shape), 9);
    const numeric = numericGrad((v) => dot(ropeRef(v, g), dy), x);
    expectAllClose(ropeRef(dy, g, -1), numeric, { atol: 1e-7, rtol: 1e-6 }, 'reference dx vs numeric');
  });

  it('propagates NaN within its pair and handles empty input', async () => {
    const g: Geometry = { shape: [1, 1, 1, 6], layout: 'BTHD', offset: 1, theta: 10000 };
    const y = await run(Float32Array.from([NaN, 1, 2, 3, 4, 5]), g);
    expect(Number.isNaN(y[0]) && Number.isNaN(y[3])).toBe(true);
    expect([1, 2, 4, 5].every((i) => Number.isFinite(y[i]))).toBe(true);
    expect((await run(new Float32Array(0), { ...g, shape: [0, 4, 2, 8] })).length).toBe(0);
  });

  it('rejects bad shapes and options, naming the op and the shapes', () => {
    const x = rt.createBuffer(4 * 24);
    expect(() => ropeForward(rt, x, { shape: [1, 2, 3, 5] })).toThrow(/ropeForward: .*even.*\[1, 2, 3, 5\]/);
    expect(() => ropeForward(rt, x, { shape: [1, 2, 2, 4] })).toThrow(/ropeForward: x must have 16 elements \(shapes \[1, 2, 2, 4\] \(BTHD\) and x \[24\]/);
    expect(() => ropeBackward(rt, x, { shape: [1, 3, 2, 4], offset: -1 })).toThrow(/ropeBackward: offset/);
    expect(() => ropeForward(rt, x, { shape: [1, 3, 2, 4], theta: 0 })).toThrow(/ropeForward: theta/);
    rt.release(x);
  });
});
