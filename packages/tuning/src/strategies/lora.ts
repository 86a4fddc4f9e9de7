/**
 * LoRA (Hu et al. 2021) with rsLoRA scaling (Kalajdzievski 2023), as a Linear weight hook:
 *   W' = W + s·B·A,   A (r, I), B (O, r),   s = alpha / r   (rsLoRA: s = alpha / √r)
 * Init as PEFT: A ~ kaiming-uniform(a = √5), i.e. U(−1/√I, 1/√I); B = 0, so W' = W at step 0.
 * `init: 'pissa'` starts from W's principal singular triplets instead (pissa.ts):
 *   W' = W + (s·B·A − s·B₀·A₀),  B = B₀, A = A₀ at step 0.
 * `loraWeight` is the one function that computes W'; the forward hook and merge() both call it, so
 * the merged layer holds exactly the tensor the unmerged forward multiplies by.
 *
 * This file also holds what the low-rank family shares (DoRA, dora.ts, reuses all of it): the config
 * fields, A/B creation and init, the adapter `name` (several named adapters may sit on one Linear,
 * each a hook owned by '<method>:<name>'; adapter-set.ts switches between them), merge / on-off /
 * state, and the PEFT key mapping.
 *
 * Computing W' densely costs O·I·r per step per layer and keeps the forward a single matmul with the
 * effective weight — the right trade for keel's small models (PEFT's x·Aᵀ·Bᵀ side path wins only when
 * the batch's token count is far below O·I / (O + I)).
 *
 * Dimension legend: I input features, O output features, r rank.
 * Non-goals: LoRA dropout (dropout acts on the adapter's input x, which a weight hook never sees, so
 * dropout > 0 is rejected rather than ignored), unmerge, per-module ranks (PEFT's rank_pattern).
 */
import { Linear, Parameter, add, keep, matmul, mul, noGrad, rand, sub, tidy, zeros, type LinearHook, type Tensor } from '@keel/autograd';
import { streamSeed, type MultimodalModel } from '@keel/mllm';
import { z } from 'zod';
import { splitColsNegRight, splitRows, stackColsNegRight, stackRows, startPissaInit } from './pissa.js';
import { checkState } from './selective.js';
import type { PeftLayout, StrategyDefinition, StrategyInstance, TensorState } from './strategy.js';
import { selectLinears, targetPatterns } from './targets.js';

/** The config fields every low-rank method shares (LoRA, DoRA). */
export const lowRankFields = {
  /** Rank r of the update B·A. */
  r: z.number().int('rank r must be an integer').positive('rank r must be > 0').default(8),
  /** Scale numerator: s = alpha / r (alpha / √r with rslora). PEFT's lora_alpha. */
  alpha: z.number().positive('alpha must be > 0').default(8),
  /** Only 0 is accepted (see the file comment); the field exists so PEFT configs map one to one. */
  dropout: z
    .number()
    .min(0, 'dropout must be in [0, 1)')
    .lt(1, 'dropout must be in [0, 1)')
    .default(0)
    .refine((d) => d === 0, 'dropout > 0 is not supported: the LoRA delta is a weight hook (W + s·B·A) and never sees the input that dropout would mask; use 0'),
  /** Module name globs of the Linear layers to adapt. */
  targets: targetPatterns.default(['language_model.**.q_proj', 'language_model.**.v_proj']),
  /** rsLoRA: scale by alpha / √r, which keeps the update's size stable as r grows. */
  rslora: z.boolean().default(false),
  /** Seed of A's initialization (each target draws from its own stream). */
  seed: z.number().int().nonnegative().default(0),
  /** 'default': A random, B = 0 (PEFT's init_lora_weights: true). 'pissa': from W's top-r singular triplets (pissa.ts). */
  init: z.enum(['default', 'pissa'], { error: "init must be 'default' or 'pissa'" }).default('default'),
  /** The adapter's name; adapters of different names may share a Linear (a folder name: letters, digits, '_', '-'). */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, "name must start with a letter or digit and hold only letters, digits, '_' or '-'")
    .default('default'),
};

export const loraConfigSchema = z.object(lowRankFields).strict();

export type LoraConfig = z.infer<typeof loraConfigSchema>;

/** s of the update: alpha / r, or alpha / √r for rsLoRA. */
export const loraScale = (c: Pick<LoraConfig, 'r' | 'alpha' | 'rslora'>): number => (c.rslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r);

/** PiSSA's frozen starting factors: B₀ (O, r), A₀ (r, I). */
export interface LowRankInit {
  a: Tensor;
  b: Tensor;
}

/** ΔW = s·B·A, or s·B·A − s·B₀·A₀ with PiSSA's init (exactly 0 while B = B₀, A = A₀). (O, I). */
export function loraDelta(a: Tensor, b: Tensor, scale: number, init: LowRankInit | null = null): Tensor {
  const d = mul(matmul(b, a), scale);
  return init ? sub(d, mul(matmul(init.b, init.a), scale)) : d;
}

/** W' = W + ΔW: W (O, I), A (r, I), B (O, r) → (O, I). Forward and merge both use exactly this. */
export function loraWeight(w: Tensor, a: Tensor, b: Tensor, scale: number, init: LowRankInit | null = null): Tensor {
  return add(w, loraDelta(a, b, scale, init));
}

/** One adapted Linear. */
export interface LowRankAdapter {
  path: string;
  linear: Linear;
  a: Parameter; // (r, I)
  b: Parameter; // (O, r)
  init: LowRankInit | null;
  /** Further trainable tensors by state-name suffix (DoRA's 'lora_magnitude_vector'). */
  extra: Map<string, Parameter>;
  hook: LinearHook;
}

/** What distinguishes one member of the family: its name and its W'. */
export interface LowRankVariant {
  /** Registry name; error prefix and hook owner '<method>:<adapter name>'. */
  method: string;
  /** The further trainable tensors of a fresh adapter (A, B, init already set), by state-name suffix. */
  extra?(ad: Omit<LowRankAdapter, 'extra' | 'hook'>, scale: number): [string, Parameter][];
  /** W' of one adapter; the forward hook and merge() both call exactly this. */
  weight(ad: LowRankAdapter, w: Tensor, scale: number): Tensor;
}

const param = (t: Tensor): Parameter => {
  const p = new Parameter(t);
  t.dispose();
  return p;
};

function makeAdapter(v: LowRankVariant, path: string, linear: Linear, c: LoraConfig, scale: number, enabled: () => boolean): LowRankAdapter {
  const owner = `${v.method}:${c.name}`;
  if (linear.hooks.some((h) => h.owner === owner)) throw new Error(`${v.method}: '${path}' already carries the ${v.method} adapter '${c.name}'; remove it first or give the new one another name (config field 'name')`);
  const rt = linear.weight.rt;
  const [O, I] = [linear.outFeatures, linear.inFeatures];
  let a: Parameter;
  let init: LowRankInit | null = null;
  if (c.init === 'pissa') {
    if (c.r > Math.min(O, I)) throw new Error(`${v.method}: r = ${c.r} exceeds min(O, I) = ${Math.min(O, I)} of '${path}' (${O}×${I}); init 'pissa' takes r singular triplets of W`);
    // all four stay 0 until startPissaInit writes B = B₀, A = A₀ (pissa.ts)
    a = param(zeros(rt, [c.r, I]));
    init = { a: keep(zeros(rt, [c.r, I])), b: keep(zeros(rt, [O, c.r])) };
  } else {
    const bound = 1 / Math.sqrt(I); // kaiming_uniform(a=√5): gain √(2/6) · √(3/I)
    a = param(rand(rt, [c.r, I], streamSeed(c.seed, path), { low: -bound, high: bound }));
  }
  const b = param(zeros(rt, [O, c.r]));
  const base = { path, linear, a, b, init };
  const extra = new Map(v.extra?.(base, scale) ?? []);
  const ad: LowRankAdapter = { ...base, extra, hook: { owner, weight: (w) => (enabled() ? v.weight(ad, w, scale) : w) } };
  linear.hooks.push(ad.hook);
  return ad;
}

function release(ad: LowRankAdapter): void {
  const i = ad.linear.hooks.indexOf(ad.hook);
  if (i >= 0) ad.linear.hooks.splice(i, 1);
  for (const t of [ad.a, ad.b, ad.init?.a, ad.init?.b, ...ad.extra.values()]) t?.dispose();
}

/** The instance of a low-rank method `v` with config `c` on `model` (LoRA's, and DoRA's with its own W'). */
export function lowRankInstance(model: MultimodalModel, c: LoraConfig, v: LowRankVariant): StrategyInstance & { readonly ready: Promise<void> } {
  const scale = loraScale(c);
  let enabled = true;
  let merged = false;
  let initPending = c.init === 'pissa';
  const adapters: LowRankAdapter[] = [];
  try {
    for (const [path, linear] of selectLinears(model, c.targets, v.method)) adapters.push(makeAdapter(v, path, linear, c, scale, () => enabled));
  } catch (e) {
    adapters.forEach(release);
    throw e;
  }
  const trainable = new Map<string, Parameter>();
  for (const ad of adapters) {
    trainable.set(`${ad.path}.lora_A`, ad.a);
    trainable.set(`${ad.path}.lora_B`, ad.b);
    for (const [suffix, p] of ad.extra) trainable.set(`${ad.path}.${suffix}`, p);
  }
  const ready = initPending
    ? startPissaInit(
        adapters.map((ad) => ({ path: ad.path, weight: ad.linear.weight, a: ad.a, b: ad.b, a0: ad.init!.a, b0: ad.init!.b })),
        c.r,
        scale,
        () => initPending,
      ).finally(() => (initPending = false))
    : Promise.resolve();
  ready.catch(() => {}); // surfaced where it is awaited (trainStep, state)
  // saved shapes: PiSSA saves the rank-2r plain-LoRA form [A ; A₀] (2r, I), [B | −B₀] (O, 2r) (pissa.ts)
  const savedShape = (name: string, p: Parameter): number[] => {
    if (c.init !== 'pissa' || !/\.lora_[AB]$/.test(name)) return [...p.shape];
    const [rows, cols] = p.shape as [number, number];
    return name.endsWith('.lora_A') ? [2 * rows, cols] : [rows, 2 * cols];
  };
  const saved = new Map([...trainable].map(([name, p]) => [name, { shape: savedShape(name, p) }]));
  const live = (what: string) => {
    if (merged) throw new Error(`${v.method}.${what}: the adapter was merged into the base weights; nothing is left to switch`);
  };
  return {
    trainable,
    modules: adapters.map((ad) => ad.path),
    ready,
    hooks: {
      beforeOptimizerStep() {
        if (initPending) throw new Error(`${v.method}: PiSSA's initialization (the SVD of the base weights) has not finished; await handle.ready() before stepping (handle.trainStep does)`);
      },
    },
    merge() {
      live('merge');
      if (!enabled) throw new Error(`${v.method}.merge: the adapter is disabled; enable() it first (merging a disabled adapter would be a silent no-op)`);
      for (const ad of adapters) {
        const weightHooks = ad.linear.hooks.filter((h) => h.weight);
        if (weightHooks[0] !== ad.hook) throw new Error(`${v.method}.merge: '${ad.path}' has another weight hook (${weightHooks[0]?.owner}) before this adapter's; merging would reorder them`);
      }
      initPending = false;
      for (const ad of adapters) {
        tidy(() =>
          noGrad(() => {
            const w = v.weight(ad, ad.linear.weight, scale);
            ad.linear.weight.rt.copy(w.buffer, ad.linear.weight.buffer, w.size * 4);
          }),
        );
        release(ad);
      }
      merged = true;
    },
    setEnabled(on) {
      live(on ? 'enable' : 'disable');
      enabled = on;
    },
    async state() {
      await ready;
      const out = new Map<string, TensorState>();
      for (const ad of adapters) {
        const [a, b] = (await Promise.all([ad.a.toArray(), ad.b.toArray()])) as Float32Array[];
        if (ad.init) {
          const [a0, b0] = (await Promise.all([ad.init.a.toArray(), ad.init.b.toArray()])) as Float32Array[];
          out.set(`${ad.path}.lora_A`, { shape: saved.get(`${ad.path}.lora_A`)!.shape, data: stackRows(a!, a0!) });
          out.set(`${ad.path}.lora_B`, { shape: saved.get(`${ad.path}.lora_B`)!.shape, data: stackColsNegRight(b!, b0!, ad.b.shape[0]!) });
        } else {
          out.set(`${ad.path}.lora_A`, { shape: [...ad.a.shape], data: a! });
          out.set(`${ad.path}.lora_B`, { shape: [...ad.b.shape], data: b! });
        }
        for (const [suffix, p] of ad.extra) out.set(`${ad.path}.${suffix}`, { shape: [...p.shape], data: (await p.toArray()) as Float32Array });
      }
      return out;
    },
    loadState(state) {
      live('loadState');
      checkState(v.method, saved, state);
      initPending = false; // a pending PiSSA init must not overwrite what is loaded here
      const write = (t: Tensor, data: Float32Array) => t.rt.write(t.buffer, data);
      for (const ad of adapters) {
        const a = state.get(`${ad.path}.lora_A`)!.data;
        const b = state.get(`${ad.path}.lora_B`)!.data;
        if (ad.init) {
          const [aT, a0] = splitRows(a);
          const [bT, b0] = splitColsNegRight(b, ad.b.shape[0]!);
          write(ad.a, aT);
          write(ad.init.a, a0);
          write(ad.b, bT);
          write(ad.init.b, b0);
        } else {
          write(ad.a, a);
          write(ad.b, b);
        }
        for (const [suffix, p] of ad.extra) write(p, state.get(`${ad.path}.${suffix}`)!.data);
      }
    },
    extraStateBytes: () => adapters.reduce((s, ad) => s + [ad.a, ad.b, ad.init?.a, ad.init?.b, ...ad.extra.values()].reduce((t, p) => t + (p?.size ?? 0) * 4, 0), 0),
    remove() {
      initPending = false;
      adapters.forEach(release);
      merged = true;
    },
  };
}

const PEFT_PREFIX = 'base_model.model.';

/**
 * PEFT's layout for the family: adapter_config.json fields ('LORA' with `extra` on top, e.g. use_dora)
 * and keys '<path>.lora_A' ⇄ 'base_model.model.<path>.lora_A.weight'; `vectors` are state suffixes
 * PEFT stores without '.weight' (DoRA's lora_magnitude_vector).
 */
export function lowRankPeftLayout(extra: Record<string, unknown> = {}, vectors: readonly string[] = []): PeftLayout<LoraConfig> {
  const isVector = (name: string) => vectors.some((s) => name.endsWith(`.${s}`));
  const matrixKey = /\.lora_[AB]\.weight$/;
  return {
    config: (c, modules) => {
      // PiSSA is saved as the equivalent plain LoRA of rank 2r with the same scale (pissa.ts)
      const pissa = c.init === 'pissa';
      return {
        peft_type: 'LORA',
        task_type: null,
        r: pissa ? 2 * c.r : c.r,
        lora_alpha: pissa ? (c.rslora ? Math.SQRT2 * c.alpha : 2 * c.alpha) : c.alpha,
        lora_dropout: c.dropout,
        target_modules: [...modules],
        use_rslora: c.rslora,
        bias: 'none',
        fan_in_fan_out: false,
        init_lora_weights: true,
        inference_mode: true,
        modules_to_save: null,
        ...extra,
      };
    },
    fileKey: (name) => `${PEFT_PREFIX}${name}${isVector(name) ? '' : '.weight'}`,
    stateName: (key) => {
      if (!key.startsWith(PEFT_PREFIX)) return null;
      if (matrixKey.test(key)) return key.slice(PEFT_PREFIX.length, -'.weight'.length);
      return isVector(key) ? key.slice(PEFT_PREFIX.length) : null;
    },
  };
}

const loraVariant: LowRankVariant = { method: 'lora', weight: (ad, w, scale) => loraWeight(w, ad.a, ad.b, scale, ad.init) };

export const loraStrategy: StrategyDefinition<LoraConfig> = {
  name: 'lora',
  paradigm: 'reparameterization',
  description: 'LoRA: W + (alpha/r)·B·A on the target linears (rank r, rsLoRA scaling, PiSSA init optional); PEFT-compatible files',
  schema: loraConfigSchema,
  mergeable: true,
  peft: lowRankPeftLayout(),
  apply: (model, c) => lowRankInstance(model, c, loraVariant),
};
