import { describe, expect, it } from 'vitest';
import { kendallTau, rankingAgreement, rankingVerdict, TAU_LARGELY, TAU_PARTLY, type RankedRow } from './ranking.js';

/** tau of two tie-free orders from the inversion count: 1 − 4·inversions / (n(n−1)), independent of the pair loop. */
function tauFromInversions(perm: readonly number[]): number {
  let inversions = 0;
  for (let i = 0; i < perm.length; i++) for (let j = i + 1; j < perm.length; j++) if (perm[i]! > perm[j]!) inversions++;
  return 1 - (4 * inversions) / (perm.length * (perm.length - 1));
}

/** A seeded Fisher–Yates shuffle of 0..n−1 (LCG: deterministic without a library). */
function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

describe('kendallTau', () => {
  it('is 1 for the same order, −1 for the reversed one, and ignores monotone rescaling', () => {
    const x = [0.1, 0.4, 0.35, 0.9, 0.2];
    expect(kendallTau(x, x)).toBe(1);
    expect(kendallTau(x, x.map((v) => -v))).toBe(-1);
    expect(kendallTau(x, x.map((v) => Math.exp(3 * v) + 7))).toBe(1);
  });

  it('matches the inversion count on tie-free permutations, and is symmetric', () => {
    for (const [n, seed] of [[2, 1], [5, 2], [9, 3], [19, 4]] as const) {
      const p = permutation(n, seed);
      const identity = p.map((_, i) => i);
      expect(kendallTau(identity, p)).toBeCloseTo(tauFromInversions(p), 12);
      expect(kendallTau(p, identity)).toBeCloseTo(kendallTau(identity, p)!, 12);
    }
    // 7 concordant, 3 discordant pairs (scipy.stats.kendalltau: 0.4)
    expect(kendallTau([1, 2, 3, 4, 5], [3, 1, 2, 5, 4])).toBeCloseTo(0.4, 12);
  });

  it('is tau-b with ties: tied pairs count for neither side and shrink the denominator (scipy values)', () => {
    // C 4, D 0, one pair tied in x, one in y: 4 / √(5·5)
    expect(kendallTau([1, 1, 2, 3], [1, 2, 3, 3])).toBeCloseTo(0.8, 12);
    expect(kendallTau([3, 3, 1, 2, 2], [1, 2, 3, 3, 2])).toBeCloseTo(-0.75, 12);
    // a pair tied on both sides is no evidence either way
    expect(kendallTau([1, 1, 2], [5, 5, 6])).toBe(1);
  });

  it('is undefined (null) for fewer than two items or a side with every value tied', () => {
    expect(kendallTau([], [])).toBeNull();
    expect(kendallTau([0.3], [0.7])).toBeNull();
    expect(kendallTau([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])).toBeNull();
  });

  it('rejects unpaired lists and non-finite values, naming which', () => {
    expect(() => kendallTau([1, 2], [1])).toThrow(/must pair up, got 2 and 1 values/);
    expect(() => kendallTau([1, Number.NaN], [1, 2])).toThrow(/x\[1\] must be a finite number, got NaN/);
    expect(() => kendallTau([1, 2], [Infinity, 2])).toThrow(/y\[0\] must be a finite number/);
  });
});

const rows = (arch: string, task: string, H: Record<string, number>): RankedRow[] => Object.entries(H).map(([strategy, h]) => ({ arch, task, strategy, H: h }));

describe('rankingAgreement', () => {
  it('ranks by H per arch and task, shares ranks on ties, compares only strategies both ran', () => {
    const r = rankingAgreement([
      ...rows('mlp', 'mnist', { full: 0.8, lora: 0.6, spider: 0.6, ia3: 0.2, prompt: 0.5 }),
      ...rows('resampler', 'mnist', { full: 0.7, lora: 0.75, spider: 0.5, ia3: 0.1 }),
      ...rows('mlp', 'count', { full: 0.3, lora: 0.5 }),
      ...rows('resampler', 'count', { full: 0.2, lora: 0.4 }),
    ]);
    expect(r.archs).toEqual(['mlp', 'resampler']);
    const mnist = r.tasks.find((t) => t.task === 'mnist')!;
    expect(mnist.strategies).toEqual(['full', 'lora', 'spider', 'ia3']); // prompt ran on mlp only
    expect(mnist.rankings[0]!.order.map((o) => [o.strategy, o.rank])).toEqual([['full', 1], ['lora', 2], ['spider', 2], ['ia3', 4]]);
    expect(mnist.rankings[1]!.order.map((o) => o.strategy)).toEqual(['lora', 'full', 'spider', 'ia3']);
    const mnistTau = kendallTau([0.8, 0.6, 0.6, 0.2], [0.7, 0.75, 0.5, 0.1])!;
    expect(mnist.pairs).toEqual([{ a: 'mlp', b: 'resampler', tau: mnistTau }]);
    const count = r.tasks.find((t) => t.task === 'count')!;
    expect(count.pairs[0]!.tau).toBe(1);
    expect(r.meanTau).toBeCloseTo((mnistTau + 1) / 2, 12);
    expect(r.verdict).toBe(rankingVerdict(r.meanTau));
  });

  it('pairs every two of three archs and leaves undefined taus out of the mean', () => {
    const r = rankingAgreement([...rows('a', 't', { x: 0.1, y: 0.2 }), ...rows('b', 't', { x: 0.3, y: 0.3 }), ...rows('c', 't', { x: 0.5, y: 0.4 })]);
    expect(r.tasks[0]!.pairs).toEqual([
      { a: 'a', b: 'b', tau: null },
      { a: 'a', b: 'c', tau: -1 },
      { a: 'b', b: 'c', tau: null },
    ]);
    expect(r.meanTau).toBe(-1);
    expect(rankingAgreement(rows('a', 't', { x: 0.1 })).meanTau).toBeNull();
  });

  it('says in one sentence whether the ranking holds, by the documented thresholds', () => {
    expect(rankingVerdict(TAU_LARGELY)).toMatch(/largely holds across architectures/);
    expect(rankingVerdict(1)).toMatch(/^Mean tau 1\.00 ≥ 0\.6: /);
    expect(rankingVerdict(TAU_LARGELY - 0.01)).toMatch(/holds only in part/);
    expect(rankingVerdict(TAU_PARTLY)).toMatch(/holds only in part/);
    expect(rankingVerdict(TAU_PARTLY - 0.01)).toMatch(/does not hold across architectures/);
    expect(rankingVerdict(-1)).toMatch(/does not hold/);
    expect(rankingVerdict(null)).toMatch(/cannot be compared/);
  });

  it('rejects a repeated row or a bad field, naming it', () => {
    expect(() => rankingAgreement([...rows('mlp', 'mnist', { full: 0.5 }), ...rows('mlp', 'mnist', { full: 0.6 })])).toThrow(/rows\[1\] repeats strategy 'full' on task 'mnist' for arch 'mlp'/);
    expect(() => rankingAgreement([{ arch: 'mlp', task: 'mnist', strategy: 'full', H: Number.NaN }])).toThrow(/rows\[0\]\.H must be a finite number, got NaN/);
    expect(() => rankingAgreement([{ arch: '', task: 'mnist', strategy: 'full', H: 0.5 }])).toThrow(/rows\[0\]\.arch must be a non-empty string/);
  });
});
