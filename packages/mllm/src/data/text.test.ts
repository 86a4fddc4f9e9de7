import { describe, expect, it } from 'vitest';
import { numberWord } from './number-words.js';
import { TEXT_FAMILIES, textSamples, textTexts } from './text.js';

const fromWords = new Map(Array.from({ length: 100 }, (_, n) => [numberWord(n), n]));

describe('text general-knowledge set', () => {
  it('has ≥ 150 distinct questions, each with one answer of one or two words', () => {
    const all = TEXT_FAMILIES.flatMap((f) => f.items);
    const answers = new Map<string, string>();
    for (const x of all) {
      expect(answers.get(x.prompt) ?? x.answer, x.prompt).toBe(x.answer);
      answers.set(x.prompt, x.answer);
      expect(x.answer.split(' ').length, x.prompt).toBeLessThanOrEqual(2);
      expect(`${x.prompt} ${x.answer}`).toMatch(/^[a-z?]+( [a-z?]+)*$/);
      expect(x.prompt.endsWith(' ?')).toBe(true);
    }
    expect(answers.size).toBeGreaterThanOrEqual(150);
    expect(answers.size).toBe(all.length);
    expect(all.some((x) => x.answer.includes(' '))).toBe(true);
  });

  it('arithmetic answers are right and their test pairs are held out of train', () => {
    for (const f of TEXT_FAMILIES.filter((x) => x.generalizes)) {
      for (const x of f.items) {
        const m = /^what is (.+) (plus|minus) (.+) \?$/.exec(x.prompt);
        expect(m, x.prompt).not.toBeNull();
        const [a, b] = [fromWords.get(m![1]!)!, fromWords.get(m![3]!)!];
        expect(fromWords.get(x.answer), x.prompt).toBe(m![2] === 'plus' ? a + b : a - b);
      }
      const train = new Set(f.split('train').map((x) => x.prompt));
      const test = f.split('test');
      expect(test.filter((x) => train.has(x.prompt)), f.name).toEqual([]);
      expect(train.size + test.length).toBe(f.items.length);
      expect(test.length / f.items.length, f.name).toBeGreaterThan(0.1);
      expect(test.length / f.items.length, f.name).toBeLessThan(0.3);
    }
  });

  it('fact families test retention: test = train', () => {
    const factFamilies = TEXT_FAMILIES.filter((x) => !x.generalizes);
    expect(factFamilies.length).toBeGreaterThanOrEqual(5);
    for (const f of factFamilies) expect(f.split('test'), f.name).toEqual(f.split('train'));
    const sample = (p: string) => TEXT_FAMILIES.flatMap((f) => f.items).find((x) => x.prompt === p)?.answer;
    expect(sample('what comes after sunday ?')).toBe('monday');
    expect(sample('what comes before january ?')).toBe('december');
    expect(sample('what is the opposite of cold ?')).toBe('hot');
    expect(sample('what number comes after twenty nine ?')).toBe('thirty');
  });

  it('samples are deterministic, family-balanced and drawn from the split', () => {
    const a = textSamples('test', 220, 3);
    expect(textSamples('test', 220, 3)).toEqual(a);
    expect(textSamples('test', 100, 3)).toEqual(a.slice(0, 100));
    expect(textSamples('test', 220, 4)).not.toEqual(a);
    const perFamily = new Map<string, number>();
    for (const s of a) perFamily.set(s.kind, (perFamily.get(s.kind) ?? 0) + 1);
    expect([...perFamily.values()]).toEqual(new Array(TEXT_FAMILIES.length).fill(220 / TEXT_FAMILIES.length));
    const testPrompts = new Set(TEXT_FAMILIES.flatMap((f) => f.split('test')).map((x) => x.prompt));
    expect(a.every((s) => testPrompts.has(s.prompt))).toBe(true);
    const words = new Set(textTexts().flatMap((t) => t.split(' ')));
    for (const s of [...a, ...textSamples('train', 200, 0)]) for (const w of `${s.prompt} ${s.answer}`.split(' ')) expect(words.has(w)).toBe(true);
  });

  it('rejects bad arguments by name', () => {
    expect(() => textSamples('dev' as never, 1, 0)).toThrow(/split must be 'train' or 'test', got "dev"/);
    expect(() => textSamples('train', -2, 0)).toThrow(/count must be an integer ≥ 0, got -2/);
    expect(() => numberWord(100)).toThrow(/n must be an integer in 0..99, got 100/);
    expect([0, 13, 20, 24, 60, 99].map(numberWord)).toEqual(['zero', 'thirteen', 'twenty', 'twenty four', 'sixty', 'ninety nine']);
  });
});
