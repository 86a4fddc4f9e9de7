/**
 * Shared helpers for kernel tests: seeded random data, float64 comparisons, finite differences.
 * Test-only (not exported from the package index).
 */
import { expect } from 'vitest';

/** mulberry32: a small seeded PRNG; same seed, same numbers. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n standard-normal f32 values (Box–Muller), scaled. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return out;
}

/** n uniform f32 values in [lo, hi). */
export function randu(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export interface Tolerance {
  atol?: number;
  rtol?: number;
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise; NaN must match NaN and ±Inf must
 * match exactly. The failure names the first bad index and the worst error.
 */
export function expectAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4 }: Tolerance = {},
  what = 'values',
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let firstBad = -1;
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    let ok: boolean;
    if (Number.isNaN(e)) ok = Number.isNaN(a);
    else if (!Number.isFinite(e)) ok = a === e;
    else {
      const err = Math.abs(a - e);
      ok = err <= atol + rtol * Math.abs(e);
      if (err > worst || Number.isNaN(err)) {
        worst = err;
        worstAt = i;
      }
    }
    if (!ok && firstBad < 0) firstBad = i;
  }
  if (firstBad >= 0) {
    throw new Error(
      `${what}: mismatch at [${firstBad}]: got ${actual[firstBad]}, expected ${expected[firstBad]} ` +
        `(atol ${atol}, rtol ${rtol}; worst |err| ${worst} at [${worstAt}])`,
    );
  }
}

/**
 * Central finite-difference gradient of a scalar float64 function f at x (for checking reference
 * gradients, which are then compared with the GPU backward kernels).
 */
export function numericGrad(f: (x: Float64Array) => number, x: ArrayLike<number>, eps = 1e-6): Float64Array {
  const xs = Float64Array.from(x);
  const g = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    xs[i] = v + eps;
    const fp = f(xs);
    xs[i] = v - eps;
    const fm = f(xs);
    xs[i] = v;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

/** Σ w_i·y_i: turns a vector output into a scalar loss for gradient checks. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
