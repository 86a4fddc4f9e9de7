import { describe, expect, it } from 'vitest';
import { MNIST_PROMPT, MNIST_SIDE, digitImage, loadMnist, mnistSamples, mnistSplitRange, mnistTexts, type MnistSource } from './mnist.js';

const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

describe('mnist', () => {
  it('loads the package digits lazily and once', async () => {
    const digits = await loadMnist();
    console.log(`first MNIST load (read, parse, convert to 8-bit): ${digits.loadMs.toFixed(0)} ms`);
    expect(await loadMnist()).toBe(digits);
    expect(digits.labels.length).toBe(10_000);
    expect(digits.images.length).toBe(10_000 * MNIST_SIDE * MNIST_SIDE);
    for (let d = 0; d < 10; d++) {
      const [lo, hi] = [digits.classStart[d]!, digits.classStart[d + 1]!];
      expect(hi - lo, `class ${d}`).toBeGreaterThan(800);
      expect(digits.labels.subarray(lo, hi).every((l) => l === d)).toBe(true);
    }
  });

  it('splits each class into disjoint train and test ranges that cover it', async () => {
    const digits = await loadMnist();
    let test = 0;
    for (let d = 0; d < 10; d++) {
      const [a, b] = mnistSplitRange(digits, d, 'train');
      const [c, e] = mnistSplitRange(digits, d, 'test');
      expect([a, e]).toEqual([digits.classStart[d], digits.classStart[d + 1]]);
      expect(b).toBe(c);
      expect((b - a) / (e - a)).toBeCloseTo(0.8, 2);
      test += e - c;
    }
    expect(test).toBeGreaterThan(1900);
    const train = new Set((await mnistSamples('train', 500, 0, { size: 32 })).map((s) => s.index));
    const held = await mnistSamples('test', 500, 0, { size: 32 });
    expect(held.filter((s) => train.has(s.index))).toEqual([]);
  });

  it('labels match the images: nearest class-mean (fit on train) classifies test digits well', async () => {
    const digits = await loadMnist();
    const P = MNIST_SIDE * MNIST_SIDE;
    const means = Array.from({ length: 10 }, (_, d) => {
      const [lo, hi] = mnistSplitRange(digits, d, 'train');
      const m = new Float64Array(P);
      for (let i = lo; i < hi; i++) for (let p = 0; p < P; p++) m[p]! += digits.images[i * P + p]!;
      return m.map((v) => v / (hi - lo));
    });
    let right = 0;
    let total = 0;
    for (let d = 0; d < 10; d++) {
      const [lo, hi] = mnistSplitRange(digits, d, 'test');
      for (let i = lo; i < hi; i += 4, total++) {
        const img = digitImage(digits, i).data;
        const dist = means.map((m) => m.reduce((acc, v, p) => acc + (v - img[p]!) ** 2, 0));
        if (dist.indexOf(Math.min(...dist)) === d) right++;
      }
    }
    // Nearest centroid reaches ~80 % on MNIST; a label/image mix-up would drop to ~10 %.
    expect(right / total).toBeGreaterThan(0.65);
  });

  it('samples: padded gray-as-RGB CHW in [0, 1], digit words, all ten labels, deterministic', async () => {
    const xs = await mnistSamples('train', 300, 4, { size: 32 });
    const S = 32;
    const counts = new Map<string, number>();
    let mean = 0;
    for (const s of xs) {
      expect(s.image.length).toBe(3 * S * S);
      expect(s.prompt).toBe(MNIST_PROMPT);
      expect(DIGIT_WORDS).toContain(s.answer);
      counts.set(s.answer, (counts.get(s.answer) ?? 0) + 1);
      let bad = 0; // out of range, or R, G, B planes differing
      for (let p = 0; p < S * S; p++) {
        const [r, g, b] = [s.image[p]!, s.image[S * S + p]!, s.image[2 * S * S + p]!];
        if (!(r >= 0 && r <= 1) || g !== r || b !== r) bad++;
      }
      expect(bad).toBe(0);
      expect(s.image.subarray(0, 2 * S).every((v) => v === 0)).toBe(true); // the 2-pixel pad at the top
      mean += s.image.reduce((a, v) => a + v, 0) / s.image.length / xs.length;
    }
    // MNIST ink covers ~13 % of the 28×28 square at full intensity; padding to 32 dilutes it.
    expect(mean).toBeGreaterThan(0.05);
    expect(mean).toBeLessThan(0.2);
    expect([...counts.keys()].sort()).toEqual([...DIGIT_WORDS].sort());
    for (const n of counts.values()) expect(n).toBeGreaterThan(10);
    const again = await mnistSamples('train', 300, 4, { size: 32 });
    expect(again.map((s) => s.index)).toEqual(xs.map((s) => s.index));
    expect(again[7]!.image).toEqual(xs[7]!.image);
    expect((await mnistSamples('train', 300, 5, { size: 32 })).map((s) => s.index)).not.toEqual(xs.map((s) => s.index));
    const small = await mnistSamples('test', 3, 0, { size: 16 });
    expect(small[0]!.image.length).toBe(3 * 16 * 16);
    expect(mnistTexts().flatMap((t) => t.split(' '))).toEqual(expect.arrayContaining([...DIGIT_WORDS, 'digit', '?']));
  });

  it('rejects bad arguments and malformed sources by name', async () => {
    await expect(mnistSamples('val' as never, 1, 0, { size: 32 })).rejects.toThrow(/split must be 'train' or 'test', got "val"/);
    await expect(mnistSamples('train', 1.5, 0, { size: 32 })).rejects.toThrow(/count must be an integer ≥ 0, got 1.5/);
    await expect(mnistSamples('train', 1, 0, { size: 4 })).rejects.toThrow(/size must be an integer ≥ 8 px, got 4/);
    const broken: MnistSource = async (d) => ({ data: new Array(d === 3 ? 100 : 784 * 2).fill(0) });
    await expect(loadMnist(broken)).rejects.toThrow(/digit 3 must give .* got 100 values/);
    const digits = await loadMnist();
    expect(() => digitImage(digits, 10_000)).toThrow(/index must be an integer in 0..9999, got 10000/);
    expect(() => mnistSplitRange(digits, 10, 'train')).toThrow(/digit must be 0..9, got 10/);
  });
});
