/**
 * LoRA (Hu et al. 2021) with rsLoRA scaling (Kalajdzievski 2023), as a Linear weight hook:
 *   W' = W + s·B·A,   A (r, I), B (O, r),   s = alpha / r   (rsLoRA: s = alpha / √r)
 * Init as PEFT: A ~ kaiming-uniform(a = √5), i.e. U(−1/√I, 1/√I); B = 0, so W' = W at step 0.
 * `loraWeight` is the one function that computes W'; the forward hook and merge() both call it, so
 * the merged layer holds exactly the tensor the unmerged forward multiplies by.
 *
 * Computing W' densely costs O·I·r per step per layer and keeps the forward a single matmul with the
 * effective weight — the right trade for keel's small models (PEFT's x·Aᵀ·Bᵀ side path wins only when
 * the batch's token count is far below O·I / (O + I)).
 *
 * Dimension legend: I input features, O output features, r rank.
 * Non-goals: LoRA dropout (dropout acts on the adapter's input x, which a weight hook never sees, so
 * dropout > 0 is rejected rather than ignored), several named adapters on one model, unmerge.
 */
import { Linear, Parameter, add, matmul, mul, noGrad, rand, tidy, zeros, type LinearHook, type Tensor } from '@keel/autograd';
import { streamSeed } from '@keel/mllm';
import { z } from 'zod';
import { checkState } from './selective.js';
import type { StrategyDefinition, StrategyInstance, TensorState } from './strategy.js';
import { selectLinears, targetPatterns } from './targets.js';

export const loraConfigSchema = z
  .object({
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
  })
  .strict();

export type LoraConfig = z.infer<typeof loraConfigSchema>;

/** s of the update: alpha / r, or alpha / √r for rsLoRA. */
export const loraScale = (c: Pick<LoraConfig, 'r' | 'alpha' | 'rslora'>): number => (c.rslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r);

/** W' = W + s·B·A: W (O, I), A (r, I), B (O, r) → (O, I). Forward and merge both use exactly this. */
export function loraWeight(w: Tensor, a: Tensor, b: Tensor, scale: number): Tensor {
  return add(w, mul(matmul(b, a), scale));
}

interface Adapter {
  path: string;
  linear: Linear;
  a: Parameter; // (r, I)
  b: Parameter; // (O, r)
  hook: LinearHook;
}

const OWNER = 'lora';

function makeAdapter(path: string, linear: Linear, c: LoraConfig, scale: number, enabled: () => boolean): Adapter {
  if (linear.hooks.some((h) => h.owner === OWNER)) throw new Error(`lora: '${path}' already carries a LoRA adapter; remove the first one before applying another`);
  const rt = linear.weight.rt;
  const bound = 1 / Math.sqrt(linear.inFeatures); // kaiming_uniform(a=√5): gain √(2/6) · √(3/I)
  const ta = rand(rt, [c.r, linear.inFeatures], streamSeed(c.seed, path), { low: -bound, high: bound });
  const tb = zeros(rt, [linear.outFeatures, c.r]);
  const a = new Parameter(ta);
  const b = new Parameter(tb);
  ta.dispose();
  tb.dispose();
  const hook: LinearHook = { owner: OWNER, weight: (w) => (enabled() ? loraWeight(w, a, b, scale) : w) };
  linear.hooks.push(hook);
  return { path, linear, a, b, hook };
}

function detach(ad: Adapter): void {
  const i = ad.linear.hooks.indexOf(ad.hook);
  if (i >= 0) ad.linear.hooks.splice(i, 1);
}

function loraInstance(model: Parameters<StrategyDefinition<LoraConfig>['apply']>[0], c: LoraConfig): StrategyInstance {
  const scale = loraScale(c);
  let enabled = true;
  let merged = false;
  const adapters: Adapter[] = [];
  try {
    for (const [path, linear] of selectLinears(model, c.targets, 'lora')) {
      adapters.push(makeAdapter(path, linear, c, scale, () => enabled));
    }
  } catch (e) {
    for (const ad of adapters) {
      detach(ad);
      ad.a.dispose();
      ad.b.dispose();
    }
    throw e;
  }
  const trainable = new Map<string, Parameter>();
  for (const ad of adapters) {
    trainable.set(`${ad.path}.lora_A`, ad.a);
    trainable.set(`${ad.path}.lora_B`, ad.b);
  }
  const live = (what: string) => {
    if (merged) throw new Error(`lora.${what}: the adapter was merged into the base weights; nothing is left to switch`);
  };
  return {
    trainable,
    modules: adapters.map((ad) => ad.path),
    merge() {
      live('merge');
      if (!enabled) throw new Error('lora.merge: the adapter is disabled; enable() it first (merging a disabled adapter would be a silent no-op)');
      for (const ad of adapters) {
        const weightHooks = ad.linear.hooks.filter((h) => h.weight);
        if (weightHooks[0] !== ad.hook) throw new Error(`lora.merge: '${ad.path}' has another weight hook (${weightHooks[0]?.owner}) before LoRA's; merging would reorder them`);
      }
      for (const ad of adapters) {
        tidy(() =>
          noGrad(() => {
            const w = loraWeight(ad.linear.weight, ad.a, ad.b, scale);
            ad.linear.weight.rt.copy(w.buffer, ad.linear.weight.buffer, w.size * 4);
          }),
        );
        detach(ad);
      }
      merged = true;
    },
    setEnabled(on) {
      live(on ? 'enable' : 'disable');
      enabled = on;
    },
    async state() {
      const out = new Map<string, TensorState>();
      for (const [name, p] of trainable) out.set(name, { shape: [...p.shape], data: (await p.toArray()) as Float32Array });
      return out;
    },
    loadState(state) {
      checkState('lora', trainable, state);
      for (const [name, p] of trainable) p.rt.write(p.buffer, state.get(name)!.data);
    },
    extraStateBytes: () => [...trainable.values()].reduce((s, p) => s + p.size * 4, 0),
    remove() {
      for (const ad of adapters) {
        detach(ad);
        ad.a.dispose();
        ad.b.dispose();
      }
      merged = true;
    },
  };
}

const PEFT_PREFIX = 'base_model.model.';

export const loraStrategy: StrategyDefinition<LoraConfig> = {
  name: 'lora',
  paradigm: 'reparameterization',
  description: 'LoRA: W + (alpha/r)·B·A on the target linears (rank r, rsLoRA scaling optional); PEFT-compatible files',
  schema: loraConfigSchema,
  mergeable: true,
  peft: {
    config: (c, modules) => ({
      peft_type: 'LORA',
      task_type: null,
      r: c.r,
      lora_alpha: c.alpha,
      lora_dropout: c.dropout,
      target_modules: [...modules],
      use_rslora: c.rslora,
      bias: 'none',
      fan_in_fan_out: false,
      init_lora_weights: true,
      inference_mode: true,
      modules_to_save: null,
    }),
    // '<path>.lora_A' ⇄ 'base_model.model.<path>.lora_A.weight'
    fileKey: (name) => `${PEFT_PREFIX}${name}.weight`,
    stateName: (key) => (key.startsWith(PEFT_PREFIX) && /\.lora_[AB]\.weight$/.test(key) ? key.slice(PEFT_PREFIX.length, -'.weight'.length) : null),
  },
  apply: loraInstance,
};
