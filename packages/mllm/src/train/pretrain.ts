/**
 * Pre-training the bundled base model on the general suite: synthetic scene captioning, scene VQA
 * and text-only general knowledge, mixed per batch. Deterministic from the seed (data, init, batch
 * order) on a given device. The downstream tasks (MNIST digits, novel shapes, counting) are never
 * seen, so the base is good at the general suite and bad at them — what tuning then measures.
 *
 * Recipe: AdamW (β 0.9/0.999, weight decay 0.01 on matrices only), linear warmup then cosine decay
 * to 10 % of the peak lr, global gradient-norm clipping at 1.
 * Non-goals: curriculum learning, data augmentation, checkpointing during the run (the CLI saves
 * the result; resumable training is the tuning loop's job).
 */
import type { Runtime } from '@keel/kernels';
import { AdamW, cosineSchedule, seededRandom } from '@keel/autograd';
import { resolveConfig, type MllmConfigInput } from '../config.js';
import { ALL_TASKS, GENERAL_TASKS, getTask, vocabularyWords, type Sample } from '../data/tasks.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Example } from '../model/collate.js';
import { MultimodalModel } from '../model/mllm.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { evaluateExamples, trainOnExamples } from './loop.js';

export interface PretrainProgress {
  step: number;
  steps: number;
  loss: number;
  /** Training examples per second over the run so far. */
  samplesPerSec: number;
  elapsedSec: number;
}

export interface PretrainOptions {
  /** Seed of data, initialization and batch order (default 0). */
  seed?: number;
  /** Optimizer steps (default 3000). */
  steps?: number;
  /** Examples per step (default 32). */
  batchSize?: number;
  /** Peak learning rate (default 2e-3). */
  lr?: number;
  /** Warmup steps (default 100). */
  warmup?: number;
  /** Model config overrides; vocabSize and imageTokenId always come from the tokenizer. */
  config?: MllmConfigInput;
  /** Relative weight of each general task in the batch mix (default caption 0.35, vqa 0.45, text 0.2). */
  mix?: Partial<Record<string, number>>;
  /** Training examples generated per image task (default 12000; the text task uses all of its own). */
  pool?: number;
  /** Held-out examples scored per task at the end (default 300). */
  evalCount?: number;
  onProgress?: (p: PretrainProgress) => void;
  /** Calls onProgress every this many steps (default 50). */
  progressEvery?: number;
}

export interface PretrainResult {
  model: MultimodalModel;
  tokenizer: WordTokenizer;
  /** [step, loss] every progressEvery steps. */
  lossCurve: [number, number][];
  /** Held-out exact-match accuracy per task (general and downstream). */
  scores: Record<string, number>;
  seconds: number;
  samplesPerSec: number;
  options: Required<Omit<PretrainOptions, 'onProgress' | 'config' | 'mix'>> & { mix: Record<string, number>; config: MllmConfigInput };
}

const DEFAULT_MIX: Record<string, number> = { caption: 0.35, vqa: 0.45, text: 0.2 };

export const toExample = (s: Sample): Example => ({ image: s.image, prompt: s.prompt, answer: s.answer });

export async function pretrain(rt: Runtime, options: PretrainOptions = {}): Promise<PretrainResult> {
  const o = {
    seed: options.seed ?? 0,
    steps: options.steps ?? 3000,
    batchSize: options.batchSize ?? 32,
    lr: options.lr ?? 2e-3,
    warmup: Math.min(options.warmup ?? 100, Math.max(0, (options.steps ?? 3000) - 1)),
    pool: options.pool ?? 12000,
    evalCount: options.evalCount ?? 300,
    progressEvery: options.progressEvery ?? 50,
    mix: { ...DEFAULT_MIX, ...options.mix } as Record<string, number>,
    config: options.config ?? {},
  };
  for (const [k, v] of Object.entries({ steps: o.steps, batchSize: o.batchSize, pool: o.pool, evalCount: o.evalCount, progressEvery: o.progressEvery })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`pretrain: ${k} must be a positive integer, got ${v}`);
  }
  if (!(o.lr > 0)) throw new Error(`pretrain: lr must be > 0, got ${o.lr}`);
  for (const name of Object.keys(o.mix)) {
    if (!GENERAL_TASKS.includes(name)) throw new Error(`pretrain: mix names '${name}', not a general task (general: ${GENERAL_TASKS.join(', ')})`);
    if (!(o.mix[name]! >= 0)) throw new Error(`pretrain: mix weight of '${name}' must be ≥ 0, got ${o.mix[name]}`);
  }
  const tokenizer = WordTokenizer.fromWords(vocabularyWords());
  const config = resolveConfig({
    ...o.config,
    text: { ...o.config.text, vocabSize: tokenizer.vocabSize },
    imageTokenId: tokenizer.specials.image,
  });
  const model = new MultimodalModel(rt, config, { seed: o.seed });
  try {
    return { model, tokenizer, ...(await trainAndScore(model, tokenizer, o, options.onProgress)), options: o };
  } catch (e) {
    // the caller never sees the model of a failed run (a non-finite loss, a device error): free it here
    model.dispose();
    throw e;
  }
}

/** The run itself: data pools, AdamW, the step loop and the final scores. */
async function trainAndScore(
  model: MultimodalModel,
  tokenizer: WordTokenizer,
  o: PretrainResult['options'],
  onProgress: PretrainOptions['onProgress'],
): Promise<Pick<PretrainResult, 'lossCurve' | 'scores' | 'seconds' | 'samplesPerSec'>> {
  const size = model.config.vision.imageSize;

  // data pools: generated once, sampled with replacement per step
  const tasks = Object.keys(o.mix).filter((t) => o.mix[t]! > 0);
  const pools = await Promise.all(tasks.map(async (t) => (await getTask(t).samples('train', o.pool, o.seed, { size })).map(toExample)));
  const weights = tasks.map((t) => o.mix[t]!);
  const total = weights.reduce((a, b) => a + b, 0);
  const rand = seededRandom((o.seed ^ 0x5bd1e995) >>> 0);
  const pickTask = (): number => {
    let r = rand() * total;
    for (let i = 0; i < weights.length; i++) if ((r -= weights[i]!) < 0) return i;
    return weights.length - 1;
  };

  // weight decay on matrices only (not norms, biases, embeddings of CLS/positions)
  const named = [...model.namedParameters()];
  const decayed = named.filter(([n, p]) => p.rank === 2 && !n.includes('position_embedding')).map(([, p]) => p);
  const plain = named.filter(([, p]) => !decayed.includes(p)).map(([, p]) => p);
  const optimizer = new AdamW(model.rt, [{ params: decayed, weightDecay: 0.01 }, { params: plain, weightDecay: 0 }], {
    lr: o.lr,
    maxNorm: 1,
    schedule: cosineSchedule({ warmup: o.warmup, total: o.steps, minRatio: 0.1 }),
  });

  const lossCurve: [number, number][] = [];
  const start = performance.now();
  let recent = 0;
  let recentCount = 0;
  try {
    for (let step = 1; step <= o.steps; step++) {
      const batch = Array.from({ length: o.batchSize }, () => {
        const pool = pools[pickTask()]!;
        return pool[Math.floor(rand() * pool.length)]!;
      });
      const loss = await trainOnExamples(model, tokenizer, optimizer, batch);
      if (!Number.isFinite(loss)) throw new Error(`pretrain: the loss became ${loss} at step ${step}; lower lr (${o.lr}) or check the data`);
      recent += loss;
      recentCount++;
      if (step % o.progressEvery === 0 || step === o.steps) {
        const elapsedSec = (performance.now() - start) / 1000;
        const mean = recent / recentCount;
        lossCurve.push([step, mean]);
        recent = 0;
        recentCount = 0;
        onProgress?.({ step, steps: o.steps, loss: mean, samplesPerSec: (step * o.batchSize) / elapsedSec, elapsedSec });
      }
    }
  } finally {
    optimizer.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  const scores = await scoreTasks(model, tokenizer, o.evalCount, o.seed);
  return { lossCurve, scores, seconds, samplesPerSec: (o.steps * o.batchSize) / seconds };
}

/** Held-out exact-match accuracy on every registered task (general and downstream). */
export async function scoreTasks(model: MultimodalModel, tok: Tokenizer, count: number, seed = 0, names?: readonly string[]): Promise<Record<string, number>> {
  const size = model.config.vision.imageSize;
  const scores: Record<string, number> = {};
  for (const name of names ?? ALL_TASKS) {
    const samples = (await getTask(name).samples('test', count, seed, { size })).map(toExample);
    scores[name] = (await evaluateExamples(model, tok, samples)).accuracy;
  }
  return scores;
}
