/**
 * One tuning run, the way the CLI, the benchmark and the browser example all do it: apply a method
 * to a loaded base model, train it on a downstream task's training split for a fixed step budget,
 * finalize post-hoc methods, and score T/U/H/E/F/O against the base (scores.ts) together with the
 * costs (trainable parameters, extra state, peak GPU bytes, seconds per step).
 *
 * Recipe: AdamW over the method's trainable tensors, linear warmup (10 % of the steps) then cosine
 * decay to 10 % of the peak lr, global gradient-norm clipping at 1, no weight decay by default
 * (decay would pull tuned weights towards 0, not towards the base). Batches are drawn with
 * replacement from a pool of generated training examples by a seeded stream, so a run is
 * deterministic from its seed on a given device.
 *
 * Non-goals: checkpointing and resume (the CLI's job), early stopping, per-group learning rates.
 */
import { cosineSchedule, seededRandom } from '@keel/autograd';
import { GENERAL_TASKS, collate, getTask, toExample, type Example, type MultimodalModel, type Tokenizer, type TrainingBatch } from '@keel/mllm';
import { applyTuning, type TuningConfigInput, type TuningHandle } from '../strategies/apply.js';
import { evaluateTargetUpstream, protocolScores, type Evaluation, type ProtocolScores } from './scores.js';

export interface TuneProgress {
  step: number;
  steps: number;
  /** Mean training loss since the previous report. */
  loss: number;
  samplesPerSec: number;
  elapsedSec: number;
}

export interface TuneOptions {
  /** The method and its fields, e.g. { strategy: 'lora', r: 8 }. */
  config: TuningConfigInput;
  /** Downstream task name (its 'train' split trains, its 'test' split gives T). */
  task: string;
  /** Optimizer steps (default 200). */
  steps?: number;
  /** Examples per step (default 16). */
  batchSize?: number;
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Seed of the data draw and of the method's own randomness where it has a `seed` field (default 0). */
  seed?: number;
  /** Training examples generated for the pool (default min(steps · batchSize, 4000)). */
  pool?: number;
  /** Held-out examples per task for T and U (default 200). */
  evalCount?: number;
  /** Also score T and U every this many steps (default 0: only at the end). */
  evalEvery?: number;
  /** The base model's scores on the same held-out draw; computed first when absent. */
  base?: Evaluation;
  /** Calls onProgress every this many steps (default 10). */
  progressEvery?: number;
  onProgress?: (p: TuneProgress) => void;
  onEval?: (step: number, e: Evaluation) => void;
}

/** One row of the benchmark table (bench.json's `rows`, metrics.json's `result`). */
export interface TuneRow extends ProtocolScores {
  strategy: string;
  task: string;
  trainable: number;
  trainable_pct: number;
  extra_state_bytes: number;
  peak_mb: number;
  sec_per_step: number;
  sec: number;
}

export interface TuneResult {
  handle: TuningHandle;
  base: Evaluation;
  final: Evaluation;
  scores: ProtocolScores;
  row: TuneRow;
  /** [step, mean loss] every progressEvery steps. */
  lossCurve: [number, number][];
  /** T and U at step 0 (the base), every evalEvery steps, and at the end. */
  evalCurve: { step: number; T: number; U: number }[];
  /** Masked methods: density[tensor][snapshot] of entries allowed to move, at each eval step after 0; null otherwise. */
  masks: { names: string[]; density: number[][]; steps: number[] } | null;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`tune: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** General-suite batches for methods that estimate importance on the upstream distribution (EWC). */
async function generalBatches(model: MultimodalModel, tok: Tokenizer, seed: number): Promise<TrainingBatch[]> {
  const size = model.config.vision.imageSize;
  const examples: Example[] = [];
  for (const name of GENERAL_TASKS) examples.push(...(await getTask(name).samples('train', 32, seed, { size })).map(toExample));
  const rand = seededRandom((seed ^ 0x2545f491) >>> 0);
  for (let i = examples.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [examples[i], examples[j]] = [examples[j]!, examples[i]!];
  }
  const batches: TrainingBatch[] = [];
  for (let i = 0; i < examples.length; i += 16) batches.push(collate(examples.slice(i, i + 16), tok, model.config));
  return batches;
}

/** Applies `options.config` to `model`, trains on `options.task` and scores the result (file comment). */
export async function tune(model: MultimodalModel, tok: Tokenizer, options: TuneOptions): Promise<TuneResult> {
  const steps = positiveInt('steps', options.steps ?? 200);
  const batchSize = positiveInt('batchSize', options.batchSize ?? 16);
  const pool = positiveInt('pool', options.pool ?? Math.min(steps * batchSize, 4000));
  const evalCount = positiveInt('evalCount', options.evalCount ?? 200);
  const progressEvery = positiveInt('progressEvery', options.progressEvery ?? 10);
  const evalEvery = options.evalEvery ?? 0;
  if (!Number.isInteger(evalEvery) || evalEvery < 0) throw new Error(`tune: evalEvery must be a non-negative integer, got ${evalEvery}`);
  const lr = options.lr ?? 1e-3;
  if (!(lr > 0)) throw new Error(`tune: lr must be > 0, got ${lr}`);
  const seed = options.seed ?? 0;
  const task = getTask(options.task);
  if (task.kind !== 'downstream') throw new Error(`tune: '${task.name}' is a general task; tune on a downstream task (T) and keep the general suite for U`);
  const evalOptions = { task: task.name, count: evalCount, seed };
  const rt = model.rt;

  const base = options.base ?? (await evaluateTargetUpstream(model, tok, evalOptions));
  const size = model.config.vision.imageSize;
  const examples = (await task.samples('train', pool, seed, { size })).map(toExample);
  const handle = applyTuning(model, options.config, { generalBatches: await generalBatches(model, tok, seed) });
  try {
    const optimizer = handle.optimizer({
      lr,
      weightDecay: options.weightDecay ?? 0,
      maxNorm: 1,
      schedule: cosineSchedule({ warmup: Math.floor(steps / 10), total: steps, minRatio: 0.1 }),
    });
    const rand = seededRandom((seed ^ 0x6a09e667) >>> 0);
    const lossCurve: [number, number][] = [];
    const evalCurve: TuneResult['evalCurve'] = [{ step: 0, T: base.T, U: base.U }];
    const maskSnapshots: { step: number; density: Map<string, number> }[] = [];
    const snapshotMasks = async (step: number) => {
      const d = await handle.maskDensity();
      if (d) maskSnapshots.push({ step, density: d });
    };
    rt.resetPeak();
    let trainSec = 0;
    let recent = 0;
    let recentCount = 0;
    for (let step = 1; step <= steps; step++) {
      const t0 = performance.now();
      const batch = Array.from({ length: batchSize }, () => examples[Math.floor(rand() * examples.length)]!);
      const loss = await handle.trainStep(optimizer, collate(batch, tok, model.config));
      trainSec += (performance.now() - t0) / 1000;
      if (!Number.isFinite(loss)) throw new Error(`tune: the loss became ${loss} at step ${step} (${handle.strategy} on ${task.name}, lr ${lr}); lower the lr`);
      recent += loss;
      recentCount++;
      if (step % progressEvery === 0 || step === steps) {
        lossCurve.push([step, recent / recentCount]);
        options.onProgress?.({ step, steps, loss: recent / recentCount, samplesPerSec: (step * batchSize) / trainSec, elapsedSec: trainSec });
        recent = 0;
        recentCount = 0;
      }
      if (evalEvery > 0 && step % evalEvery === 0 && step < steps) {
        await snapshotMasks(step);
        const e = await evaluateTargetUpstream(model, tok, evalOptions);
        evalCurve.push({ step, T: e.T, U: e.U });
        options.onEval?.(step, e);
      }
    }
    const peakBytes = rt.stats().peakLiveBytes;
    await snapshotMasks(steps);
    handle.finalize();
    const final = await evaluateTargetUpstream(model, tok, evalOptions);
    evalCurve.push({ step: steps, T: final.T, U: final.U });
    options.onEval?.(steps, final);
    const scores = protocolScores(final, base);
    const row: TuneRow = {
      strategy: handle.strategy,
      task: task.name,
      ...scores,
      trainable: handle.numTrainable(),
      trainable_pct: handle.trainablePercent(),
      extra_state_bytes: handle.extraStateBytes(),
      peak_mb: peakBytes / 2 ** 20,
      sec_per_step: trainSec / steps,
      sec: trainSec,
    };
    const names = maskSnapshots.length ? [...maskSnapshots[0]!.density.keys()] : [];
    const masks = maskSnapshots.length ? { names, density: names.map((n) => maskSnapshots.map((m) => m.density.get(n) ?? 0)), steps: maskSnapshots.map((m) => m.step) } : null;
    return { handle, base, final, scores, row, lossCurve, evalCurve, masks };
  } catch (e) {
    handle.dispose();
    throw e;
  }
}
