/**
 * A text-only general-knowledge set (no image), so that fine-tuning's damage to the language model
 * (forgetting) can be measured. Small templated families of question → one- or two-word answer.
 *
 * Two kinds of family, and what their test split means:
 * - generalizing (add, subtract): operand pairs are split by hash (FNV-1a of "family:a:b" ≡ 0 mod 5
 *   → test, ~20 %), so test asks sums/differences never seen in training — a real held-out split.
 * - facts (all the others): there is nothing to infer, so test = train = every fact; a test score
 *   measures retention of what was taught.
 *
 * Sampling: sample i takes family FAMILIES[i mod F] (families are equally frequent whatever their
 * size) and a uniformly drawn item of that family's split, from stream
 * streamSeed('text', split, seed, i). All text is lowercase, single-spaced, '?' a word of its own;
 * numbers are words (number-words.ts).
 *
 * Non-goals: open-domain knowledge, multi-sentence answers, paraphrased prompts.
 */
import { numberWord } from './number-words.js';
import { fnv1a, Rng, streamSeed } from './prng.js';
import type { Split } from './world.js';

export interface TextItem {
  prompt: string;
  answer: string;
  /** The family's name, used as the sample's kind. */
  family: string;
}

export interface TextFamily {
  name: string;
  /** true: test holds unseen items (held-out pairs); false: test = train (retention). */
  generalizes: boolean;
  items: readonly TextItem[];
  /** Items of one split (see the file header). */
  split(split: Split): readonly TextItem[];
}

const heldOut = (family: string, a: number, b: number): boolean => fnv1a(`${family}:${a}:${b}`) % 5 === 0;

function arithmetic(name: 'add' | 'subtract', pairs: [number, number][], op: string, f: (a: number, b: number) => number): TextFamily {
  const tagged = pairs.map(([a, b]) => ({
    item: { prompt: `what is ${numberWord(a)} ${op} ${numberWord(b)} ?`, answer: numberWord(f(a, b)), family: name },
    test: heldOut(name, a, b),
  }));
  const train = tagged.filter((t) => !t.test).map((t) => t.item);
  const test = tagged.filter((t) => t.test).map((t) => t.item);
  return { name, generalizes: true, items: tagged.map((t) => t.item), split: (s) => (s === 'train' ? train : test) };
}

function facts(name: string, entries: readonly (readonly [string, string])[]): TextFamily {
  const items = entries.map(([prompt, answer]) => ({ prompt, answer, family: name }));
  return { name, generalizes: false, items, split: () => items };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
/** Cyclic successor/predecessor questions over an ordered list. */
const cycle = (list: readonly string[]): [string, string][] =>
  list.flatMap((x, i): [string, string][] => [
    [`what comes after ${x} ?`, list[(i + 1) % list.length]!],
    [`what comes before ${x} ?`, list[(i + list.length - 1) % list.length]!],
  ]);

// Each word occurs in one pair only, so both directions have a single answer.
const OPPOSITES = [
  ['hot', 'cold'], ['up', 'down'], ['day', 'night'], ['fast', 'slow'], ['happy', 'sad'], ['open', 'closed'],
  ['light', 'dark'], ['wet', 'dry'], ['full', 'empty'], ['hard', 'soft'], ['early', 'late'], ['loud', 'quiet'],
  ['push', 'pull'], ['win', 'lose'], ['tall', 'short'], ['rich', 'poor'],
] as const;

const THING_COLORS = [
  ['the sky', 'blue'], ['grass', 'green'], ['snow', 'white'], ['a banana', 'yellow'], ['coal', 'black'],
  ['a tomato', 'red'], ['an orange', 'orange'], ['the sun', 'yellow'], ['milk', 'white'], ['a lemon', 'yellow'],
  ['a frog', 'green'], ['blood', 'red'], ['chocolate', 'brown'], ['an elephant', 'gray'], ['a strawberry', 'red'],
] as const;

const ANIMAL_SOUNDS = [
  ['dog', 'woof'], ['cat', 'meow'], ['cow', 'moo'], ['duck', 'quack'], ['sheep', 'baa'], ['pig', 'oink'],
  ['owl', 'hoot'], ['horse', 'neigh'], ['lion', 'roar'], ['snake', 'hiss'], ['frog', 'ribbit'], ['bee', 'buzz'],
] as const;

const PLURALS = [
  ['cat', 'cats'], ['dog', 'dogs'], ['box', 'boxes'], ['bus', 'buses'], ['baby', 'babies'], ['city', 'cities'],
  ['mouse', 'mice'], ['child', 'children'], ['man', 'men'], ['woman', 'women'], ['foot', 'feet'], ['tooth', 'teeth'],
  ['goose', 'geese'], ['person', 'people'], ['leaf', 'leaves'], ['knife', 'knives'], ['fish', 'fish'], ['sheep', 'sheep'],
  ['book', 'books'], ['tree', 'trees'],
] as const;

const HOW_MANY: readonly (readonly [string, number])[] = [
  ['how many legs does a dog have ?', 4], ['how many legs does a bird have ?', 2], ['how many legs does a spider have ?', 8],
  ['how many legs does an insect have ?', 6], ['how many days are in a week ?', 7], ['how many months are in a year ?', 12],
  ['how many hours are in a day ?', 24], ['how many sides does a triangle have ?', 3], ['how many sides does a square have ?', 4],
  ['how many wheels does a bicycle have ?', 2], ['how many minutes are in an hour ?', 60], ['how many fingers are on one hand ?', 5],
];

const CAPITALS = [
  ['france', 'paris'], ['italy', 'rome'], ['japan', 'tokyo'], ['spain', 'madrid'], ['germany', 'berlin'],
  ['england', 'london'], ['russia', 'moscow'], ['egypt', 'cairo'], ['china', 'beijing'], ['greece', 'athens'],
  ['canada', 'ottawa'], ['ireland', 'dublin'],
] as const;

export const TEXT_FAMILIES: readonly TextFamily[] = [
  arithmetic('add', range(13).flatMap((a) => range(13).map((b): [number, number] => [a, b])), 'plus', (a, b) => a + b),
  arithmetic('subtract', range(16).flatMap((a) => range(a + 1).map((b): [number, number] => [a, b])), 'minus', (a, b) => a - b),
  facts('next-number', range(30).map((n) => [`what number comes after ${numberWord(n)} ?`, numberWord(n + 1)] as const)),
  facts('days', cycle(DAYS)),
  facts('months', cycle(MONTHS)),
  facts('opposites', OPPOSITES.flatMap(([a, b]) => [[`what is the opposite of ${a} ?`, b], [`what is the opposite of ${b} ?`, a]] as const)),
  facts('colors', THING_COLORS.map(([thing, c]) => [`what color is ${thing} ?`, c] as const)),
  facts('animal-sounds', ANIMAL_SOUNDS.map(([animal, sound]) => [`what does a ${animal} say ?`, sound] as const)),
  facts('plurals', PLURALS.map(([one, many]) => [`what is the plural of ${one} ?`, many] as const)),
  facts('how-many', HOW_MANY.map(([q, n]) => [q, numberWord(n)] as const)),
  facts('capitals', CAPITALS.map(([country, city]) => [`what is the capital of ${country} ?`, city] as const)),
];

export interface TextSample {
  prompt: string;
  answer: string;
  kind: string;
}

export function textSamples(split: Split, count: number, seed: number): TextSample[] {
  if (split !== 'train' && split !== 'test') throw new Error(`text: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  if (!Number.isInteger(count) || count < 0) throw new Error(`text: count must be an integer ≥ 0, got ${count}`);
  if (!Number.isInteger(seed)) throw new Error(`text: seed must be an integer, got ${seed}`);
  return Array.from({ length: count }, (_, i) => {
    const family = TEXT_FAMILIES[i % TEXT_FAMILIES.length]!;
    const item = new Rng(streamSeed('text', split, seed, i)).pick(family.split(split));
    return { prompt: item.prompt, answer: item.answer, kind: family.name };
  });
}

/** Every prompt and answer of every family. */
export const textTexts = (): string[] => TEXT_FAMILIES.flatMap((f) => f.items.flatMap((x) => [x.prompt, x.answer]));
