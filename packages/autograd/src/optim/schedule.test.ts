import { describe, expect, it } from 'vitest';
import { constantSchedule, cosineSchedule, linearSchedule, linearWarmup } from './schedule.js';

const values = (f: (s: number) => number, n: number) => Array.from({ length: n }, (_, s) => f(s));
const close = (a: number[], b: number[]) => a.forEach((x, i) => expect(x, `step ${i}`).toBeCloseTo(b[i]!, 12));

describe('schedules (multiplier of the base lr for 0-based step s)', () => {
  it('constant and linear warmup', () => {
    close(values(constantSchedule(), 3), [1, 1, 1]);
    close(values(linearWarmup(4), 6), [0.25, 0.5, 0.75, 1, 1, 1]);
    close(values(linearWarmup(0), 2), [1, 1]);
  });

  it('cosine with warmup: ramps, then ½(1 + cos(π p)) down to minRatio, then stays', () => {
    const f = cosineSchedule({ warmup: 2, total: 6, minRatio: 0.1 });
    const cos = (p: number) => 0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * p));
    close(values(f, 9), [0.5, 1, cos(0), cos(0.25), cos(0.5), cos(0.75), 0.1, 0.1, 0.1]);
    expect(cos(0.5)).toBeCloseTo(0.55, 12);
    close(values(cosineSchedule({ total: 2 }), 3), [1, 0.5, 0]);
  });

  it('linear decay with warmup', () => {
    close(values(linearSchedule({ warmup: 1, total: 5 }), 7), [1, 1, 0.75, 0.5, 0.25, 0, 0]);
  });

  it('rejects bad settings', () => {
    expect(() => linearWarmup(-1)).toThrow(/warmup must be an integer ≥ 0, got -1/);
    expect(() => cosineSchedule({ warmup: 5, total: 5 })).toThrow(/total must be an integer ≥ 6, got 5/);
    expect(() => cosineSchedule({ total: 5, minRatio: 2 })).toThrow(/minRatio must be in \[0, 1\], got 2/);
  });
});
