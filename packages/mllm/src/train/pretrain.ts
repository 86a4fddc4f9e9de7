/**
 * Pre-training the bundled base model in two stages. Stage 1 (vision-pretrain.ts): the vision tower
 * alone learns dense scene parsing, what shape, colour and size is under each patch. Stage 2: the
 * whole model learns the general suite, synthetic scene captioning, scene VQA and text-only general
 * knowledge, mixed per batch. Deterministic from the seed (data, init, batch
 * order) on a given device. The downstream tasks (MNIST digits, novel shapes, counting) are never
 * seen, so the base is good at the general suite and bad at them — what tuning then measures.
 *
 * Recipe: AdamW (β 0.9/0.999, weight decay 0.01 on matrices only), linear warmup then cosine decay
 * to 10 % of the peak lr, global gradient-norm clipping at 1.
 * Resuming. Checkpoints are taken in stage 2 only. With `checkpointEvery` the run hands `onCheckpoint` a PretrainCheckpoint every that
 * many steps (the weights, AdamW's state, the batch-draw stream's state, the curves and the run's
 * identity; pretrain-checkpoint.ts encodes it as files); `resume` continues from one. The data pools
 * are regenerated from the seed, so a resumed run reproduces the uninterrupted run's losses and
 * weights bit for bit on the same device; a checkpoint of another run (any identity field differs)
 * is refused with the field named.
 * Continued pre-training. `init` starts stage 2 from existing weights (a model directory the caller
 * read) instead of a fresh initialization; the run's identity holds the weights' digest, so a
 * checkpoint resumes only a continuation of the same weights. `init.fresh` names parameter prefixes
 * that keep their fresh initialization instead (e.g. 'multi_modal_projector.': a connector swap,
 * where the vision tower and language model of one architecture start a model of another).
 * `kindWeights` ('vqa.exist': 3) draws the examples of a question type that many times as often
 * within its task's pool, without changing the task mix; the default (every weight 1) draws
 * exactly as a run without it (kind-draw.ts). `freeze` (parameter-name globs, e.g. 'vision_tower.**')
 * keeps those parameters as stage 2 found them; stage 1 still trains the vision tower.
 * Non-goals: curriculum learning, data augmentation.
 */
import type { Runtime } from '@keel/kernels';
import { AdamW, SeededStream, cosineSchedule, type OptimizerState } from '@keel/autograd';
import { resolveConfig, type MllmConfigInput } from '../config.js';
import { GENERAL_TASKS, getTask, vocabularyWords } from '../data/tasks.js';
import { modelTensors } from '../model/checkpoint.js';
import { MultimodalModel } from '../model/mllm.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { kindDraw } from './kind-draw.js';
import { decayGroups, trainOnExamples, type KindScores } from './loop.js';
import { scoreTasksByKind, toExample } from './score-tasks.js';
import { pretrainVision } from './vision-pretrain.js';

export interface PretrainProgress {
  /** 'vision': stage 1 (step counts its steps); 'multimodal': stage 2. */
  stage: 'vision' | 'multimodal';
  step: number;
  steps: number;
  loss: number;
  /** Training examples (stage 1: scenes) per second over the stage so far. */
  samplesPerSec: number;
  /** Seconds of the stage so far. */
  elapsedSec: number;
}

export interface PretrainOptions {
  /** Seed of data, initialization and batch order (default 0). */
  seed?: number;
  /** Optimizer steps of stage 2 (default 3000). */
  steps?: number;
  /** Steps of stage 1, dense scene parsing by the vision tower alone (default steps/10 rounded; 0 skips it). */
  visionSteps?: number;
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
  /** Calls onCheckpoint every this many steps (default 0: never); never after the last step. */
  checkpointEvery?: number;
  /** Receives the run's state to store (file comment); the run waits for it. */
  onCheckpoint?: (c: PretrainCheckpoint) => Promise<void>;
  /** Continues the run a checkpoint was taken from, at its step + 1. */
  resume?: PretrainCheckpoint;
  /**
   * Relative weight of a question type within its task's pool, keyed `task.kind` (e.g.
   * { 'vqa.exist': 3 }); unnamed types weigh 1. A key that names no type of the mixed tasks is an error.
   */
  kindWeights?: Record<string, number>;
  /** Continued pre-training: stage 2 starts from these weights (file comment). */
  init?: PretrainInit;
  /** Parameter-name globs (Module.select) that stage 2 does not update, e.g. 'vision_tower.**'; each must name a parameter. */
  freeze?: readonly string[];
}

/** The weights a continued pre-training run starts from. */
export interface PretrainInit {
  /** Every parameter of the config's model, by HF name (what loadModelFiles reads). */
  weights: ReadonlyMap<string, { shape: number[]; data: Float32Array }>;
  /** A digest of the weights (e.g. the safetensors file's SHA-256): the run's identity holds it. */
  digest: string;
  /**
   * Parameter-name prefixes that keep the model's fresh initialization; the init's tensors under
   * them are ignored (they may have other shapes or be absent). Every other parameter must be in
   * `weights` with its shape.
   */
  fresh?: readonly string[];
}

/** The options that make a pre-training run what it is; a checkpoint resumes only a run with all of them equal. */
export interface PretrainRunIdentity {
  seed: number;
  steps: number;
  visionSteps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  pool: number;
  progressEvery: number;
  mix: Record<string, number>;
  /** The model config as resolved (every default filled in). */
  config: unknown;
  /** Question-type weights (empty: every type weighs 1). */
  kindWeights: Record<string, number>;
  /** The digest of the initial weights of a continued run; null for a fresh initialization. */
  init: string | null;
  /** Globs of the parameters stage 2 leaves alone (empty: it trains all). */
  freeze: string[];
}

/** Everything step + 1 depends on (file comment). */
export interface PretrainCheckpoint {
  /** Stage-2 steps completed (stage 1 is complete in every checkpoint). */
  step: number;
  /** The batch-draw stream's state after `step` steps. */
  stream: number;
  run: PretrainRunIdentity;
  lossCurve: [number, number][];
  /** Training seconds of stage-2 steps 1 … step. */
  trainSec: number;
  /** Stage 1's loss curve and seconds. */
  visionLossCurve: [number, number][];
  visionSec: number;
  /** Sum and count of the losses since the last progress report. */
  recent: number;
  recentCount: number;
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  /** tokenizer.json's content, so the checkpoint is a loadable model directory too. */
  tokenizer: object;
  optimizer: OptimizerState;
}

/** The first identity field that differs ('lr', 'mix', 'config.vision.width' …) with both values, or null. */
export function pretrainRunDifference(saved: PretrainRunIdentity, now: PretrainRunIdentity): { field: string; saved: unknown; now: unknown } | null {
  const walk = (a: unknown, b: unknown, path: string): { field: string; saved: unknown; now: unknown } | null => {
    const objA = a !== null && typeof a === 'object' && !Array.isArray(a);
    const objB = b !== null && typeof b === 'object' && !Array.isArray(b);
    if (objA && objB) {
      const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort();
      for (const k of keys) {
        const d = walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
        if (d) return d;
      }
      return null;
    }
    return JSON.stringify(a) === JSON.stringify(b) ? null : { field: path, saved: a, now: b };
  };
  for (const field of ['seed', 'steps', 'visionSteps', 'batchSize', 'lr', 'warmup', 'pool', 'progressEvery', 'mix', 'config', 'kindWeights', 'init', 'freeze'] as const) {
    const d = walk(saved[field], now[field], field);
    if (d) return d;
  }
  return null;
}

export interface PretrainResult {
  model: MultimodalModel;
  tokenizer: WordTokenizer;
  /** Stage 2's [step, loss] every progressEvery steps. */
  lossCurve: [number, number][];
  /** Stage 1's, likewise (empty when it was skipped). */
  visionLossCurve: [number, number][];
  /** The step the run was resumed from, if it was. */
  resumedFrom: number | null;
  /** Held-out exact-match accuracy per task (general and downstream). */
  scores: Record<string, number>;
  /** The same, per question type of each task. */
  byKind: Record<string, KindScores>;
  /** Training seconds of both stages over all segments of the run (scoring excluded). */
  seconds: number;
  /** Stage 1's share of `seconds`. */
  visionSeconds: number;
  /** Stage 2's training examples per second. */
  samplesPerSec: number;
  options: Required<Omit<PretrainOptions, 'onProgress' | 'onCheckpoint' | 'resume' | 'config' | 'mix' | 'init' | 'freeze'>> & { mix: Record<string, number>; config: MllmConfigInput; init: string | null; freeze: string[] };
}

const DEFAULT_MIX: Record<string, number> = { caption: 0.35, vqa: 0.45, text: 0.2 };

/** The options with every default filled in and checked, the tokenizer, the model config and the run's identity. */
function resolveRun(options: PretrainOptions) {
  const o = {
    seed: options.seed ?? 0,
    steps: options.steps ?? 3000,
    visionSteps: options.visionSteps ?? Math.round((options.steps ?? 3000) / 10),
    batchSize: options.batchSize ?? 32,
    lr: options.lr ?? 2e-3,
    warmup: Math.min(options.warmup ?? 100, Math.max(0, (options.steps ?? 3000) - 1)),
    pool: options.pool ?? 12000,
    evalCount: options.evalCount ?? 300,
    progressEvery: options.progressEvery ?? 50,
    checkpointEvery: options.checkpointEvery ?? 0,
    mix: { ...DEFAULT_MIX, ...options.mix } as Record<string, number>,
    config: options.config ?? {},
    kindWeights: { ...options.kindWeights },
    init: options.init ? `${options.init.digest}${options.init.fresh?.length ? ` fresh:${options.init.fresh.join(',')}` : ''}` : null,
    freeze: [...(options.freeze ?? [])],
  };
  for (const [k, v] of Object.entries({ steps: o.steps, batchSize: o.batchSize, pool: o.pool, evalCount: o.evalCount, progressEvery: o.progressEvery })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`pretrain: ${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(o.visionSteps) || o.visionSteps < 0) throw new Error(`pretrain: visionSteps must be an integer ≥ 0, got ${o.visionSteps}`);
  if (!Number.isInteger(o.checkpointEvery) || o.checkpointEvery < 0) throw new Error(`pretrain: checkpointEvery must be an integer ≥ 0, got ${o.checkpointEvery}`);
  if (!(o.lr > 0)) throw new Error(`pretrain: lr must be > 0, got ${o.lr}`);
  for (const name of Object.keys(o.mix)) {
    if (!GENERAL_TASKS.includes(name)) throw new Error(`pretrain: mix names '${name}', not a general task (general: ${GENERAL_TASKS.join(', ')})`);
    if (!(o.mix[name]! >= 0)) throw new Error(`pretrain: mix weight of '${name}' must be ≥ 0, got ${o.mix[name]}`);
  }
  for (const [key, w] of Object.entries(o.kindWeights)) {
    const task = key.split('.')[0]!;
    if (!/^[a-z]+\.[a-z-]+$/.test(key)) throw new Error(`pretrain: kindWeights key '${key}' is not task.kind (e.g. vqa.exist)`);
    if (!GENERAL_TASKS.includes(task)) throw new Error(`pretrain: kindWeights key '${key}' names '${task}', not a general task (general: ${GENERAL_TASKS.join(', ')})`);
    if (!(Number.isFinite(w) && w > 0)) throw new Error(`pretrain: kindWeights weight of '${key}' must be > 0, got ${w}`);
  }
  const tokenizer = WordTokenizer.fromWords(vocabularyWords());
  const config = resolveConfig({
    ...o.config,
    text: { ...o.config.text, vocabSize: tokenizer.vocabSize },
    imageTokenId: tokenizer.specials.image,
  });
  const run: PretrainRunIdentity = { seed: o.seed, steps: o.steps, visionSteps: o.visionSteps, batchSize: o.batchSize, lr: o.lr, warmup: o.warmup, pool: o.pool, progressEvery: o.progressEvery, mix: o.mix, config, kindWeights: o.kindWeights, init: o.init, freeze: o.freeze };
  return { o, tokenizer, config, run };
}

/** The identity a run with these options has: what a checkpoint to resume must match (pretrainRunDifference). */
export const pretrainRunIdentity = (options: PretrainOptions): PretrainRunIdentity => resolveRun(options).run;

export async function pretrain(rt: Runtime, options: PretrainOptions = {}): Promise<PretrainResult> {
  const { o, tokenizer, config, run } = resolveRun(options);
  if (o.checkpointEvery > 0 && !options.onCheckpoint) throw new Error('pretrain: checkpointEvery is set but there is no onCheckpoint to receive the checkpoints');
  if (options.resume) {
    const d = pretrainRunDifference(options.resume.run, run);
    if (d) throw new Error(`pretrain: cannot resume: the checkpoint's run has ${d.field} ${JSON.stringify(d.saved)}, this run ${JSON.stringify(d.now)}`);
    if (!(options.resume.step >= 1 && options.resume.step < o.steps)) throw new Error(`pretrain: cannot resume from step ${options.resume.step} of a ${o.steps}-step run`);
  }
  const model = new MultimodalModel(rt, config, { seed: o.seed });
  try {
    if (options.init) restoreWeights(model, options.init.weights, 'start from the init weights', options.init.fresh);
    const idle = o.freeze.filter((glob) => model.select(glob).size === 0);
    if (idle.length) throw new Error(`pretrain: freeze ${idle.map((g) => `'${g}'`).join(', ')} names no parameter of the model (e.g. 'vision_tower.**', 'language_model.**')`);
    return { model, tokenizer, ...(await trainAndScore(model, tokenizer, o, run, options)), options: o };
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
  run: PretrainRunIdentity,
  { onProgress, onCheckpoint, resume }: PretrainOptions,
): Promise<Pick<PretrainResult, 'lossCurve' | 'visionLossCurve' | 'scores' | 'byKind' | 'seconds' | 'visionSeconds' | 'samplesPerSec' | 'resumedFrom'>> {
  const size = model.config.vision.imageSize;

  // data pools: generated once, sampled with replacement per step
  const tasks = Object.keys(o.mix).filter((t) => o.mix[t]! > 0);
  const samples = await Promise.all(tasks.map((t) => getTask(t).samples('train', o.pool, o.seed, { size })));
  const pools = samples.map((s) => s.map(toExample));
  const drawIndex = samples.map((s, i) => kindDraw(s, tasks[i]!, o.kindWeights));
  const unknown = Object.keys(o.kindWeights).filter((key) => !samples.some((s, i) => s.some((x) => `${tasks[i]}.${x.kind}` === key)));
  if (unknown.length) {
    const known = [...new Set(samples.flatMap((s, i) => s.map((x) => `${tasks[i]}.${x.kind}`)))].sort();
    throw new Error(`pretrain: kindWeights names ${unknown.map((k) => `'${k}'`).join(', ')}, no question type of the mixed tasks (known: ${known.join(', ')})`);
  }
  const weights = tasks.map((t) => o.mix[t]!);
  const total = weights.reduce((a, b) => a + b, 0);
  const stream = new SeededStream((o.seed ^ 0x5bd1e995) >>> 0);
  const rand = () => stream.next();
  const pickTask = (): number => {
    let r = rand() * total;
    for (let i = 0; i < weights.length; i++) if ((r -= weights[i]!) < 0) return i;
    return weights.length - 1;
  };

  // stage 1, unless a stage-2 checkpoint (which holds its result) is resumed
  let visionLossCurve: [number, number][] = [];
  let visionSec = 0;
  if (resume) {
    visionLossCurve = resume.visionLossCurve.map(([s, l]) => [s, l]);
    visionSec = resume.visionSec;
  } else if (o.visionSteps > 0) {
    const visionStart = performance.now();
    const vision = await pretrainVision(model, {
      steps: o.visionSteps,
      batchSize: o.batchSize,
      lr: o.lr,
      seed: o.seed,
      progressEvery: o.progressEvery,
      onProgress: (step, loss) => {
        const elapsedSec = (performance.now() - visionStart) / 1000;
        onProgress?.({ stage: 'vision', step, steps: o.visionSteps, loss, samplesPerSec: (step * o.batchSize) / elapsedSec, elapsedSec });
      },
    });
    visionLossCurve = vision.lossCurve;
    visionSec = vision.seconds;
  }

  let lossCurve: [number, number][] = [];
  let recent = 0;
  let recentCount = 0;
  let priorSec = 0; // training seconds of the segments before this one
  const first = resume ? resume.step + 1 : 1;
  if (resume) {
    restoreWeights(model, resume.weights);
    stream.restore(resume.stream);
    ({ recent, recentCount } = resume);
    lossCurve = resume.lossCurve.map(([s, l]) => [s, l]);
    priorSec = resume.trainSec;
  }
  // created after stage 1, so nothing of stage 2 is held when stage 1 fails
  const frozen = model.freeze(o.freeze); // after stage 1, which trains the tower whatever stage 2 does
  const optimizer = new AdamW(model.rt, decayGroups([...model.namedParameters()].filter(([, p]) => p.requiresGrad), 0.01), {
    lr: o.lr,
    maxNorm: 1,
    schedule: cosineSchedule({ warmup: o.warmup, total: o.steps, minRatio: 0.1 }),
  });
  let start = performance.now();
  const trainSec = () => priorSec + (performance.now() - start) / 1000;
  try {
    if (resume) optimizer.loadStateDict(resume.optimizer);
    for (let step = first; step <= o.steps; step++) {
      const batch = Array.from({ length: o.batchSize }, () => {
        const t = pickTask();
        return pools[t]![drawIndex[t]!(rand())]!;
      });
      const loss = await trainOnExamples(model, tokenizer, optimizer, batch);
      if (!Number.isFinite(loss)) throw new Error(`pretrain: the loss became ${loss} at step ${step}; lower lr (${o.lr}) or check the data`);
      recent += loss;
      recentCount++;
      if (step % o.progressEvery === 0 || step === o.steps) {
        const elapsedSec = trainSec();
        const mean = recent / recentCount;
        lossCurve.push([step, mean]);
        recent = 0;
        recentCount = 0;
        onProgress?.({ stage: 'multimodal', step, steps: o.steps, loss: mean, samplesPerSec: (step * o.batchSize) / elapsedSec, elapsedSec });
      }
      if (onCheckpoint && o.checkpointEvery > 0 && step % o.checkpointEvery === 0 && step < o.steps) {
        const sec = trainSec();
        const weights = await modelTensors(model);
        const state = await optimizer.stateDict();
        await onCheckpoint({ step, stream: stream.state, run, lossCurve: lossCurve.map(([s, l]) => [s, l]), trainSec: sec, visionLossCurve, visionSec, recent, recentCount, weights, tokenizer: tokenizer.toJSON(), optimizer: state });
        // the time spent storing the checkpoint is not training time
        priorSec = sec;
        start = performance.now();
      }
    }
  } finally {
    optimizer.dispose();
    model.unfreeze(frozen); // the caller gets a model whose every parameter trains
  }
  const seconds = trainSec();
  const { scores, byKind } = await scoreTasksByKind(model, tokenizer, o.evalCount, o.seed);
  return {
    lossCurve,
    visionLossCurve,
    scores,
    byKind,
    seconds: visionSec + seconds,
    visionSeconds: visionSec,
    samplesPerSec: (o.steps * o.batchSize) / seconds,
    resumedFrom: resume ? resume.step : null,
  };
}

/** Writes a checkpoint's (or the init's) weights into the freshly built model; names and shapes must match exactly. */
function restoreWeights(model: MultimodalModel, weights: PretrainInit['weights'], what = 'resume', fresh: readonly string[] = []): void {
  const kept = (name: string) => fresh.some((prefix) => name.startsWith(prefix));
  const params = new Map([...model.namedParameters()].filter(([name]) => !kept(name)));
  if (fresh.length && params.size === model.namedParameters().size) throw new Error(`pretrain: cannot ${what}: no parameter starts with ${fresh.join(' or ')} (the prefixes to keep fresh)`);
  const extra = [...weights.keys()].filter((n) => !params.has(n) && !kept(n));
  if (extra.length) throw new Error(`pretrain: cannot ${what}: the weights have tensors the model lacks (${extra.slice(0, 4).join(', ')}${extra.length > 4 ? ', …' : ''})`);
  for (const [name, p] of params) {
    const w = weights.get(name);
    if (!w) throw new Error(`pretrain: cannot ${what}: the weights lack ${name}`);
    if (w.shape.join() !== p.shape.join() || w.data.length !== p.size) throw new Error(`pretrain: cannot ${what}: weight ${name} has shape [${w.shape}], the model [${p.shape}]`);
  }
  for (const [name, p] of params) p.rt.write(p.buffer, weights.get(name)!.data);
}
