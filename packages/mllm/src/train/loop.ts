/**
 * The pieces every training loop over the model shares: the answer-only loss of a batch, one
 * optimizer step, and exact-match evaluation by greedy generation. The pre-training recipe
 * (pretrain.ts) and the tuning package's strategies both build on these, so there is one loss and
 * one scorer.
 *
 * Dimension legend: B rows, T tokens, V vocabulary.
 * Non-goals: gradient accumulation, mixed precision, distributed data.
 */
import { backward, crossEntropy, tensor, tidy, type Optimizer, type ParamGroup, type Parameter, type Tensor } from '@keel/autograd';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { collate, type Example, type TrainingBatch } from '../model/collate.js';
import { generate } from '../model/generate.js';
import type { MultimodalModel } from '../model/mllm.js';

/** Mean cross-entropy over the answer tokens (and <eos>) of the batch: a scalar tensor. */
export function answerLoss(model: MultimodalModel, batch: TrainingBatch): Tensor {
  const { logits } = model.forward(batch.input);
  const labels = tensor(model.rt, batch.labels, [batch.input.batch, batch.input.length], { dtype: 'i32' });
  return crossEntropy(logits, labels);
}

/**
 * AdamW groups of the pre-training recipes: `weightDecay` on matrices, none on norms, biases, the
 * CLS token and position embeddings.
 */
export function decayGroups(named: Iterable<[string, Parameter]>, weightDecay: number): ParamGroup[] {
  const decayed: Parameter[] = [];
  const plain: Parameter[] = [];
  for (const [name, p] of named) (p.rank === 2 && !name.includes('position_embedding') ? decayed : plain).push(p);
  return [
    { params: decayed, weightDecay },
    { params: plain, weightDecay: 0 },
  ];
}

export interface StepHooks {
  /** After backward, before the optimizer (e.g. importance accumulation, gradient masks). */
  beforeOptimizerStep?: () => void;
  /** After the optimizer (e.g. SPIDER's interpolation towards W0, mask refresh). */
  afterOptimizerStep?: () => void;
}

/**
 * forward → backward → optimizer step on one batch; returns the loss (read back, so the step is
 * finished when this resolves). Gradients are zeroed afterwards.
 */
export async function trainStep(model: MultimodalModel, optimizer: Optimizer, batch: TrainingBatch, hooks: StepHooks = {}): Promise<number> {
  const loss = tidy(() => {
    const l = answerLoss(model, batch);
    backward(l);
    return l;
  });
  try {
    hooks.beforeOptimizerStep?.();
    optimizer.step();
    hooks.afterOptimizerStep?.();
    model.zeroGrad();
    return await loss.item();
  } finally {
    loss.dispose();
  }
}

/** `trainStep` on examples (collated with the model's template). */
export function trainOnExamples(model: MultimodalModel, tok: Tokenizer, optimizer: Optimizer, examples: readonly Example[], hooks: StepHooks = {}): Promise<number> {
  return trainStep(model, optimizer, collate(examples, tok, model.config), hooks);
}

/** Normalizes text for exact-match scoring: lowercase, trimmed, single spaces. */
export const normalizeAnswer = (s: string): string => s.toLowerCase().trim().split(/\s+/).filter(Boolean).join(' ');

export interface EvaluationResult {
  /** Fraction of examples whose greedy answer equals the reference after normalization. */
  accuracy: number;
  count: number;
  /** Whether each example's answer was right, in the order given. */
  correct: boolean[];
  /** The first few predictions, for reports. */
  samples: { prompt: string; answer: string; prediction: string }[];
}

/** Accuracy and example count per question type (a Sample's `kind`), types in first-seen order. */
export type KindScores = Record<string, { accuracy: number; count: number }>;

/** Splits per-example results by kind: `kinds[i]` is example i's type, `correct[i]` its result. */
export function accuracyByKind(kinds: readonly string[], correct: readonly boolean[]): KindScores {
  if (kinds.length !== correct.length) throw new Error(`accuracyByKind: ${kinds.length} kinds for ${correct.length} results`);
  const tally = new Map<string, [number, number]>();
  kinds.forEach((k, i) => {
    const t = tally.get(k) ?? [0, 0];
    t[0] += correct[i] ? 1 : 0;
    t[1]++;
    tally.set(k, t);
  });
  return Object.fromEntries([...tally].map(([k, [right, n]]) => [k, { accuracy: right / n, count: n }]));
}

/** Exact-match accuracy of greedy answers over `examples`, in batches. */
export async function evaluateExamples(
  model: MultimodalModel,
  tok: Tokenizer,
  examples: readonly Example[],
  options: { batchSize?: number; maxNewTokens?: number; keepSamples?: number } = {},
): Promise<EvaluationResult> {
  if (examples.length === 0) throw new Error('evaluateExamples: no examples');
  const batchSize = options.batchSize ?? 64;
  const longest = Math.max(...examples.map((e) => tok.encode(e.answer).length));
  const maxNewTokens = options.maxNewTokens ?? longest + 2;
  const correct: boolean[] = [];
  const samples: EvaluationResult['samples'] = [];
  for (let i = 0; i < examples.length; i += batchSize) {
    const chunk = examples.slice(i, i + batchSize);
    const out = await generate(model, tok, chunk, { maxNewTokens });
    out.forEach((g, j) => {
      const ex = chunk[j]!;
      correct.push(normalizeAnswer(g.text) === normalizeAnswer(ex.answer));
      if (samples.length < (options.keepSamples ?? 8)) samples.push({ prompt: ex.prompt, answer: ex.answer, prediction: g.text });
    });
  }
  return { accuracy: correct.filter(Boolean).length / examples.length, count: examples.length, correct, samples };
}
