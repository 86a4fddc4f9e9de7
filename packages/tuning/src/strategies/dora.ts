/**
 * DoRA (Liu et al. 2024): weight-decomposed low-rank adaptation. Each output row of the adapted weight
 * is split into a magnitude and a direction; LoRA moves the direction, a trained vector m sets the
 * magnitude:
 *   V  = W + s·B·A                          (lora.ts `loraWeight`; PiSSA's residual form with init 'pissa')
 *   W' = m ⊙ V / ‖V‖_row,   ‖V‖_row[o] = √(Σ_i V[o, i]²)
 * m (O,) starts at ‖W‖_row, so W' = W at step 0. One norm per output feature, as PEFT's
 * DoraLinearLayer computes it: torch.linalg.norm(W + s·B·A, dim=1) of the (out, in) weight, so m has
 * out_features entries; keel's weights are (O, I) too.
 *
 * The norm is a constant in backward: §4.3 of the paper suggests treating the norm of the adapted
 * weight as a constant, detached from the gradient graph (it still follows B·A in the forward), to
 * save the memory its backward would need; PEFT does the same (weight_norm.detach()). So with
 * G = ∂L/∂W' and n = ‖V‖_row:
 *   ∂L/∂m[o] = Σ_i G[o, i]·V[o, i] / n[o]      ∂L/∂V = (m / n) ⊙ G   (then B, A as in LoRA)
 *
 * `doraWeight` is the one function for W': the forward hook and merge() both call it. It is written
 * as V + V ⊙ (m − n) / n (PEFT's (m/n − 1) form): when m equals n bit for bit — a fresh adapter, whose
 * m was computed by the same kernels from the same V — the correction is exactly 0 and the layer is
 * the base layer exactly, independent of how the division rounds.
 *
 * Files: PEFT's LoRA layout plus use_dora: true in adapter_config.json and the magnitude under
 * 'base_model.model.<path>.lora_magnitude_vector' (PEFT saves that key without '.weight').
 *
 * Dimension legend: O output features, I input features, r rank.
 * Non-goals: DoRA on embeddings or convolutions (keel adapts Linear layers), an undetached-norm
 * variant, caching V's norm across steps.
 */
import { Parameter, add, div, mul, noGrad, reshape, sqrt, sub, sum, tidy, type Tensor } from '@keel/autograd';
import { loraConfigSchema, loraWeight, lowRankInstance, lowRankPeftLayout, type LoraConfig, type LowRankInit, type LowRankVariant } from './lora.js';
import type { StrategyDefinition } from './strategy.js';

/** DoRA takes LoRA's fields unchanged (r, alpha, dropout, targets, rslora, seed, init, name). */
export const doraConfigSchema = loraConfigSchema;
export type DoraConfig = LoraConfig;

/** The state-name suffix (and PEFT key suffix) of m. */
export const DORA_MAGNITUDE = 'lora_magnitude_vector';

/** ‖V‖ per row: V (O, I) → (O, 1). */
export function rowNorm(v: Tensor): Tensor {
  return sqrt(sum(mul(v, v), { axis: 1, keepDims: true }));
}

/**
 * W' = m ⊙ V / ‖V‖_row with V = W + s·B·A (or PiSSA's W + s·B·A − s·B₀·A₀) and the norm detached:
 * W (O, I), A (r, I), B (O, r), m (O,) → (O, I).
 */
export function doraWeight(w: Tensor, a: Tensor, b: Tensor, m: Tensor, scale: number, init: LowRankInit | null = null): Tensor {
  const v = loraWeight(w, a, b, scale, init); // (O, I)
  const n = noGrad(() => rowNorm(v)); // (O, 1), a constant for backward
  return add(v, mul(v, div(sub(reshape(m, [m.size, 1]), n), n)));
}

const doraVariant: LowRankVariant = {
  method: 'dora',
  extra(ad, scale) {
    // m₀ = ‖V‖_row of the fresh adapter's V (= W), by the same ops the forward uses
    const m0 = tidy(() => noGrad(() => reshape(rowNorm(loraWeight(ad.linear.weight, ad.a, ad.b, scale, ad.init)), [ad.linear.outFeatures])));
    const m = new Parameter(m0);
    m0.dispose();
    return [[DORA_MAGNITUDE, m]];
  },
  weight: (ad, w, scale) => doraWeight(w, ad.a, ad.b, ad.extra.get(DORA_MAGNITUDE)!, scale, ad.init),
};

export const doraStrategy: StrategyDefinition<DoraConfig> = {
  name: 'dora',
  paradigm: 'reparameterization',
  description: 'DoRA: m ⊙ (W + s·B·A) / ‖W + s·B·A‖ per output row (LoRA direction, trained magnitude m); PEFT-compatible files (use_dora)',
  schema: doraConfigSchema,
  mergeable: true,
  peft: lowRankPeftLayout({ use_dora: true }, [DORA_MAGNITUDE]),
  apply: (model, c) => lowRankInstance(model, c, doraVariant),
};
