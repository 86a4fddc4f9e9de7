/**
 * SPIDER (Huang et al., "Learn from Downstream and Be Yourself in MLLM Fine-Tuning", ICML 2025):
 * importance-aware weight allocation. Per trainable tensor, with every statistic per tensor:
 *   rank(x) = sigmoid((|x| − mean|x|) / std|x|)                      (all-zero tensor: 0)
 *   O = rank(W0)                       pre-trained importance, computed once at apply
 *   S ← S + g,  G = rank(S)            fine-tuning importance, S the signed running sum of gradients
 *   c = G / (O + G) where G > O, else 0;  c ← min(c / mean(c ≠ 0), 1)
 *   W ← W0 + c ⊙ (W_AdamW − W0)       after the update; c = 0 pins an entry to W0, c = 1 keeps it all
 * Optimizer moments are not masked (spider.md). The paper's LLaVA runs freeze the vision tower and tune
 * the projector and the last decoder layers; here that is a `targets` choice (default: everything).
 *
 * On the device. Everything lives in arenas laid out by one segment table (segments.ts), the same
 * layout MaskedAdamW gives the same tensors (asserted when the optimizer is created):
 *   W0, O, S   (N,)  held from apply to merge/remove — the paper's three extra fp32 tensors
 *   c          (N,)  transient: allocated inside each step, released once the update is recorded
 * Each optimizer step runs, inside MaskedAdamW.step() (its `onGradients` hook): spiderStep on the
 * gathered gradient arena (S update, G, c: five dispatches), then the fused AdamW pass with the blend
 * towards W0 (setSpiderArenas). No readback, no per-tensor dispatch.
 *
 * Which g: the gradient the optimizer applies — clipped, g · min(1, maxNorm / (‖g‖ + 1e-6)), when it
 * clips (maxNorm), as spider.md has it ("after the (clipped) gradient is known"), the raw gradient
 * otherwise. The clip scale changes from step to step, so S differs from the raw sum (the tests check
 * both). spiderStep takes no scale: the scale is applied by one broadcast multiply of the gradient
 * arena, reading the optimizer's clip record on the GPU (an extra N read + write, only when clipping).
 * A step whose gradient norm is not finite is skipped by the AdamW kernel but still adds its NaN/Inf
 * to S (nothing is read back to know): after a NaN gradient S stays NaN for the rest of the run.
 *
 * maskDensity: per tensor, the share of entries with c > 0 at the last step (the entries allowed to
 * move; c = 0 pins to W0), 1 for every tensor before the first step (nothing pinned yet). c is
 * transient, so spiderStep copies its own per-tensor (Σc, #(c > 0)) record into a (T, 2) buffer
 * kept until the next step (no extra pass); maskDensity reads those 2T floats back (the counts are
 * sums of per-chunk integer counts in f32: exact below 2^24 entries a tensor).
 *
 * Also here, shared by the hard-mask family (importance-topk.ts, magnitude-mask.ts):
 * `anchoredInstance`, the selective instance whose W0 snapshot is that arena (one copy of W0 serves
 * disable, the importance kernels and the optimizer), and `appliedGradient`, the clipped gradient.
 *
 * Dimension legend: N arena elements (tensors at 64-element aligned offsets, padding included),
 * T trainable tensors. extraStateBytes counts tensor elements (Σ sizes), not padding.
 * Resuming: an adapter file holds the tuned weights only; a training checkpoint also holds S (the
 * instance's runningState) and the optimizer's state, so a resumed run continues bit for bit.
 *
 * Non-goals: SPIDER on added (non-base) parameters, the allocation on a CPU path, several optimizers
 * stepping one instance (each would add its gradients to the one S).
 */
import { MaskedAdamW, type Parameter, type Tensor } from '@keel/autograd';
import {
  GRAD_NORM_RECORD,
  binaryForward,
  createSegmentTable,
  fill,
  releaseSegments,
  spiderInit,
  spiderStep,
  type GpuBuffer,
  type Runtime,
  type SegmentTable,
} from '@keel/kernels';
import { z } from 'zod';
import { checkState, snapshot } from './selective.js';
import type { RunningState, StrategyDefinition, StrategyInstance, TensorState, TuningOptimizerOptions } from './strategy.js';
import { selectParameters, targetPatterns } from './targets.js';

/** What MaskedAdamW's onGradients hook receives (adamw.ts GradientArenas). */
export type GradientArenas = Parameters<NonNullable<Parameters<MaskedAdamW['onGradients']>[0]>>[0];

/** The selected parameters' pre-trained values in one arena, laid out as MaskedAdamW lays them out. */
export interface Anchor {
  readonly rt: Runtime;
  /** In arena order (the trainable map's order). */
  readonly params: readonly Parameter[];
  readonly table: SegmentTable;
  /** (N,) W0. */
  readonly w0: GpuBuffer;
  /** Σ tensor sizes (one arena's elements without padding). */
  readonly elements: number;
}

/** What a method built on `anchoredInstance` adds to it. */
export interface AnchoredMethod {
  /** (N,) arenas the method keeps besides W0 (counted in extraStateBytes). */
  readonly arenas: number;
  /** Sets up a fresh optimizer whose layout was checked against the anchor (masks, onGradients). */
  attach(opt: MaskedAdamW, options: TuningOptimizerOptions): void;
  /** Per tensor in arena order, the share of entries the mask lets move (StrategyInstance.maskDensity). */
  density(): Promise<readonly number[]>;
  /** Device bytes held besides the arenas (per-tensor counts, a copy of the mask); default 0. */
  smallBytes?(): number;
  /** Frees the method's buffers (merge or remove). */
  release(): void;
  /** StrategyInstance.runningState / loadRunningState, when the method keeps any. */
  runningState?(): Promise<RunningState>;
  loadRunningState?(state: ReadonlyMap<string, Float32Array | Uint32Array>): void;
}

/**
 * Reads the named entry of a running state, checking its kind and length; the error names the method
 * and the entry (a checkpoint of another config or base fails here).
 */
export function runningEntry<A extends Float32Array | Uint32Array>(
  method: string,
  state: ReadonlyMap<string, Float32Array | Uint32Array>,
  name: string,
  ctor: { new (n: number): A; readonly name: string },
  length: number,
): A {
  const a = state.get(name);
  if (!(a instanceof ctor) || a.length !== length) {
    const got = a === undefined ? 'nothing' : `a ${a.constructor.name} of ${a.length} values`;
    throw new Error(`${method}.loadRunningState: '${name}' must be a ${ctor.name} of ${length} values, got ${got} (a checkpoint of another config or base model?)`);
  }
  return a;
}

/** count / n, the share of a tensor's entries; an empty tensor has no entry to move: 0. */
export const share = (count: number, n: number): number => (n === 0 ? 0 : count / n);

/** A zero-filled (N,) arena. */
export function zeroArena(rt: Runtime, table: SegmentTable): GpuBuffer {
  const b = rt.createBuffer(table.arenaLength * 4);
  fill(rt, b, 0, table.arenaLength);
  return b;
}

/**
 * This step's gradient as the optimizer applies it: the arena scaled by the clip record's scale when
 * the optimizer clips (maxNorm), else the raw arena itself. `done()` releases what was allocated.
 */
export function appliedGradient(opt: MaskedAdamW, a: GradientArenas): { g: GpuBuffer; done(): void } {
  if (opt.maxNorm === undefined || !a.clip) return { g: a.grads, done: () => {} };
  const { rt } = opt;
  const n = opt.table.arenaLength;
  const scale = rt.createBuffer(4);
  rt.copy(a.clip, scale, 4, GRAD_NORM_RECORD.scale * 4, 0);
  const g = binaryForward(rt, 'mul', a.grads, scale, { aShape: [n], bShape: [1] }); // (N,) · (1,)
  rt.release(scale);
  return { g, done: () => rt.release(g) };
}

/**
 * A selective instance (see selective.ts) whose W0 is one arena: disable copies W0's ranges back into
 * the parameters, enable restores the stash, merge keeps the tuned values and frees everything.
 * `createOptimizer` returns a MaskedAdamW over the same layout, handed to the method's `attach`.
 */
export function anchoredInstance(method: string, params: ReadonlyMap<string, Parameter>, build: (anchor: Anchor) => AnchoredMethod): StrategyInstance {
  const list = [...params.values()];
  const rt = list[0]!.rt;
  const table = createSegmentTable(rt, list.map((p) => p.size));
  const w0 = rt.createBuffer(table.arenaLength * 4);
  list.forEach((p, i) => rt.copy(p.buffer, w0, p.size * 4, 0, table.offsets[i]! * 4));
  const elements = list.reduce((s, p) => s + p.size, 0);
  let m: AnchoredMethod;
  try {
    m = build({ rt, params: list, table, w0, elements });
  } catch (e) {
    rt.release(w0);
    releaseSegments(rt, table);
    throw e;
  }
  const optimizers: MaskedAdamW[] = [];
  let stash: Map<string, Tensor> | null = null; // tuned values while disabled
  let merged = false;
  const live = (what: string) => {
    if (merged) throw new Error(`${method}.${what}: the method was merged into the base weights; nothing is left to switch`);
  };
  const release = () => {
    for (const o of optimizers) o.onGradients(null);
    optimizers.length = 0;
    m.release();
    rt.release(w0);
    releaseSegments(rt, table);
    for (const t of stash?.values() ?? []) t.dispose();
    stash = null;
  };
  const names = [...params.keys()];
  const restore = (from: ReadonlyMap<string, Tensor>) => list.forEach((p, i) => rt.copy(from.get(names[i]!)!.buffer, p.buffer, p.size * 4));
  return {
    trainable: params,
    modules: [...new Set(names.map((n) => n.slice(0, Math.max(0, n.lastIndexOf('.')))))],
    createOptimizer(ps, options) {
      live('createOptimizer');
      if (ps.length !== list.length || ps.some((p, i) => p !== list[i])) {
        throw new Error(`${method}.createOptimizer: expected the ${list.length} trainable tensors in the instance's order`);
      }
      const opt = new MaskedAdamW(rt, ps, options);
      try {
        if (opt.table.offsets.some((o, i) => o !== table.offsets[i]) || opt.table.arenaLength !== table.arenaLength) {
          throw new Error(`${method}.createOptimizer: the optimizer's arena layout differs from the method's (offsets [${opt.table.offsets}] vs [${table.offsets}])`);
        }
        m.attach(opt, options);
      } catch (e) {
        opt.dispose();
        throw e;
      }
      optimizers.push(opt);
      return opt;
    },
    merge() {
      live('merge');
      if (stash) throw new Error(`${method}.merge: the method is disabled; enable() it first so the tuned values are the ones kept`);
      release();
      merged = true;
    },
    setEnabled(on) {
      live(on ? 'enable' : 'disable');
      if (!on && !stash) {
        stash = new Map([...params].map(([name, p]) => [name, snapshot(p)]));
        list.forEach((p, i) => rt.copy(w0, p.buffer, p.size * 4, table.offsets[i]! * 4, 0));
      } else if (on && stash) {
        restore(stash);
        for (const t of stash.values()) t.dispose();
        stash = null;
      }
    },
    async state() {
      const out = new Map<string, TensorState>();
      for (const [name, p] of params) out.set(name, { shape: [...p.shape], data: (await (stash?.get(name) ?? p).toArray()) as Float32Array });
      return out;
    },
    loadState(state) {
      live('loadState');
      checkState(method, params, state);
      for (const [name, p] of params) if (p.size > 0) rt.write((stash?.get(name) ?? p).buffer, state.get(name)!.data);
    },
    async maskDensity() {
      live('maskDensity');
      const d = await m.density();
      return new Map(names.map((name, i) => [name, d[i]!]));
    },
    ...(m.runningState && {
      runningState: () => (live('runningState'), m.runningState!()),
      loadRunningState: (state: ReadonlyMap<string, Float32Array | Uint32Array>) => (live('loadRunningState'), m.loadRunningState!(state)),
    }),
    extraStateBytes: () => (merged ? 0 : (1 + m.arenas) * 4 * elements + (m.smallBytes?.() ?? 0)) + [...(stash?.values() ?? [])].reduce((s, t) => s + t.size * 4, 0),
    remove() {
      if (merged) return;
      if (stash) restore(stash);
      release();
      merged = true;
    },
  };
}

/** SPIDER's per-tensor state over an arena layout: O = rank(W0) (once) and the running sum S. */
export class SpiderAllocation {
  /** (N,) O = rank(W0). */
  readonly o: GpuBuffer;
  /** (N,) S, the signed sum of every gradient so far. */
  readonly s: GpuBuffer;
  /** (T, 2) per tensor (Σc, #(c > 0)) of the last step's allocation; null before the first. */
  private positive: GpuBuffer | null = null;

  constructor(
    readonly rt: Runtime,
    readonly table: SegmentTable,
    w0: GpuBuffer,
  ) {
    this.o = spiderInit(rt, { w0, table });
    this.s = zeroArena(rt, table);
  }

  /** S ← S + g; returns this step's allocation c (N,) in [0, 1] and records its density. The caller releases c. */
  step(g: GpuBuffer): GpuBuffer {
    const { rt, table } = this;
    const c = rt.createBuffer(table.arenaLength * 4);
    if (table.chunkCount > 0) this.positive ??= rt.createBuffer(Math.max(table.lengths.length, 1) * 8);
    spiderStep(rt, { g, s: this.s, o: this.o, c, table, ...(this.positive ? { sums: this.positive } : {}) });
    return c;
  }

  /** Per tensor, the share of entries with c > 0 at the last step; 1 before any step. One readback of (T, 2). */
  async density(): Promise<number[]> {
    const { lengths } = this.table;
    if (!this.positive) return lengths.map(() => 1);
    const sums = await this.rt.readF32(this.positive); // (Σc, #(c > 0)) per tensor, counts exact in f32 below 2^24
    return lengths.map((n, t) => share(sums[2 * t + 1]!, n));
  }

  /** S, the only state a resumed run needs (O is recomputed from W0; the density record is per step). */
  async runningState(): Promise<RunningState> {
    return new Map([['S', await this.rt.readF32(this.s)]]);
  }

  loadRunningState(state: ReadonlyMap<string, Float32Array | Uint32Array>): void {
    this.rt.write(this.s, runningEntry('spider', state, 'S', Float32Array, this.table.arenaLength));
  }

  /** Device bytes besides O and S: the per-tensor record, once a step ran. */
  get smallBytes(): number {
    return this.positive ? this.positive.size : 0;
  }

  dispose(): void {
    for (const b of [this.o, this.s, this.positive]) if (b) this.rt.release(b);
    this.positive = null;
  }
}

export const spiderConfigSchema = z
  .object({
    /** Parameter or module name globs to tune (as `full`); the paper: projector + last decoder layers. */
    targets: targetPatterns.default(['**']),
  })
  .strict();

export type SpiderConfig = z.infer<typeof spiderConfigSchema>;

export const spiderStrategy: StrategyDefinition<SpiderConfig> = {
  name: 'spider',
  paradigm: 'selective',
  description: 'SPIDER: per-entry allocation c = G/(O+G) of pre-trained vs fine-tuning importance, W ← W0 + c ⊙ (W − W0) after each step',
  schema: spiderConfigSchema,
  mergeable: true,
  apply(model, config) {
    return anchoredInstance('spider', selectParameters(model, config.targets, 'spider'), ({ rt, table, w0 }) => {
      const alloc = new SpiderAllocation(rt, table, w0);
      return {
        arenas: 2, // O, S
        attach(opt) {
          opt.onGradients((arenas) => {
            const g = appliedGradient(opt, arenas);
            const c = alloc.step(g.g);
            g.done();
            opt.setSpiderArenas(w0, c, table);
            return () => {
              opt.clearMask(); // c is this step's only; the next step sets its own
              rt.release(c);
            };
          });
        },
        density: () => alloc.density(),
        smallBytes: () => alloc.smallBytes,
        release: () => alloc.dispose(),
        runningState: () => alloc.runningState(),
        loadRunningState: (state) => alloc.loadRunningState(state),
      };
    });
  },
};
