import { describe, expect, it } from 'vitest';
import { expectAllClose, numericGrad, randn } from './reference.js';

describe('test reference helpers', () => {
  it('randn is seeded and roughly standard normal', () => {
    const a = randn(20000, 7);
    expect(Array.from(randn(10, 7))).toEqual(Array.from(a.slice(0, 10)));
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const varr = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(varr - 1)).toBeLessThan(0.05);
  });
  it('expectAllClose catches mismatches, NaN and Inf differences', () => {
    expect(() => expectAllClose([1, 2], [1, 2.1])).toThrow(/mismatch at \[1\]/);
    expect(() => expectAllClose([NaN], [1])).toThrow();
    expect(() => expectAllClose([1], [NaN])).toThrow();
    expect(() => expectAllClose([Infinity], [-Infinity])).toThrow();
    expectAllClose([NaN, Infinity, 1 + 1e-7], [NaN, Infinity, 1]);
  });
  it('numericGrad matches an analytic gradient', () => {
    const g = numericGrad((x) => x[0]! ** 3 + Math.sin(x[1]!), [2, 0.5]);
    expectAllClose(g, [12, Math.cos(0.5)], { atol: 1e-6 });
  });
});
