/**
 * `applyTuning(model, { strategy, ...config })`: the one entry point every method goes through.
 * It validates the config with the method's schema (every bad field reported by path, defaults
 * filled), installs the method, freezes every base parameter the method does not train, and returns
 * a TuningHandle: trainable parameters and their count, the step hooks, an AdamW over exactly the
 * trainable tensors, merge / enable / disable, save / load of the adapter directory (layout and key
 * mapping: adapter-files.ts), and dispose, which uninstalls the method and restores the freeze flags.
 *
 * Freezing matters beyond speed: a frozen parameter gets no gradient, and the optimizer gives it
 * lr 0, so "only the intended parameters change" holds even with weight decay.
 *
 * Non-goals: several methods on one model at once, optimizer state in the adapter directory.
 */
import { AdamW, add, backward, tidy, type Parameter } from '@keel/autograd';
import { answerLoss, trainStep, type MultimodalModel, type StepHooks, type TrainingBatch } from '@keel/mllm';
import { decodeAdapterState, encodeAdapter, readAdapterConfig, type AdapterFiles, type EncodeAdapterOptions } from './adapter-files.js';
import { registerBuiltinStrategies } from './builtin.js';
import { getStrategy } from './registry.js';
import type { RunningState, StrategyContext, StrategyDefinition, StrategyInstance, TuningOptimizerOptions } from './strategy.js';

export type { TuningOptimizerOptions } from './strategy.js';

/** A method's name plus its config fields, as a user or a config file gives them. */
export interface TuningConfigInput {
  strategy: string;
  [field: string]: unknown;
}

export interface TuningHandle<C = unknown> {
  readonly strategy: string;
  readonly definition: StrategyDefinition<C>;
  /** The validated config, defaults filled. */
  readonly config: C;
  readonly model: MultimodalModel;
  /** Pass to trainStep: the method's hooks plus zeroing of gradients the model does not own. */
  readonly hooks: StepHooks;
  trainableParameters(): Map<string, Parameter>;
  numTrainable(): number;
  /** 100 · trainable / (base parameters + added parameters), as PEFT prints it. */
  trainablePercent(): number;
  extraStateBytes(): number;
  /** Masked methods: share of each trainable tensor's entries allowed to move (strategy.ts); null for the others. */
  maskDensity(): Promise<Map<string, number>> | null;
  /** AdamW over the trainable tensors (re-freezes every other base parameter). Disposed with the handle. */
  optimizer(options: TuningOptimizerOptions): AdamW;
  /**
   * Settles when the method's asynchronous initialization has written its tensors (PiSSA reads the
   * base weights back for their SVD); at once for every other method. trainStep waits for it.
   */
  ready(): Promise<void>;
  /** One step on `batch`: answer loss (+ the method's extra loss), backward, hooks, update. Returns the loss. */
  trainStep(optimizer: AdamW, batch: TrainingBatch): Promise<number>;
  merge(): void;
  /** Post-hoc methods: applies the method's after-training transform (no-op for the others); once. */
  finalize(): void;
  /** Whether finalize() has run (or the method has nothing to finalize). */
  readonly finalized: boolean;
  enable(): void;
  disable(): void;
  /** The method's running state for a resumable checkpoint (StrategyInstance.runningState); empty when it has none. */
  runningState(): Promise<RunningState>;
  loadRunningState(state: ReadonlyMap<string, Float32Array | Uint32Array>): void;
  /** The adapter directory's contents (browser-safe). */
  toFiles(options?: EncodeAdapterOptions): Promise<AdapterFiles>;
  /** Loads state from adapter files written for this strategy (and a compatible config). */
  loadFiles(files: AdapterFiles, source?: string): void;
  save(dir: string, options?: EncodeAdapterOptions): Promise<void>;
  load(dir: string): Promise<void>;
  /** Uninstalls the method and restores every parameter's requiresGrad as it was before. */
  dispose(): void;
}

/** Validates `raw` with the method's schema; the error lists every bad field by path. */
export function parseStrategyConfig<C>(def: StrategyDefinition<C>, raw: Record<string, unknown>): C {
  const r = def.schema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(config)'}: ${i.message}`);
  throw new Error(`${def.name} config is invalid: ${lines.join('; ')}`);
}

function splitInput(input: TuningConfigInput): { name: string; raw: Record<string, unknown> } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error(`applyTuning: expected a config object { strategy, … }, got ${JSON.stringify(input)}`);
  const { strategy, ...raw } = input;
  if (typeof strategy !== 'string') throw new Error(`applyTuning: config.strategy must be a strategy name, got ${JSON.stringify(strategy)}`);
  return { name: strategy, raw };
}

/** Installs a method on `model` (see the file comment). */
export function applyTuning(model: MultimodalModel, input: TuningConfigInput, context: StrategyContext = {}): TuningHandle {
  registerBuiltinStrategies();
  const { name, raw } = splitInput(input);
  const def = getStrategy(name);
  const config = parseStrategyConfig(def, raw);
  const instance = def.apply(model, config, context);
  return makeHandle(model, def, config, instance);
}

function makeHandle<C>(model: MultimodalModel, def: StrategyDefinition<C>, config: C, instance: StrategyInstance): TuningHandle<C> {
  const base = model.namedParameters();
  const baseSet = new Set<Parameter>(base.values());
  const priorFlags = new Map([...base.values()].map((p) => [p, p.requiresGrad]));
  const trainableSet = new Set<Parameter>(instance.trainable.values());
  const added = [...instance.trainable.values()].filter((p) => !baseSet.has(p));
  const freeze = () => {
    for (const p of base.values()) {
      p.requiresGrad = trainableSet.has(p);
      if (!p.requiresGrad) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  };
  freeze();
  const optimizers: AdamW[] = [];
  let disposed = false;
  let finalized = false;
  const alive = (what: string) => {
    if (disposed) throw new Error(`TuningHandle(${def.name}).${what}: the handle was disposed`);
  };
  const hooks: StepHooks = {
    beforeOptimizerStep: () => instance.hooks?.beforeOptimizerStep?.(),
    afterOptimizerStep: () => {
      instance.hooks?.afterOptimizerStep?.();
      // the model's zeroGrad only reaches its own parameters
      for (const p of added) {
        p.grad?.dispose();
        p.grad = null;
      }
    },
  };
  // an instance whose init reads the GPU back (PiSSA) exposes `ready`; until it settles it refuses optimizer steps
  const initialized = instance.ready ?? Promise.resolve();
  const numTrainable = () => [...instance.trainable.values()].reduce((s, p) => s + p.size, 0);
  const source = (dir: string) => `${dir}/adapter_model.safetensors`;
  const handle: TuningHandle<C> = {
    strategy: def.name,
    definition: def,
    config,
    model,
    hooks,
    trainableParameters: () => new Map(instance.trainable),
    numTrainable,
    trainablePercent: () => {
      const all = model.numParameters() + added.reduce((s, p) => s + p.size, 0);
      return all === 0 ? 0 : (100 * numTrainable()) / all;
    },
    extraStateBytes: () => instance.extraStateBytes(),
    maskDensity: () => instance.maskDensity?.() ?? null,
    optimizer(options) {
      alive('optimizer');
      if (instance.trainable.size === 0) throw new Error(`TuningHandle(${def.name}).optimizer: the method has no trainable tensors`);
      freeze();
      const params = [...instance.trainable.values()];
      const opt = instance.createOptimizer?.(params, options) ?? new AdamW(model.rt, params, options);
      optimizers.push(opt);
      return opt;
    },
    ready: () => initialized,
    async trainStep(optimizer, batch) {
      alive('trainStep');
      await initialized;
      if (!instance.extraLoss) return trainStep(model, optimizer, batch, hooks);
      const loss = tidy(() => {
        const extra = instance.extraLoss!();
        const l = extra ? add(answerLoss(model, batch), extra) : answerLoss(model, batch);
        backward(l);
        return l;
      });
      try {
        hooks.beforeOptimizerStep!();
        optimizer.step();
        hooks.afterOptimizerStep!();
        model.zeroGrad();
        return await loss.item();
      } finally {
        loss.dispose();
      }
    },
    merge() {
      alive('merge');
      if (!def.mergeable) throw new Error(`${def.name} cannot be merged: it changes the model's architecture, not only its weights`);
      instance.merge();
    },
    finalize() {
      alive('finalize');
      if (!instance.finalize) return;
      if (finalized) throw new Error(`TuningHandle(${def.name}).finalize: already finalized (the post-hoc transform runs once)`);
      finalized = true;
      instance.finalize?.();
    },
    get finalized() {
      return finalized || !instance.finalize;
    },
    enable: () => (alive('enable'), instance.setEnabled(true)),
    disable: () => (alive('disable'), instance.setEnabled(false)),
    async runningState() {
      alive('runningState');
      return (await instance.runningState?.()) ?? new Map();
    },
    loadRunningState(state) {
      alive('loadRunningState');
      if (instance.loadRunningState) instance.loadRunningState(state);
      else if (state.size > 0) throw new Error(`TuningHandle(${def.name}).loadRunningState: the method keeps no running state, got [${[...state.keys()]}]`);
    },
    async toFiles(options = {}) {
      alive('toFiles');
      return encodeAdapter(def, config, instance.modules, await instance.state(), options);
    },
    loadFiles(files, where = 'adapter') {
      alive('loadFiles');
      const saved = readAdapterConfig(files.configJson, `${where}/adapter_config.json`);
      if (saved.strategy !== def.name) throw new Error(`${where}: the adapter was saved by strategy '${saved.strategy}', this handle is '${def.name}'`);
      instance.loadState(decodeAdapterState(def, files.safetensors, source(where)));
    },
    async save(dir, options = {}) {
      const files = await handle.toFiles(options);
      const { writeAdapterFiles } = await import('./adapter-files.node.js');
      await writeAdapterFiles(dir, files);
    },
    async load(dir) {
      const { readAdapterFiles } = await import('./adapter-files.node.js');
      handle.loadFiles(await readAdapterFiles(dir), dir);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const o of optimizers) o.dispose();
      instance.remove();
      for (const [p, flag] of priorFlags) p.requiresGrad = flag;
    },
  };
  return handle;
}

/** Applies the strategy and config recorded in adapter files to `model` and loads their state. */
export function loadTuningFromFiles(model: MultimodalModel, files: AdapterFiles, where = 'adapter', context: StrategyContext = {}): TuningHandle {
  const saved = readAdapterConfig(files.configJson, `${where}/adapter_config.json`);
  const handle = applyTuning(model, { ...saved.config, strategy: saved.strategy }, context);
  try {
    handle.loadFiles(files, where);
  } catch (e) {
    handle.dispose();
    throw e;
  }
  return handle;
}

/** `loadTuningFromFiles` on a directory written by `handle.save(dir)` (Node). */
export async function loadTuning(model: MultimodalModel, dir: string, context: StrategyContext = {}): Promise<TuningHandle> {
  const { readAdapterFiles } = await import('./adapter-files.node.js');
  return loadTuningFromFiles(model, await readAdapterFiles(dir), dir, context);
}
