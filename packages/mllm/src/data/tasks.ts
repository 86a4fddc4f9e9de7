/**
 * The task registry: every data set the model is trained or evaluated on, behind one interface.
 *
 * General suite (what the base model is pre-trained on, and where forgetting is measured):
 *   caption (world captions), vqa (world questions), text (text-only knowledge).
 * Downstream tasks (what tuning strategies adapt to):
 *   mnist (real digits), novel (captions with new shape words), count (counting / left-right).
 *
 * Images are CHW Float32Array of length 3·size·size with values in [0, 1] (image.ts), or null for
 * text-only samples. A sample is a pure function of (task, split, seed, index), so a longer request
 * extends a shorter one. `samples` is async for every task because mnist loads its data lazily.
 *
 * `vocabularyWords()` is enumerated from each task's grammar (not sampled), so a word-level
 * tokenizer built from it covers every prompt and answer of every task, downstream included.
 *
 * Non-goals: batching, shuffling across tasks, tokenization (the model's side).
 */
import { mnistSamples, mnistTexts } from './mnist.js';
import { textSamples, textTexts } from './text.js';
import { WORLD_GENERATORS, worldTexts, type WorldTaskName } from './world-tasks.js';
import { checkRenderSize, sceneImage, type Split } from './world.js';

export type TaskKind = 'general' | 'downstream';

export interface Sample {
  /** CHW, 3·size·size, values in [0, 1]; null for text-only tasks. */
  image: Float32Array | null;
  prompt: string;
  answer: string;
  /** Name of the task that made it. */
  task: string;
  /** Question type within the task (e.g. 'color', 'count-all', 'digit', 'add'). */
  kind: string;
}

export interface SampleOptions {
  /** Side of the square image in pixels (default `DEFAULT_IMAGE_SIZE`); ignored by text tasks. */
  size: number;
}

export interface Task {
  name: string;
  description: string;
  kind: TaskKind;
  /** false for text-only tasks, whose samples have image = null. */
  hasImage: boolean;
  /** `count` samples of `split`; seed defaults to 0. */
  samples(split: Split, count: number, seed?: number, opts?: SampleOptions): Promise<Sample[]>;
  /** Every prompt and answer text the task can produce (for the vocabulary). */
  texts(): string[];
}

export const DEFAULT_IMAGE_SIZE = 32;

function worldTask(name: WorldTaskName, kind: TaskKind, description: string): Task {
  return {
    name,
    description,
    kind,
    hasImage: true,
    async samples(split, count, seed = 0, opts = { size: DEFAULT_IMAGE_SIZE }) {
      checkRenderSize(name, opts.size);
      return WORLD_GENERATORS[name](split, count, seed).map((s) => ({
        image: sceneImage(s.scene, opts.size),
        prompt: s.prompt,
        answer: s.answer,
        task: name,
        kind: s.kind,
      }));
    },
    texts: () => worldTexts(name),
  };
}

const TASK_LIST: readonly Task[] = [
  worldTask('caption', 'general', 'Caption 1–2 coloured base shapes (square, circle, triangle): size, colour, shape, side.'),
  worldTask('vqa', 'general', 'One-word answers about 1–2 base shapes: colour, shape, size, existence, side.'),
  {
    name: 'text',
    description: 'Text-only general knowledge: arithmetic (held-out pairs) and facts (retention).',
    kind: 'general',
    hasImage: false,
    async samples(split, count, seed = 0) {
      return textSamples(split, count, seed).map((s) => ({ image: null, prompt: s.prompt, answer: s.answer, task: 'text', kind: s.kind }));
    },
    texts: textTexts,
  },
  {
    name: 'mnist',
    description: 'Name the handwritten MNIST digit as a word (real digits, 80/20 split per class).',
    kind: 'downstream',
    hasImage: true,
    async samples(split, count, seed = 0, opts = { size: DEFAULT_IMAGE_SIZE }) {
      const xs = await mnistSamples(split, count, seed, { size: opts.size });
      return xs.map((s) => ({ image: s.image, prompt: s.prompt, answer: s.answer, task: 'mnist', kind: s.kind }));
    },
    texts: mnistTexts,
  },
  worldTask('novel', 'downstream', 'Caption scenes holding new shapes (star, cross, diamond) never seen in the general suite.'),
  worldTask('count', 'downstream', 'Count 1–5 shapes (all, by colour, by shape) and answer left/right relations.'),
];

/** Every task by name. */
export const TASKS: Readonly<Record<string, Task>> = Object.fromEntries(TASK_LIST.map((t) => [t.name, t]));
/** Task names, in registration order: all, the general suite, the downstream tasks. */
export const ALL_TASKS: readonly string[] = TASK_LIST.map((t) => t.name);
export const GENERAL_TASKS: readonly string[] = TASK_LIST.filter((t) => t.kind === 'general').map((t) => t.name);
export const DOWNSTREAM_TASKS: readonly string[] = TASK_LIST.filter((t) => t.kind === 'downstream').map((t) => t.name);

export function getTask(name: string): Task {
  const task = Object.hasOwn(TASKS, name) ? TASKS[name] : undefined;
  if (task === undefined) {
    throw new Error(`getTask: unknown task ${JSON.stringify(name)}; known tasks: ${TASK_LIST.map((t) => t.name).join(', ')}`);
  }
  return task;
}

/** Sorted (by UTF-16 code unit, so '?' comes first) set of every word any task can produce. */
export function vocabularyWords(): string[] {
  const words = new Set<string>();
  for (const t of TASK_LIST) for (const text of t.texts()) for (const w of text.split(' ')) words.add(w);
  return [...words].sort();
}

const normalize = (s: string): string => s.trim().replace(/\s+/g, ' ').toLowerCase();

/** Exact match after trimming, collapsing whitespace runs to one space and lowercasing both sides. */
export function exactMatch(pred: string, answer: string): boolean {
  if (typeof pred !== 'string' || typeof answer !== 'string') {
    throw new Error(`exactMatch: pred and answer must be strings, got ${typeof pred} and ${typeof answer}`);
  }
  return normalize(pred) === normalize(answer);
}
