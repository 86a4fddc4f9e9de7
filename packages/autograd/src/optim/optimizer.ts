/**
 * The optimizer base: parameters packed into flat arenas (segments.ts layout), one fused
 * multi-tensor dispatch per step, no GPU→CPU readback per step.
 *
 * Layout and per-step cost. The optimizer owns the arenas params (N,), grads (N,) and its state slots
 * (m, v or the momentum buffer, each (N,)); tensor t sits at offsets[t] (256-byte aligned). Each
 * Parameter keeps its own buffer as the canonical value, so ops bind parameters as usual and a
 * `loadStateDict` into the module between steps is seen by the next step. A step records, all in the
 * runtime's command encoder (GPU-side DMA copies, no sync):
 *   1. grads → grad arena (one copy per tensor; a zero copy for a tensor without a gradient),
 *   2. params → param arena (one copy per tensor),
 *   3. optionally the global gradient norm / clip record (2 small dispatches),
 *   4. the fused update (1 dispatch; its ctl buffer is assembled by 3 more copies),
 *   5. param arena → params (one copy per tensor).
 * The copies add 3N floats of traffic to the update's own ~7N (AdamW reads W, g, m, v and writes W,
 * m, v): simple and robust, and cheap next to the forward/backward.
 *
 * Semantics:
 * - A parameter that requires gradients but has none this step is updated with a zero gradient (its
 *   moments decay, AdamW still applies weight decay) — unlike PyTorch, which skips it.
 * - A parameter with `requiresGrad === false` (frozen) gets lr 0 this step: its value is unchanged
 *   bit for bit (W − 0·u); its state slots see a zero gradient.
 * - Hyper-parameters: (lr · schedule(s), weightDecay) per tensor in a (T, 2) GPU buffer, rewritten
 *   with one small queue write only when a value changes (schedules, edited group lr).
 * - Clipping: with `maxNorm` (or `trackGradNorm`) the step computes the global norm on the GPU and
 *   the kernel scales by min(1, maxNorm/(‖g‖ + 1e-6)); a non-finite norm makes the GPU skip the step
 *   (weights and state unchanged) while the host step counter still advances (it cannot know
 *   without a readback). `lastGradNorm()` / `lastStepSkipped()` read the record on demand.
 *
 * Non-goals: sparse gradients, fp16 state, closures (loss re-evaluation).
 * Dimensions: N arena elements (padding included), T parameter tensors.
 */
import {
  GRAD_NORM_RECORD,
  createSegmentTable,
  fill,
  gradNormSquared,
  releaseSegments,
  type GpuBuffer,
  type Runtime,
  type SegmentTable,
} from '@keel/kernels';
import { Module, matchesName, type NamePattern } from '../module.js';
import type { Tensor } from '../tensor.js';
import type { Schedule } from './schedule.js';

export interface ParamGroup {
  params: Iterable<Tensor>;
  /** Overrides the optimizer's lr for this group. */
  lr?: number;
  /** Overrides the optimizer's weight decay for this group. */
  weightDecay?: number;
}

export type ParamsInput = Module | Iterable<Tensor> | readonly ParamGroup[];

export interface OptimizerOptions {
  lr: number;
  weightDecay?: number;
  /** Clip the global gradient norm to this value. */
  maxNorm?: number;
  /** Compute the gradient norm every step even without clipping (for `lastGradNorm()`). */
  trackGradNorm?: boolean;
  /** lr multiplier per step (see schedule.ts); default constant 1. */
  schedule?: Schedule;
  /** Chunk size of the multi-tensor dispatch (elements per workgroup; default 4096). */
  chunkSize?: number;
}

/** A group as the optimizer holds it: lr and weightDecay may be edited between steps. */
export interface Group {
  lr: number;
  weightDecay: number;
  readonly params: readonly Tensor[];
}

/** Everything needed to resume: arenas read back to the CPU (padding included). */
export interface OptimizerState {
  kind: string;
  step: number;
  lengths: number[];
  groups: { lr: number; weightDecay: number }[];
  slots: Record<string, Float32Array>;
  /** Extra subclass state (e.g. masks). */
  extra?: Record<string, Float32Array | Uint32Array | string>;
}

export interface GroupRule {
  /** Parameters whose dotted name matches (module.ts glob rules; first matching rule wins). */
  match: NamePattern | readonly NamePattern[];
  lr?: number;
  weightDecay?: number;
}

/**
 * Splits a module's parameters into groups by name (e.g. no weight decay for biases and norms:
 * `[{ match: ['**.bias', '**.norm*'], weightDecay: 0 }]`). Parameters no rule matches form a last
 * group with the optimizer's defaults; empty groups are dropped.
 */
export function groupParameters(module: Module, rules: readonly GroupRule[]): ParamGroup[] {
  const buckets: Tensor[][] = [...rules.map(() => []), []];
  for (const [name, p] of module.namedParameters()) {
    const r = rules.findIndex((rule) => (Array.isArray(rule.match) ? (rule.match as readonly NamePattern[]) : [rule.match as NamePattern]).some((m) => matchesName(m, name)));
    buckets[r < 0 ? rules.length : r]!.push(p);
  }
  const groups: ParamGroup[] = rules.map((rule, i) => ({
    params: buckets[i]!,
    ...(rule.lr !== undefined ? { lr: rule.lr } : {}),
    ...(rule.weightDecay !== undefined ? { weightDecay: rule.weightDecay } : {}),
  }));
  groups.push({ params: buckets[rules.length]! });
  return groups.filter((g) => (g.params as Tensor[]).length > 0);
}

function isGroupList(p: ParamsInput): p is readonly ParamGroup[] {
  return Array.isArray(p) && p.length > 0 && typeof p[0] === 'object' && p[0] !== null && 'params' in p[0] && !('storage' in p[0]);
}

export abstract class Optimizer {
  readonly groups: Group[];
  /** Every parameter, in arena order. */
  readonly params: readonly Tensor[];
  readonly table: SegmentTable;
  schedule: Schedule | undefined;
  readonly maxNorm: number | undefined;
  protected readonly paramArena: GpuBuffer;
  protected readonly gradArena: GpuBuffer;
  protected readonly slots = new Map<string, GpuBuffer>();
  protected readonly hyper: GpuBuffer;
  protected stepCount = 0;
  private readonly groupOf: number[] = [];
  private hyperHost: Float32Array | null = null;
  private record: GpuBuffer | null = null;
  private zeros: GpuBuffer | null = null;
  private readonly gradZeroed: boolean[];
  private readonly trackNorm: boolean;
  private disposed = false;

  constructor(
    readonly rt: Runtime,
    params: ParamsInput,
    options: OptimizerOptions,
    slotNames: readonly string[],
  ) {
    const name = this.constructor.name;
    const defaults = { lr: options.lr, weightDecay: options.weightDecay ?? 0 };
    const list: ParamGroup[] = params instanceof Module ? [{ params: params.parameters() }] : isGroupList(params) ? [...params] : [{ params: params as Iterable<Tensor> }];
    const seen = new Set<Tensor>();
    this.groups = list.map((g, gi) => {
      const ps = [...g.params];
      for (const p of ps) {
        if (seen.has(p)) throw new Error(`${name}: ${p} appears twice (parameter groups must not overlap)`);
        if (p.dtype !== 'f32' || p.isDisposed) throw new Error(`${name}: parameters must be live f32 tensors, got ${p}`);
        if (p.rt !== rt) throw new Error(`${name}: ${p} lives on another runtime`);
        seen.add(p);
        this.groupOf.push(gi);
      }
      const group = { lr: g.lr ?? defaults.lr, weightDecay: g.weightDecay ?? defaults.weightDecay, params: ps };
      this.checkHyper(group.lr, group.weightDecay);
      return group;
    });
    this.params = this.groups.flatMap((g) => g.params);
    if (options.maxNorm !== undefined && !(options.maxNorm > 0 && Number.isFinite(options.maxNorm))) {
      throw new Error(`${name}: maxNorm must be a positive finite number, got ${options.maxNorm}`);
    }
    this.maxNorm = options.maxNorm;
    this.trackNorm = options.trackGradNorm ?? false;
    this.schedule = options.schedule;
    this.table = createSegmentTable(rt, this.params.map((p) => p.size), options.chunkSize);
    const bytes = this.table.arenaLength * 4;
    this.paramArena = rt.createBuffer(bytes);
    this.gradArena = rt.createBuffer(bytes);
    for (const s of slotNames) this.slots.set(s, this.zeroed(bytes));
    this.hyper = rt.createBuffer(Math.max(1, this.params.length) * 8);
    this.gradZeroed = this.params.map(() => false);
  }

  private checkHyper(lr: number, wd: number): void {
    if (!(lr >= 0 && Number.isFinite(lr))) throw new Error(`${this.constructor.name}: lr must be finite and ≥ 0, got ${lr}`);
    if (!(wd >= 0 && Number.isFinite(wd))) throw new Error(`${this.constructor.name}: weightDecay must be finite and ≥ 0, got ${wd}`);
  }

  /** A buffer of `bytes` filled with `value` (pooled buffers start undefined). */
  protected zeroed(bytes: number, value = 0): GpuBuffer {
    const b = this.rt.createBuffer(bytes);
    if (bytes > 0) fill(this.rt, b, value, bytes / 4);
    return b;
  }

  /** Steps completed. */
  get steps(): number {
    return this.stepCount;
  }

  /** The lr the next step uses for group `g` (schedule applied). */
  currentLr(g = 0): number {
    const group = this.groups[g];
    if (!group) throw new Error(`${this.constructor.name}.currentLr: no group ${g} (${this.groups.length} groups)`);
    return group.lr * (this.schedule ? this.schedule(this.stepCount) : 1);
  }

  /** Records one update of every parameter (no readback). */
  step(): void {
    this.assertLive();
    const t = this.stepCount + 1;
    this.writeHyper();
    this.gather(true);
    let clip: GpuBuffer | undefined;
    if (this.maxNorm !== undefined || this.trackNorm) {
      if (this.record) this.rt.release(this.record);
      this.record = gradNormSquared(this.rt, this.gradArena, this.table, this.maxNorm !== undefined ? { maxNorm: this.maxNorm } : {});
      clip = this.record;
    }
    this.update(t, clip);
    this.scatter();
    this.stepCount = t;
  }

  /** The fused update of step `t` (1-based) over the arenas. */
  protected abstract update(t: number, clip: GpuBuffer | undefined): void;

  /** Drops the gradients of every parameter. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** ‖g‖₂ (before clipping) of the last step; reads the GPU record (waits for the GPU). */
  async lastGradNorm(): Promise<number> {
    return (await this.readRecord('lastGradNorm'))[GRAD_NORM_RECORD.norm]!;
  }

  /** Whether the GPU skipped the last step (non-finite gradient norm); waits for the GPU. */
  async lastStepSkipped(): Promise<boolean> {
    return (await this.readRecord('lastStepSkipped'))[GRAD_NORM_RECORD.skip]! !== 0;
  }

  private async readRecord(what: string): Promise<Float32Array> {
    if (!this.record) {
      throw new Error(`${this.constructor.name}.${what}: no gradient norm was computed (set maxNorm or trackGradNorm, then call step())`);
    }
    return this.rt.readF32(this.record);
  }

  private writeHyper(): void {
    const mult = this.schedule ? this.schedule(this.stepCount) : 1;
    if (!(mult >= 0 && Number.isFinite(mult))) throw new Error(`${this.constructor.name}: schedule(${this.stepCount}) = ${mult}, expected a finite value ≥ 0`);
    const h = new Float32Array(Math.max(1, this.params.length) * 2);
    this.params.forEach((p, i) => {
      const g = this.groups[this.groupOf[i]!]!;
      this.checkHyper(g.lr, g.weightDecay);
      h[2 * i] = p.requiresGrad ? g.lr * mult : 0;
      h[2 * i + 1] = g.weightDecay;
    });
    const prev = this.hyperHost;
    if (prev && prev.every((v, i) => v === h[i])) return;
    this.rt.write(this.hyper, h);
    this.hyperHost = h;
  }

  /** Copies the parameters (and with `grads` the gradients, zeros where none) into the arenas. */
  protected gather(grads: boolean): void {
    const { rt, table } = this;
    this.params.forEach((p, i) => {
      if (p.isDisposed) throw new Error(`${this.constructor.name}.step: parameter ${i} (${p}) was disposed`);
      const off = table.offsets[i]! * 4;
      const bytes = p.size * 4;
      rt.copy(p.buffer, this.paramArena, bytes, 0, off);
      if (!grads) return;
      const g = p.grad;
      if (g && !g.isDisposed) {
        if (g.size !== p.size) throw new Error(`${this.constructor.name}.step: gradient [${g.shape}] does not match parameter [${p.shape}]`);
        rt.copy(g.buffer, this.gradArena, bytes, 0, off);
        this.gradZeroed[i] = false;
      } else if (!this.gradZeroed[i]) {
        rt.copy(this.zeroSource(), this.gradArena, bytes, 0, off);
        this.gradZeroed[i] = true;
      }
    });
  }

  private zeroSource(): GpuBuffer {
    this.zeros ??= this.zeroed(Math.max(4, ...this.params.map((p) => p.size * 4)));
    return this.zeros;
  }

  private scatter(): void {
    this.params.forEach((p, i) => this.rt.copy(this.paramArena, p.buffer, p.size * 4, this.table.offsets[i]! * 4, 0));
  }

  /** Step count, hyper-parameters and every state arena, read back (async: waits for the GPU). */
  async stateDict(): Promise<OptimizerState> {
    this.assertLive();
    const slots: Record<string, Float32Array> = {};
    for (const [name, buf] of this.slots) slots[name] = buf.size > 0 ? await this.rt.readF32(buf) : new Float32Array(0);
    const extra = await this.extraState();
    return {
      kind: this.constructor.name,
      step: this.stepCount,
      lengths: this.params.map((p) => p.size),
      groups: this.groups.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay })),
      slots,
      ...(extra ? { extra } : {}),
    };
  }

  /** Restores a `stateDict()` taken from an optimizer of the same kind over same-sized parameters. */
  loadStateDict(state: OptimizerState): void {
    this.assertLive();
    const name = this.constructor.name;
    if (state.kind !== name) throw new Error(`${name}.loadStateDict: state is from a ${state.kind}`);
    const lengths = this.params.map((p) => p.size);
    if (state.lengths.join() !== lengths.join()) {
      throw new Error(`${name}.loadStateDict: parameter sizes differ (state [${state.lengths}], optimizer [${lengths}])`);
    }
    if (state.groups.length !== this.groups.length) throw new Error(`${name}.loadStateDict: state has ${state.groups.length} groups, optimizer ${this.groups.length}`);
    for (const [slot, buf] of this.slots) {
      const data = state.slots[slot];
      if (!data || data.length * 4 !== buf.size) throw new Error(`${name}.loadStateDict: slot '${slot}' has ${data?.length ?? 0} values, expected ${buf.size / 4}`);
    }
    for (const [slot, buf] of this.slots) this.rt.write(buf, state.slots[slot]!);
    state.groups.forEach((g, i) => Object.assign(this.groups[i]!, { lr: g.lr, weightDecay: g.weightDecay }));
    this.loadExtraState(state.extra);
    this.stepCount = state.step;
    this.hyperHost = null;
  }

  protected async extraState(): Promise<OptimizerState['extra']> {
    return undefined;
  }

  protected loadExtraState(_extra: OptimizerState['extra']): void {}

  protected assertLive(): void {
    if (this.disposed) throw new Error(`${this.constructor.name}: the optimizer was disposed`);
  }

  /** Releases the arenas and tables (parameters are untouched). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const { rt } = this;
    for (const b of [this.paramArena, this.gradArena, this.hyper, ...this.slots.values(), this.record, this.zeros]) if (b) rt.release(b);
    this.record = null;
    this.zeros = null;
    releaseSegments(rt, this.table);
  }
}
