/**
 * Posterior (post-hoc) selective methods: the targets train in place exactly as in `full`; then
 * finalize() (the handle calls it once, after the last step) rewrites the trained weights from the
 * task vector δ = W − W0 of each tensor, on the device:
 *   WiSE-FT (Wortsman et al. 2022)  W ← W0 + α·δ                                α ∈ [0, 1], default 0.5
 *   DARE    (Yu et al. 2024)        W ← W0 + m ⊙ δ / (1 − p),  m_i ~ Bernoulli(1 − p)   p ∈ [0, 1), default 0.9
 *   TIES    (Yadav et al. 2023)     W ← W0 + λ·trim_ρ(δ)   (one task vector)       ρ ∈ (0, 1] 0.2, λ > 0 1
 * `tiesMerge` is TIES on several task vectors τ_1 … τ_K of one base (several tuned models), per tensor:
 *   τ̂_k = trim_ρ(τ_k)      keep the ⌈ρ·n⌉ largest |τ_k|, zero the rest
 *   γ   = sgn(Σ_k τ̂_k)     the elected sign of each entry
 *   τ_m = Σ_k [sgn τ̂_k = γ]·τ̂_k / max(1, #{k : sgn τ̂_k = γ})   the disjoint mean (zeros never vote)
 *   W   = W0 + λ·τ_m
 * With one task vector γ = sgn τ̂ and τ_m = τ̂: TIES reduces to trim and scale, and the method uses
 * the very same function. The trim threshold is topkThreshold's exact k-th largest |δ| per tensor;
 * every entry with |δ| ≥ it survives (ties at the threshold included, as the TIES authors' `abs() >=
 * kth value` mask). WiSE-FT's α = 0 is the zero-shot model and α = 1 the fine-tuned one (the paper's
 * mixing coefficient, interpolating weights, not outputs). DARE's rescale by 1/(1 − p) keeps each
 * entry's expected delta; its mask is drawn per tensor from mulberry32 seeded with streamSeed(seed,
 * tensor name), so a seed gives the same mask on any device.
 *
 * Lifecycle: disabled = W0; enabled = the finalized weights; save writes them. finalize() while
 * disabled transforms the stashed tuned values. state() and merge() before finalize() throw (both
 * would keep weights the transform never saw); loadState() marks the instance finalized, because
 * what a post-hoc method saves IS finalized, so finalize() after a load is a no-op instead of
 * applying the transform twice.
 *
 * Legend: δ, τ_k one tensor's task vector (n entries), K task vectors, ρ density, λ scale.
 * Non-goals: training after finalize(), TIES' global (whole-model) trim and majority resolution of
 * exact sign ties (an entry whose trimmed sum is exactly 0 merges to 0), DARE on several models.
 */
import { Tensor, abs, add, div, full, keep, lt, mul, noGrad, seededRandom, sub, tensor, tidy, where, type Parameter } from '@keel/autograd';
import { topkThreshold } from '@keel/kernels';
import { streamSeed } from '@keel/mllm';
import { z } from 'zod';
import { selectiveInstance, selectiveTensors } from './selective.js';
import type { StrategyDefinition, StrategyInstance } from './strategy.js';
import { selectParameters, targetPatterns } from './targets.js';

const targets = targetPatterns.default(['**']);

export const wiseFtConfigSchema = z
  .object({
    /** Mixing coefficient: 0 keeps W0, 1 keeps the fine-tuned weights. */
    alpha: z.number().min(0, 'alpha must be in [0, 1]').max(1, 'alpha must be in [0, 1]').default(0.5),
    targets,
  })
  .strict();
export type WiseFtConfig = z.infer<typeof wiseFtConfigSchema>;

export const dareConfigSchema = z
  .object({
    /** Drop rate of delta entries; survivors are rescaled by 1/(1 − p). */
    p: z.number().min(0, 'p must be in [0, 1)').lt(1, 'p must be in [0, 1)').default(0.9),
    /** Seed of the drop mask (each tensor draws from its own stream). */
    seed: z.number().int('seed must be an integer').nonnegative('seed must be ≥ 0').default(0),
    targets,
  })
  .strict();
export type DareConfig = z.infer<typeof dareConfigSchema>;

const tiesFields = {
  /** Fraction ρ of each tensor's delta entries kept by the trim (largest |δ| first). */
  density: z.number().gt(0, 'density must be in (0, 1]').max(1, 'density must be in (0, 1]').default(0.2),
  /** Scale λ of the merged task vector. */
  lambda: z.number().positive('lambda must be > 0').default(1),
};
export const tiesOptionsSchema = z.object(tiesFields).strict();
export type TiesOptions = z.infer<typeof tiesOptionsSchema>;

export const tiesConfigSchema = z.object({ ...tiesFields, targets }).strict();
export type TiesConfig = z.infer<typeof tiesConfigSchema>;

/** W0 + α·(W − W0), one tensor. */
export function wiseFtWeight(w0: Tensor, w: Tensor, alpha: number): Tensor {
  return add(w0, mul(sub(w, w0), alpha));
}

/** DARE's per-entry factor m_i / (1 − p) of `n` entries (m_i = 0 where u_i < p, u_i ~ U[0, 1) from `seed`). */
export function dareScale(n: number, p: number, seed: number): Float32Array {
  const u = seededRandom(seed);
  const keepScale = 1 / (1 - p);
  return Float32Array.from({ length: n }, () => (u() < p ? 0 : keepScale));
}

/** W0 + δ ⊙ dareScale, δ = W − W0, one tensor; the mask stream is streamSeed(seed, name). */
export function dareWeight(w0: Tensor, w: Tensor, p: number, seed: number, name: string): Tensor {
  const scale = tensor(w.rt, dareScale(w.size, p, streamSeed(seed, name)), w.shape);
  return add(w0, mul(sub(w, w0), scale));
}

/** trim_ρ(δ): δ where |δ| ≥ the ⌈ρ·n⌉-th largest |δ| (topkThreshold), else 0. */
export function tiesTrim(delta: Tensor, density: number): Tensor {
  const rt = delta.rt;
  const { threshold, mask } = topkThreshold(rt, delta.buffer, { fraction: density }, { mode: 'tensor', n: delta.size });
  rt.release(mask);
  const kth = Tensor.fromBuffer(rt, threshold, [1]);
  return where(lt(abs(delta), kth), full(rt, [], 0), delta);
}

/** One tensor of tiesMerge: W0 + λ·τ_m from the task vectors `deltas` (same shape as w0). */
export function tiesWeight(w0: Tensor, deltas: readonly Tensor[], { density, lambda }: TiesOptions): Tensor {
  const trimmed = deltas.map((d) => tiesTrim(d, density));
  const total = trimmed.reduce((a, b) => add(a, b));
  const zero = full(w0.rt, [], 0);
  // [sgn τ̂_k = γ] as 1/0: both positive or both negative (a zero entry never agrees)
  const agree = (t: Tensor) => add(mul(lt(zero, t), lt(zero, total)), mul(lt(t, zero), lt(total, zero)));
  let kept: Tensor | null = null;
  let count: Tensor | null = null;
  for (const t of trimmed) {
    const a = agree(t);
    kept = kept ? add(kept, mul(t, a)) : mul(t, a);
    count = count ? add(count, a) : a;
  }
  const merged = where(lt(count!, full(w0.rt, [], 0.5)), zero, div(kept!, count!)); // disjoint mean; no voter → 0
  return add(w0, mul(merged, lambda));
}

/**
 * TIES-merging of several task vectors on one base (see the file comment): base W0 by name, one map
 * of deltas (W_k − W0, same names and shapes) per tuned model. Returns new tensors W0 + λ·τ_m by name
 * (the caller disposes them); nothing given is modified.
 */
export function tiesMerge(base: ReadonlyMap<string, Tensor>, deltas: readonly ReadonlyMap<string, Tensor>[], options: Partial<TiesOptions> = {}): Map<string, Tensor> {
  const parsed = tiesOptionsSchema.safeParse(options);
  if (!parsed.success) throw new Error(`tiesMerge: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ')}`);
  if (deltas.length === 0) throw new Error('tiesMerge: deltas is empty; give at least one task vector');
  deltas.forEach((d, k) => {
    const problems: string[] = [];
    for (const [name, w0] of base) {
      const t = d.get(name);
      if (!t) problems.push(`missing '${name}'`);
      else if (t.shape.join() !== w0.shape.join()) problems.push(`'${name}' has shape [${t.shape}], the base [${w0.shape}]`);
    }
    for (const name of d.keys()) if (!base.has(name)) problems.push(`'${name}' is not in the base`);
    if (problems.length) throw new Error(`tiesMerge: deltas[${k}] does not fit the base: ${problems.join('; ')}`);
  });
  const out = new Map<string, Tensor>();
  noGrad(() => {
    for (const [name, w0] of base) out.set(name, tidy(() => keep(tiesWeight(w0, deltas.map((d) => d.get(name)!), parsed.data))));
  });
  return out;
}

/** A selective instance whose finalize() replaces each tuned tensor W by transform(name, W0, W). */
function posthocInstance(method: string, params: ReadonlyMap<string, Parameter>, transform: (name: string, w0: Tensor, w: Tensor) => Tensor): StrategyInstance {
  const base = selectiveInstance(method, params);
  const view = selectiveTensors(base);
  let finalized = false;
  const needFinal = (what: string) => {
    if (!finalized) throw new Error(`${method}.${what}: call finalize() first; the post-hoc transform has not been applied to the trained weights yet`);
  };
  return {
    ...base,
    finalize() {
      if (finalized) return; // loaded from a save: the weights already are finalized
      if (view.w0.size === 0) throw new Error(`${method}.finalize: the method was merged or removed; W0 is gone`);
      for (const name of params.keys()) {
        const target = view.tuned(name); // the parameter, or its stash while disabled
        if (target.size === 0) continue;
        noGrad(() =>
          tidy(() => {
            const w = transform(name, view.w0.get(name)!, target);
            target.rt.copy(w.buffer, target.buffer, target.size * 4);
          }),
        );
      }
      finalized = true;
    },
    merge() {
      needFinal('merge');
      base.merge();
    },
    async state() {
      needFinal('state');
      return base.state();
    },
    loadState(state) {
      base.loadState(state);
      finalized = true;
    },
  };
}

export const wiseFtStrategy: StrategyDefinition<WiseFtConfig> = {
  name: 'wise_ft',
  paradigm: 'selective',
  description: 'WiSE-FT: fine-tune `targets`, then W ← W0 + α·(W − W0) (weight-space ensemble of zero-shot and tuned)',
  schema: wiseFtConfigSchema,
  mergeable: true,
  apply(model, c) {
    return posthocInstance('wise_ft', selectParameters(model, c.targets, 'wise_ft'), (_, w0, w) => wiseFtWeight(w0, w, c.alpha));
  },
};

export const dareStrategy: StrategyDefinition<DareConfig> = {
  name: 'dare',
  paradigm: 'selective',
  description: 'DARE: fine-tune `targets`, then drop each delta entry with probability p and rescale the rest by 1/(1 − p)',
  schema: dareConfigSchema,
  mergeable: true,
  apply(model, c) {
    return posthocInstance('dare', selectParameters(model, c.targets, 'dare'), (name, w0, w) => dareWeight(w0, w, c.p, c.seed, name));
  },
};

export const tiesStrategy: StrategyDefinition<TiesConfig> = {
  name: 'ties',
  paradigm: 'selective',
  description: 'TIES: fine-tune `targets`, then keep the top `density` of each delta by magnitude and scale by λ',
  schema: tiesConfigSchema,
  mergeable: true,
  apply(model, c) {
    return posthocInstance('ties', selectParameters(model, c.targets, 'ties'), (_, w0, w) => tiesWeight(w0, [sub(w, w0)], c));
  },
};
