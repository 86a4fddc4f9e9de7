/**
 * What a tuning method is, as types. A `StrategyDefinition` is the registered, static part (name,
 * paradigm, config schema, whether it merges); `apply(model, config)` installs it on one model and
 * returns a `StrategyInstance`, the live part (its trainable tensors, step hooks, merge, on/off, the
 * tensors a save writes). apply.ts wraps an instance in the user-facing TuningHandle; a method never
 * talks to files, optimizers or freezing itself.
 *
 * Paradigms (the survey's three):
 *   selective           trains a subset of the base parameters in place (full, BitFit, SPIDER …)
 *   additive            adds new modules or tokens; the base is untouched (adapters, prompts …)
 *   reparameterization  re-expresses some base weights through new parameters (LoRA, DoRA …)
 *
 * Several adapters of one method on one model are told apart by their config's `name` (LoRA, DoRA;
 * adapter-set.ts switches between them).
 * Non-goals: optimizer state (the handle's optimizer owns it; a resumable checkpoint saves it beside
 * the method's `state()` and `runningState()`).
 */
import type { AdamW, Parameter, Schedule, Tensor } from '@keel/autograd';
import type { MultimodalModel, StepHooks, TrainingBatch } from '@keel/mllm';
import type { z } from 'zod';

export type Paradigm = 'selective' | 'additive' | 'reparameterization';

/** One tensor of saved state, on the CPU: shape and row-major values. */
export interface TensorState {
  shape: number[];
  data: Float32Array;
}

/** A method's running state by name: f32 values, or u32 words (packed masks). */
export type RunningState = Map<string, Float32Array | Uint32Array>;

/** What the handle's `optimizer()` is given; a method that needs its own optimizer receives the same. */
export interface TuningOptimizerOptions {
  lr: number;
  weightDecay?: number;
  maxNorm?: number;
  schedule?: Schedule;
}

export interface StrategyInstance {
  /**
   * The tensors the optimizer updates, by name: base parameter names for selective methods
   * ('multi_modal_projector.linear_1.weight'), `<module path>.<tensor>` for added ones
   * ('language_model.model.layers.0.self_attn.q_proj.lora_A'). Base parameters not listed here are
   * frozen by applyTuning.
   */
  readonly trainable: ReadonlyMap<string, Parameter>;
  /** The module paths the method attached to (resolved from the config's target patterns). */
  readonly modules: readonly string[];
  /**
   * Settles when init that reads the GPU back (PiSSA's SVD) has written the method's tensors; until
   * then the method computes the base function exactly and refuses optimizer steps.
   */
  readonly ready?: Promise<void>;
  /** Called around the optimizer step (importance accumulation, interpolation towards W0 …). */
  readonly hooks?: StepHooks;
  /**
   * The optimizer over `trainable` when plain AdamW is not enough (SPIDER and the hard-mask family
   * return a MaskedAdamW they keep driving from their hooks). Absent: AdamW. The handle disposes it.
   */
  createOptimizer?(params: readonly Parameter[], options: TuningOptimizerOptions): AdamW;
  /**
   * Post-hoc methods (WiSE-FT, DARE, TIES): transforms the trained weights once, after the last step
   * and before evaluation or saving. Idempotence is not required; the handle calls it at most once.
   */
  finalize?(): void;
  /**
   * Masked methods: the share of each trainable tensor's entries the method lets move at the last
   * step (SPIDER: c > 0; hard masks: set bits; HFT: 1 or 0 per tensor), by trainable name, each in
   * [0, 1]. Reads the GPU. Absent for methods without a mask.
   */
  maskDensity?(): Promise<Map<string, number>>;
  /** A scalar added to the task loss (regularizers such as L2-SP); null when it is zero this step. */
  extraLoss?(): Tensor | null;
  /**
   * Folds the method into the base weights so the model computes the same function without it;
   * afterwards the instance is inert (enable/disable throw, no hook stays installed).
   */
  merge(): void;
  /** Off: the model computes exactly what the base model computes. On: the tuned function. */
  setEnabled(on: boolean): void;
  /** Everything a save writes, by state name (the names `trainable` uses). Reads the GPU. */
  state(): Promise<Map<string, TensorState>>;
  /** Writes saved state back; every name of `state()` must be present with its shape. */
  loadState(state: ReadonlyMap<string, TensorState>): void;
  /**
   * What a resumed run needs beyond the tuned weights (`state()`) and the optimizer's own state:
   * SPIDER's gradient sum S, top-k's score sums and last mask, HFT's current round. Absent when the
   * method's next step depends on nothing else. Reads the GPU.
   */
  runningState?(): Promise<RunningState>;
  /** Restores `runningState()`'s output, taken from an instance of the same config on the same base. */
  loadRunningState?(state: ReadonlyMap<string, Float32Array | Uint32Array>): void;
  /**
   * Bytes the method keeps on the device beyond the base model's own parameters (adapter weights,
   * W0 snapshots, masks); optimizer moments are not counted here.
   */
  extraStateBytes(): number;
  /** Uninstalls hooks and releases the method's tensors. Base values the method wrote stay. */
  remove(): void;
}

/** What the caller knows beyond the model and the config; a method that needs a field and lacks it throws naming it. */
export interface StrategyContext {
  /**
   * Batches of the general (upstream) suite, for methods that estimate importance on the
   * pre-training distribution (EWC's diagonal Fisher).
   */
  generalBatches?: readonly TrainingBatch[];
}

/** How a method's state names map to Hugging Face PEFT's file layout (reparameterization methods). */
export interface PeftLayout<C> {
  /** The PEFT `adapter_config.json` fields for this config; `modules` are the resolved target paths. */
  config(config: C, modules: readonly string[]): Record<string, unknown>;
  /** state name → safetensors key. */
  fileKey(stateName: string): string;
  /** safetensors key → state name, or null when the key is not this method's. */
  stateName(fileKey: string): string | null;
}

export interface StrategyDefinition<C> {
  /** Registry key and the `strategy` field of configs and adapter_config.json. */
  readonly name: string;
  readonly paradigm: Paradigm;
  /** One line for `keel strategies`. */
  readonly description: string;
  /** Validates the config (the `strategy` field removed) and fills its defaults. Strict: unknown fields fail. */
  readonly schema: z.ZodType<C>;
  /** Whether merge() folds the method into plain base weights (false: the method changes the architecture). */
  readonly mergeable: boolean;
  /** Files in PEFT's layout when set; otherwise state names are written as they are. */
  readonly peft?: PeftLayout<C>;
  /** Installs the method on `model`; `config` has passed `schema`. Bad targets throw here. */
  apply(model: MultimodalModel, config: C, context: StrategyContext): StrategyInstance;
}

/**
 * A definition whose config type is erased, for lists of different methods (the built-in table).
 * `apply` takes its config contravariantly, so no concrete C covers them all; configs reaching
 * `apply` have always passed the definition's own schema.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyStrategyDefinition = StrategyDefinition<any>;
