import { describe, expect, it } from 'vitest';
import { ALL_TASKS, DOWNSTREAM_TASKS, GENERAL_TASKS, TASKS, exactMatch, getTask, vocabularyWords } from './tasks.js';

describe('task registry', () => {
  it('registers the general suite and the downstream tasks', () => {
    expect(GENERAL_TASKS).toEqual(['caption', 'vqa', 'text']);
    expect(DOWNSTREAM_TASKS).toEqual(['mnist', 'novel', 'count']);
    expect(ALL_TASKS).toEqual([...GENERAL_TASKS, ...DOWNSTREAM_TASKS]);
    for (const name of ALL_TASKS) expect(getTask(name).kind).toBe(GENERAL_TASKS.includes(name) ? 'general' : 'downstream');
    expect(getTask('count')).toBe(TASKS.count);
    expect(() => getTask('ocr')).toThrow(/unknown task "ocr"; known tasks: caption, vqa, text, mnist, novel, count/);
    expect(() => getTask('toString')).toThrow(/unknown task/);
  });

  it('every task yields well-formed samples at the requested size, deterministically', async () => {
    for (const t of Object.values(TASKS)) {
      const xs = await t.samples('test', 12, 9, { size: 24 });
      expect(xs).toHaveLength(12);
      for (const s of xs) {
        expect(s.task).toBe(t.name);
        expect(s.kind.length).toBeGreaterThan(0);
        if (t.hasImage) {
          expect(s.image?.length, t.name).toBe(3 * 24 * 24);
          expect(s.image!.every((v) => v >= 0 && v <= 1)).toBe(true);
        } else expect(s.image).toBeNull();
      }
      const again = await t.samples('test', 12, 9, { size: 24 });
      expect(again.map((s) => [s.prompt, s.answer, s.kind])).toEqual(xs.map((s) => [s.prompt, s.answer, s.kind]));
      expect(again.map((s) => s.image && Array.from(s.image))).toEqual(xs.map((s) => s.image && Array.from(s.image)));
      if (t.hasImage) await expect(t.samples('train', 1, 0, { size: 4 }), t.name).rejects.toThrow(new RegExp(`${t.name}: size must be an integer ≥ \\d+ px, got 4`));
      const dflt = await t.samples('train', 2);
      if (t.hasImage) expect(dflt[0]!.image!.length).toBe(3 * 32 * 32);
    }
  });

  it('the vocabulary covers every generated word, sorted and unique; new shape words are downstream-only', async () => {
    const vocab = vocabularyWords();
    expect(vocab).toEqual([...new Set(vocab)].sort());
    const set = new Set(vocab);
    for (const t of Object.values(TASKS)) {
      for (const split of ['train', 'test'] as const) {
        for (const s of await t.samples(split, 250, 1, { size: 16 })) {
          for (const w of `${s.prompt} ${s.answer}`.split(' ')) expect(set.has(w), `${t.name}: "${w}"`).toBe(true);
        }
      }
    }
    expect(vocab).toEqual(expect.arrayContaining(['?', 'star', 'cross', 'diamond', 'nine', 'twenty', 'yes', 'purple']));
    const general = new Set(GENERAL_TASKS.flatMap((t) => getTask(t).texts()).flatMap((x) => x.split(' ')));
    for (const w of ['star', 'cross', 'diamond']) expect(general.has(w), w).toBe(false);
  });

  it('exactMatch ignores case, outer space and space runs, nothing else', () => {
    expect(exactMatch('  Twenty   One ', 'twenty one')).toBe(true);
    expect(exactMatch('red\n', 'red')).toBe(true);
    expect(exactMatch('reds', 'red')).toBe(false);
    expect(exactMatch('twentyone', 'twenty one')).toBe(false);
    expect(exactMatch('', 'no')).toBe(false);
    expect(() => exactMatch(undefined as never, 'x')).toThrow(/must be strings, got undefined and string/);
  });
});
