/**
 * Regularized selective tuning: the target parameters train in place (as in `full`), and a penalty
 * added to the task loss pulls them back towards their pre-trained values W0.
 *
 *   L2-SP (Li, Grandvalet & Davoine 2018)   L(W) + (λ/2)·Σ_t ‖W_t − W0_t‖²
 *   EWC   (Kirkpatrick et al. 2017)          L(W) + (λ/2)·Σ_t Σ_i F̂_t,i·(W_t,i − W0_t,i)²
 *
 * Gradient of the penalty: λ·(W − W0), resp. λ·F̂ ⊙ (W − W0). It is a scalar on the tape (extraLoss,
 * which the handle adds to the answer loss), so backward accumulates it into the same `.grad` as the
 * task gradient and the optimizer sees one sum. At W = W0 (the first step) the penalty and its
 * gradient are exactly 0. W0 is the selective instance's own snapshot (selective.ts), not a copy.
 *
 * L2-SP's paper names the starting point, not zero, as the reference of the weight decay on the
 * transferred weights; its second term (plain decay of a new head's weights) has no counterpart here:
 * keel's methods add no head.
 *
 * EWC's F̂: the diagonal empirical Fisher of the answer loss on the GENERAL (upstream) suite, at apply
 * time while the model still is W0, entirely on the device:
 *   F_t = Σ_b g_{t,b}²,   g_{t,b} = ∂ answerLoss(batch b) / ∂W_t   (batch-mean gradient, one backward per batch)
 *   F̂_t = F_t / mean(F)   one mean over every target entry of every tensor
 * Dividing by the mean (the 1/B of "mean over batches" cancels in it) makes mean(F̂) = 1: λ is on
 * L2-SP's scale (EWC with a flat Fisher is L2-SP exactly) while tensors keep their relative
 * importance. When every gradient is zero, F̂ = 0 (the mean is guarded) and EWC adds nothing.
 * A batch-mean gradient squared underestimates the per-example empirical Fisher when the batch holds
 * several examples (the square of a mean ≤ the mean of squares); pass one-example batches for the
 * textbook estimate. EWC's paper weighs each parameter by F_i of the previous task; here the previous
 * "task" is the general ability the survey calls open-world stabilization.
 *
 * Legend: t trainable tensor, i entry of a tensor, b general batch (B of them).
 * Non-goals: the true Fisher (sampling labels from the model), per-example gradients, online EWC
 * over a sequence of tasks, penalties while the method is disabled (training then is a non-goal of
 * the selective instance).
 */
import { add, backward, div, full, keep, maximum, mul, noGrad, sub, sum, tidy, zeros, type Parameter, type Tensor } from '@keel/autograd';
import { answerLoss, type MultimodalModel, type TrainingBatch } from '@keel/mllm';
import { z } from 'zod';
import { selectiveInstance, selectiveTensors } from './selective.js';
import type { StrategyDefinition, StrategyInstance } from './strategy.js';
import { selectParameters, targetPatterns } from './targets.js';

const lambdaField = z.number().positive('lambda must be > 0').default(0.01);

export const l2spConfigSchema = z
  .object({
    /** Strength λ of the pull towards W0 (a mild default; tune per task). */
    lambda: lambdaField,
    /** Parameter or module name globs to train; default every parameter. */
    targets: targetPatterns.default(['**']),
  })
  .strict();
export type L2spConfig = z.infer<typeof l2spConfigSchema>;

/** EWC's config is L2-SP's: λ is on the same scale because F̂ has mean 1. */
export const ewcConfigSchema = l2spConfigSchema;
export type EwcConfig = z.infer<typeof ewcConfigSchema>;

/**
 * (λ/2)·Σ_t Σ F_t ⊙ (W_t − W0_t)² as a scalar on the tape (`fisher` absent: F = 1); null when there is
 * no element at all. Its gradient w.r.t. W_t is λ·F_t ⊙ (W_t − W0_t); W0 and F take no gradient.
 *   w, w0, fisher: one tensor per trainable parameter, same shapes pairwise.
 */
export function weightPenalty(w: readonly Tensor[], w0: readonly Tensor[], lambda: number, fisher?: readonly Tensor[]): Tensor | null {
  if (w0.length !== w.length || (fisher && fisher.length !== w.length)) {
    throw new Error(`weightPenalty: ${w.length} weights, ${w0.length} W0 tensors${fisher ? `, ${fisher.length} Fisher tensors` : ''}; they must pair up`);
  }
  let total: Tensor | null = null;
  w.forEach((wt, t) => {
    if (wt.size === 0) return;
    const d = sub(wt, w0[t]!); // W − W0
    const s = sum(fisher ? mul(mul(fisher[t]!, d), d) : mul(d, d));
    total = total ? add(total, s) : s;
  });
  return total ? mul(total, lambda / 2) : null;
}

/**
 * EWC's normalized diagonal Fisher F̂ (see the file comment) of `params` on `batches`, by name; the
 * tensors are kept (dispose them). Other parameters are frozen meanwhile; every requiresGrad flag and
 * any gradient already held is as before on return. The model's weights are not changed.
 */
export function diagonalFisher(model: MultimodalModel, params: ReadonlyMap<string, Parameter>, batches: readonly TrainingBatch[]): Map<string, Tensor> {
  const all = [...model.namedParameters().values()];
  const flags = new Map(all.map((p) => [p, p.requiresGrad]));
  const held = new Map([...params.values()].map((p) => [p, p.grad]));
  const targets = new Set<Parameter>(params.values());
  const acc = new Map([...params].map(([name, p]) => [name, keep(zeros(p.rt, p.shape))]));
  const drop = (p: Parameter) => {
    if (p.grad && p.grad !== held.get(p)) p.grad.dispose();
    p.grad = null;
  };
  try {
    for (const p of all) p.requiresGrad = targets.has(p);
    for (const p of params.values()) p.grad = null;
    for (const batch of batches) {
      tidy(() => backward(answerLoss(model, batch)));
      noGrad(() =>
        tidy(() => {
          for (const [name, p] of params) {
            if (!p.grad) continue; // a target the loss does not reach: F = 0
            const next = keep(add(acc.get(name)!, mul(p.grad, p.grad))); // F_t ← F_t + g²
            acc.get(name)!.dispose();
            acc.set(name, next);
            drop(p);
          }
        }),
      );
    }
    const out = new Map<string, Tensor>();
    noGrad(() =>
      tidy(() => {
        const count = [...params.values()].reduce((s, p) => s + p.size, 0);
        const sums = [...acc.values()].filter((f) => f.size > 0).map((f) => sum(f));
        // mean(F) over every entry, guarded so an all-zero Fisher stays 0 instead of 0/0
        const mean = sums.length ? maximum(mul(sums.reduce((a, b) => add(a, b)), 1 / count), full(model.rt, [], 1e-30)) : null;
        for (const [name, f] of acc) out.set(name, keep(mean ? div(f, mean) : zeros(f.rt, f.shape)));
      }),
    );
    return out;
  } finally {
    for (const f of acc.values()) f.dispose();
    for (const p of params.values()) {
      drop(p);
      p.grad = held.get(p) ?? null;
    }
    for (const [p, flag] of flags) p.requiresGrad = flag;
  }
}

/** A selective instance over `params` whose extraLoss is weightPenalty towards its own W0. */
function penalizedInstance(method: string, params: ReadonlyMap<string, Parameter>, lambda: number, fisher: Map<string, Tensor> | null): StrategyInstance {
  const base = selectiveInstance(method, params);
  const { w0 } = selectiveTensors(base);
  const names = [...params.keys()];
  const release = () => {
    for (const f of fisher?.values() ?? []) f.dispose();
    fisher?.clear();
  };
  return {
    ...base,
    extraLoss() {
      if (w0.size === 0) return null; // merged or removed: W0 is gone and so is the penalty
      return weightPenalty(
        names.map((n) => params.get(n)!),
        names.map((n) => w0.get(n)!),
        lambda,
        fisher ? names.map((n) => fisher.get(n)!) : undefined,
      );
    },
    merge() {
      base.merge();
      release();
    },
    extraStateBytes: () => base.extraStateBytes() + [...(fisher?.values() ?? [])].reduce((s, f) => s + f.size * 4, 0),
    remove() {
      base.remove();
      release();
    },
  };
}

export const l2spStrategy: StrategyDefinition<L2spConfig> = {
  name: 'l2sp',
  paradigm: 'selective',
  description: 'L2-SP: train `targets` in place with (λ/2)·‖W − W0‖², a pull towards the pre-trained weights',
  schema: l2spConfigSchema,
  mergeable: true,
  apply(model, config) {
    return penalizedInstance('l2sp', selectParameters(model, config.targets, 'l2sp'), config.lambda, null);
  },
};

export const ewcStrategy: StrategyDefinition<EwcConfig> = {
  name: 'ewc',
  paradigm: 'selective',
  description: 'EWC: train `targets` in place with (λ/2)·Σ F̂ ⊙ (W − W0)², F̂ the diagonal Fisher on the general suite (mean 1)',
  schema: ewcConfigSchema,
  mergeable: true,
  apply(model, config, context) {
    const batches = context.generalBatches;
    if (!batches || batches.length === 0) {
      throw new Error(
        `ewc: context.generalBatches ${batches ? 'is empty' : 'is missing'}; EWC estimates its Fisher on the general suite — pass applyTuning(model, config, { generalBatches: [...] }) with at least one batch`,
      );
    }
    const params = selectParameters(model, config.targets, 'ewc');
    return penalizedInstance('ewc', params, config.lambda, diagonalFisher(model, params, batches));
  },
};
