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
 * Faults and resume. A non-finite loss stops the run at once (NonFiniteLossError naming the step),
 * before any checkpoint of that step is taken, so the last checkpoint handed out is a good one.
 * With `checkpointEvery`, `onCheckpoint` receives a TuneCheckpoint (checkpoint.ts) after every such
 * step and is awaited before the next; `resume` continues from one: the method is applied to the
 * same base as a fresh run, then its trainable tensors, running state, the optimizer's state, the data
 * stream and the counters are restored, so the losses and weights of steps after the checkpoint are
 * those of the uninterrupted run, bit for bit (on one device). `signal` stops a run after a step
 * (TuneAbortedError). On a resumed run `peak_mb` covers the resumed steps only (`resumedFrom` says
 * where they began); `sec` and `sec_per_step` count every step of the run.
 *
 * Non-goals: writing checkpoints to disk (checkpoint.node.ts, the CLI), early stopping,
 * per-group learning rates, resuming with changed hyper-parameters (a different run).
 */
import { SeededStream, cosineSchedule, seededRandom, type AdamW } from '@keel/autograd';
import { GENERAL_TASKS, collate, getTask, toExample, type Example, type MultimodalModel, type Tokenizer, type TrainingBatch } from '@keel/mllm';
import { applyTuning, parseStrategyConfig, type TuningConfigInput, type TuningHandle } from '../strategies/apply.js';
import { registerBuiltinStrategies } from '../strategies/builtin.js';
import { getStrategy } from '../strategies/registry.js';
import type { TensorState } from '../strategies/strategy.js';
import { CHECKPOINT_FORMAT, runDifference, type TuneCheckpoint, type TuneRunIdentity } from './checkpoint.js';
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
  /** Calls onCheckpoint after every this many steps, the last included (default 0: never). */
  checkpointEvery?: number;
  /** Receives each checkpoint; awaited before the next step (a rejection stops the run). */
  onCheckpoint?: (c: TuneCheckpoint) => Promise<void>;
  /**
   * Continues the run a checkpoint was taken from, on a fresh copy of the same base model. Every
   * identity field (config, task, steps, batchSize, lr, weightDecay, seed, pool, evalCount,
   * evalEvery, progressEvery, tag) must equal the checkpoint's; `base` is the checkpoint's.
   */
  resume?: TuneCheckpoint;
  /** Checked after every step (after a due checkpoint): aborted, the run rejects with TuneAbortedError. */
  signal?: AbortSignal;
  /** The caller's own identity fields, saved in checkpoints and compared on resume (the CLI: the base directory). */
  tag?: Record<string, string>;
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
  /** The checkpoint's step when the run was resumed (row.peak_mb covers the steps after it); null otherwise. */
  resumedFrom: number | null;
}

/** The loss was NaN or infinite at `step`; no checkpoint of that step was taken. */
export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
  constructor(
    readonly step: number,
    message: string,
  ) {
    super(message);
  }
}

/** `signal` was aborted; the run stopped after `step` (a checkpoint of it exists only when one was due). */
export class TuneAbortedError extends Error {
  override name = 'TuneAbortedError';
  constructor(
    readonly step: number,
    message: string,
  ) {
    super(message);
  }
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

/**
 * The run `options` describe, defaults filled and validated (bad fields throw naming them): what a
 * checkpoint records and a resume must match. The CLI compares its flags with it before loading a model.
 */
export function tuneRunIdentity(options: TuneOptions): TuneRunIdentity {
  const steps = positiveInt('steps', options.steps ?? 200);
  const batchSize = positiveInt('batchSize', options.batchSize ?? 16);
  const evalEvery = options.evalEvery ?? 0;
  if (!Number.isInteger(evalEvery) || evalEvery < 0) throw new Error(`tune: evalEvery must be a non-negative integer, got ${evalEvery}`);
  const lr = options.lr ?? 1e-3;
  if (!(lr > 0 && Number.isFinite(lr))) throw new Error(`tune: lr must be a finite number > 0, got ${lr}`);
  const weightDecay = options.weightDecay ?? 0;
  if (!(weightDecay >= 0 && Number.isFinite(weightDecay))) throw new Error(`tune: weightDecay must be a finite number ≥ 0, got ${weightDecay}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`tune: seed must be a non-negative integer, got ${seed}`);
  const task = getTask(options.task);
  if (task.kind !== 'downstream') throw new Error(`tune: '${task.name}' is a general task; tune on a downstream task (T) and keep the general suite for U`);
  const { strategy, ...fields } = options.config;
  registerBuiltinStrategies();
  const def = getStrategy(strategy);
  // The run's seed is also the method's, for a method with a `seed` field the config leaves unset.
  const seeded = !('seed' in fields) && def.schema.safeParse({ ...fields, seed }).success;
  return {
    config: { strategy: def.name, ...(parseStrategyConfig(def, seeded ? { ...fields, seed } : fields) as Record<string, unknown>) },
    task: task.name,
    steps,
    batchSize,
    lr,
    weightDecay,
    seed,
    pool: positiveInt('pool', options.pool ?? Math.min(steps * batchSize, 4000)),
    evalCount: positiveInt('evalCount', options.evalCount ?? 200),
    evalEvery,
    progressEvery: positiveInt('progressEvery', options.progressEvery ?? 10),
    tag: { ...options.tag },
  };
}

/**
 * The trainable tensors' values, which is what training changes. Not the method's state(): post-hoc
 * methods refuse state() before finalize, and PiSSA's state() is its export form, not its tensors.
 */
async function trainedWeights(handle: TuningHandle): Promise<Map<string, TensorState>> {
  const out = new Map<string, TensorState>();
  for (const [name, p] of handle.trainableParameters()) out.set(name, { shape: [...p.shape], data: (await p.toArray()) as Float32Array });
  return out;
}

/** Restores a checkpoint's weights, method running state and optimizer state into a freshly applied handle. */
async function restoreTraining(handle: TuningHandle, optimizer: AdamW, c: TuneCheckpoint): Promise<void> {
  await handle.ready(); // an asynchronous init (PiSSA) must not land on top of the restored weights
  const params = handle.trainableParameters();
  const where = `tune: cannot resume from the step-${c.step} checkpoint`;
  const extra = [...c.weights.keys()].filter((n) => !params.has(n));
  if (extra.length) throw new Error(`${where}: it holds '${extra[0]}', which ${handle.strategy} does not train`);
  for (const [name, p] of params) {
    const w = c.weights.get(name);
    if (!w) throw new Error(`${where}: it lacks the trainable tensor '${name}'`);
    if (w.shape.join() !== p.shape.join() || w.data.length !== p.size) throw new Error(`${where}: '${name}' is [${w.shape}] there, [${p.shape}] here`);
  }
  for (const [name, p] of params) if (p.size > 0) p.rt.write(p.buffer, c.weights.get(name)!.data);
  handle.loadRunningState(c.running);
  optimizer.loadStateDict(c.optimizer);
}

/** Applies `options.config` to `model`, trains on `options.task` and scores the result (file comment). */
export async function tune(model: MultimodalModel, tok: Tokenizer, options: TuneOptions): Promise<TuneResult> {
  const run = tuneRunIdentity(options);
  const { steps, batchSize, lr, seed, pool, evalCount, evalEvery, progressEvery } = run;
  const checkpointEvery = options.checkpointEvery ?? 0;
  if (!Number.isInteger(checkpointEvery) || checkpointEvery < 0) throw new Error(`tune: checkpointEvery must be a non-negative integer, got ${checkpointEvery}`);
  if (checkpointEvery > 0 && !options.onCheckpoint) throw new Error(`tune: checkpointEvery is ${checkpointEvery} but no onCheckpoint receives the checkpoints`);
  const resume = options.resume ?? null;
  if (resume) {
    const d = runDifference(resume.run, run);
    if (d) throw new Error(`tune: cannot resume from the step-${resume.step} checkpoint: ${d.field} differs (checkpoint ${JSON.stringify(d.saved)}, this run ${JSON.stringify(d.now)})`);
    if (resume.format !== CHECKPOINT_FORMAT) throw new Error(`tune: cannot resume: checkpoint format ${resume.format}, expected ${CHECKPOINT_FORMAT}`);
    if (!Number.isInteger(resume.step) || resume.step < 0 || resume.step > steps) throw new Error(`tune: cannot resume: the checkpoint's step ${resume.step} is outside 0 … ${steps}`);
  }
  const task = getTask(run.task);
  const evalOptions = { task: task.name, count: evalCount, seed };
  const rt = model.rt;

  // The method goes on first, so a config that does not fit this model fails before minutes of base
  // scoring; the base is then scored with the method disabled (bit-exact the base, by the invariants).
  const handle = applyTuning(model, run.config as TuningConfigInput, { generalBatches: await generalBatches(model, tok, seed) });
  try {
    let base = resume?.base ?? options.base;
    if (!base) {
      await handle.ready();
      handle.disable();
      base = await evaluateTargetUpstream(model, tok, evalOptions);
      handle.enable();
    }
    const size = model.config.vision.imageSize;
    const examples = (await task.samples('train', pool, seed, { size })).map(toExample);
    const optimizer = handle.optimizer({
      lr,
      weightDecay: run.weightDecay,
      maxNorm: 1,
      schedule: cosineSchedule({ warmup: Math.floor(steps / 10), total: steps, minRatio: 0.1 }),
    });
    const stream = new SeededStream((seed ^ 0x6a09e667) >>> 0);
    let lossCurve: [number, number][] = [];
    let evalCurve: TuneResult['evalCurve'] = [{ step: 0, T: base.T, U: base.U }];
    let maskSnapshots: { step: number; density: Map<string, number> }[] = [];
    let trainSec = 0;
    let recent = 0;
    let recentCount = 0;
    if (resume) {
      await restoreTraining(handle, optimizer, resume);
      stream.restore(resume.stream);
      lossCurve = resume.lossCurve.map(([s, l]) => [s, l]);
      evalCurve = resume.evalCurve.map((e) => ({ ...e }));
      maskSnapshots = resume.masks.map((m) => ({ step: m.step, density: new Map(m.density) }));
      ({ trainSec, recent, recentCount } = resume);
    }
    const snapshotMasks = async (step: number) => {
      const d = await handle.maskDensity();
      if (d) maskSnapshots.push({ step, density: d });
    };
    const checkpoint = async (step: number): Promise<TuneCheckpoint> => ({
      format: CHECKPOINT_FORMAT,
      step,
      stream: stream.state,
      run,
      lossCurve: lossCurve.map(([s, l]) => [s, l]),
      evalCurve: evalCurve.map((e) => ({ ...e })),
      masks: maskSnapshots.map((m) => ({ step: m.step, density: [...m.density] })),
      trainSec,
      recent,
      recentCount,
      base,
      weights: await trainedWeights(handle),
      running: await handle.runningState(),
      optimizer: await optimizer.stateDict(),
    });
    rt.resetPeak();
    for (let step = (resume?.step ?? 0) + 1; step <= steps; step++) {
      const t0 = performance.now();
      const batch = Array.from({ length: batchSize }, () => examples[Math.floor(stream.next() * examples.length)]!);
      const loss = await handle.trainStep(optimizer, collate(batch, tok, model.config));
      trainSec += (performance.now() - t0) / 1000;
      if (!Number.isFinite(loss)) throw new NonFiniteLossError(step, `tune: the loss became ${loss} at step ${step} (${handle.strategy} on ${task.name}, lr ${lr}); lower the lr`);
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
      if (checkpointEvery > 0 && step % checkpointEvery === 0) await options.onCheckpoint!(await checkpoint(step));
      if (options.signal?.aborted) {
        const why = options.signal.reason instanceof Error ? `: ${options.signal.reason.message}` : '';
        throw new TuneAbortedError(step, `tune: stopped after step ${step} of ${steps} (aborted${why})`);
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
      sec_per_step: trainSec / steps, // every step of the run, a resumed run's included (the checkpoint's trainSec)
      sec: trainSec,
    };
    const names = maskSnapshots.length ? [...maskSnapshots[0]!.density.keys()] : [];
    const masks = maskSnapshots.length ? { names, density: names.map((n) => maskSnapshots.map((m) => m.density.get(n) ?? 0)), steps: maskSnapshots.map((m) => m.step) } : null;
    return { handle, base, final, scores, row, lossCurve, evalCurve, masks, resumedFrom: resume?.step ?? null };
  } catch (e) {
    handle.dispose();
    throw e;
  }
}
