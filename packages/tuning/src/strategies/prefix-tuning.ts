/**
 * Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation"):
 * every decoder layer gets n learned key/value pairs placed before the sequence's own, which all its
 * queries attend to; the model stays frozen. In layer i:
 *   K_i = [P_k,i ; k_proj(h)],  V_i = [P_v,i ; v_proj(h)],   P_k,i, P_v,i (Hkv, n, D)
 * The model implements the attention side with HF-PEFT semantics (language.ts, LlamaAttention.prefix:
 * prefix keys unrotated at positions 0..n−1, the text from position n; prefixes enter the KV cache
 * at the first decoding step).
 *
 * All prefixes come from one matrix E (n, L·2·Hkv·D), laid out as PEFT's past_key_values:
 *   E viewed (n, 2L, Hkv, D), permuted to (2L, Hkv, n, D); slice 2i is P_k,i, slice 2i+1 is P_v,i.
 * Without reparameterization E is the trained tensor itself (init N(0, 1), as PEFT's embedding).
 * With `reparameterize` (the paper's stabilization: "P_θ[i,:] = MLP_θ(P'_θ[i,:])" with a smaller P')
 *   E = W₂·tanh(W₁·P' + b₁) + b₂,   P' (n, Hkv·D),  W₁ (h, Hkv·D),  W₂ (L·2·Hkv·D, h)
 * which is PEFT's PrefixEncoder with prefix_projection; P' ~ N(0, 1), W and b as PyTorch's Linear.
 * The prefixes are rebuilt from the parameters at every forward (LanguageModel.prefixSource), so
 * they always reflect the current P' and MLP, and gradients reach them.
 *
 * Files, PEFT's names: without reparameterization the one tensor 'prompt_embeddings' (n, L·2·Hkv·D) —
 * exactly PEFT's prefix-tuning file — and adapter_config peft_type 'PREFIX_TUNING', num_virtual_tokens,
 * token_dim = Hkv·D and num_attention_heads = Hkv (PEFT's grouped-query convention), num_layers.
 * With reparameterization keel saves the encoder itself, under PEFT's module names
 * ('prompt_encoder.embedding.weight', 'prompt_encoder.transform.{0,2}.{weight,bias}'), so training can
 * resume; PEFT's own file for a projected prefix holds only the encoder's output, so it does not load
 * these (PEFT fails on the missing 'prompt_embeddings' rather than misreading them).
 *
 * Dimension legend: n prefix tokens, L decoder layers, Hkv key/value heads, D head dim, h encoder
 * hidden width, W text width.
 * Non-goals: init from real-word activations (the paper's alternative), a prefix in the vision tower,
 * merging (the prefix is extra attention memory, not a weight).
 */
import { Linear, Parameter, narrow, permute, randn, reshape, tanh, type Tensor } from '@keel/autograd';
import { streamSeed, type MultimodalModel } from '@keel/mllm';
import { z } from 'zod';
import { checkState } from './selective.js';
import type { StrategyDefinition, StrategyInstance, TensorState } from './strategy.js';

export const prefixTuningConfigSchema = z
  .object({
    /** Prefix tokens n per layer. */
    tokens: z.number().int('tokens must be an integer').positive('tokens must be > 0').default(8),
    /** Train P' and an MLP producing the prefixes (Li & Liang's reparameterization) instead of the prefixes. */
    reparameterize: z.boolean().default(false),
    /** The MLP's hidden width h (PEFT's encoder_hidden_size); 0 = Hkv·D. Only with reparameterize. */
    encoderHidden: z.number().int('encoderHidden must be an integer').nonnegative('encoderHidden must be ≥ 0').default(0),
    /** Seed of the init. */
    seed: z.number().int('seed must be an integer').nonnegative('seed must be ≥ 0').default(0),
  })
  .strict()
  .refine((c) => c.reparameterize || c.encoderHidden === 0, { path: ['encoderHidden'], message: 'encoderHidden sets the reparameterization MLP; it needs reparameterize: true' });

export type PrefixTuningConfig = z.infer<typeof prefixTuningConfigSchema>;

/** Shapes of the prefix matrix: L layers, Hkv heads, D head dim. */
export interface PrefixDims {
  layers: number;
  kvHeads: number;
  headDim: number;
}

/** E (n, L·2·Hkv·D) → per layer {k, v} (Hkv, n, D), PEFT's past_key_values order (see the file comment). */
export function prefixKV(e: Tensor, d: PrefixDims): { k: Tensor; v: Tensor }[] {
  const n = e.shape[0]!;
  const { layers: L, kvHeads: H, headDim: D } = d;
  const all = permute(reshape(e, [n, 2 * L, H, D]), [1, 2, 0, 3]); // (2L, Hkv, n, D)
  const slice = (j: number) => reshape(narrow(all, 0, j, 1), [H, n, D]);
  return Array.from({ length: L }, (_, i) => ({ k: slice(2 * i), v: slice(2 * i + 1) }));
}

/** The reparameterization's parameters: P' (n, Hkv·D) and the two Linears. */
export interface PrefixEncoder {
  embedding: Parameter;
  transform0: Linear; // Hkv·D → h
  transform2: Linear; // h → L·2·Hkv·D
}

/** E = transform2(tanh(transform0(P'))): (n, L·2·Hkv·D). */
export function encodePrefix(enc: PrefixEncoder): Tensor {
  return enc.transform2.forward(tanh(enc.transform0.forward(enc.embedding)));
}

/** PEFT's prefix-tuning dims for adapter_config, by config object (filled by apply; see `peft.config`). */
const peftDims = new WeakMap<PrefixTuningConfig, { num_layers: number; token_dim: number; num_attention_heads: number; encoder_hidden_size: number }>();

const PEFT_EMBEDDINGS = 'prompt_embeddings';
const ENCODER = 'prompt_encoder.';

function prefixInstance(model: MultimodalModel, c: PrefixTuningConfig): StrategyInstance {
  const lm = model.language_model;
  const t = model.config.text;
  const layers = lm.model.layers.items;
  if (lm.prefixSource || layers.some((l) => l.self_attn.prefix)) throw new Error('prefix: the model already carries attention prefixes; remove them before applying prefix tuning');
  const dims: PrefixDims = { layers: t.layers, kvHeads: t.kvHeads, headDim: t.width / t.heads };
  const tokenDim = dims.kvHeads * dims.headDim;
  const width = 2 * dims.layers * tokenDim;
  const hidden = c.encoderHidden || tokenDim;
  const rt = model.rt;
  const seed = (part: string) => streamSeed('prefix', c.seed, part);
  const fresh = (shape: number[], part: string) => {
    const init = randn(rt, shape, seed(part));
    const p = new Parameter(init);
    init.dispose();
    return p;
  };
  const trainable = new Map<string, Parameter>();
  let build: () => Tensor;
  if (c.reparameterize) {
    const enc: PrefixEncoder = {
      embedding: fresh([c.tokens, tokenDim], 'embedding'),
      transform0: new Linear(rt, tokenDim, hidden, { seed: seed('transform.0') }),
      transform2: new Linear(rt, hidden, width, { seed: seed('transform.2') }),
    };
    trainable.set(`${ENCODER}embedding.weight`, enc.embedding);
    for (const [i, lin] of [[0, enc.transform0], [2, enc.transform2]] as const) {
      for (const [name, p] of lin.namedParameters()) trainable.set(`${ENCODER}transform.${i}.${name}`, p);
    }
    build = () => encodePrefix(enc);
  } else {
    const e = fresh([c.tokens, width], 'prompt_embeddings');
    trainable.set(PEFT_EMBEDDINGS, e);
    build = () => e;
  }
  peftDims.set(c, { num_layers: dims.layers, token_dim: tokenDim, num_attention_heads: dims.kvHeads, encoder_hidden_size: hidden });
  const source = { length: c.tokens, build: () => prefixKV(build(), dims) };
  lm.prefixSource = source;
  let removed = false;
  const live = (what: string) => {
    if (removed) throw new Error(`prefix.${what}: the prefixes were removed`);
  };
  return {
    trainable,
    modules: layers.map((_, i) => `language_model.model.layers.${i}.self_attn`),
    merge() {
      throw new Error('prefix.merge: prefixes cannot be merged (they are extra attention keys and values, not a weight)');
    },
    setEnabled(on) {
      live(on ? 'enable' : 'disable');
      lm.prefixSource = on ? source : null;
    },
    async state() {
      const out = new Map<string, TensorState>();
      for (const [name, p] of trainable) out.set(name, { shape: [...p.shape], data: (await p.toArray()) as Float32Array });
      return out;
    },
    loadState(state) {
      live('loadState');
      checkState('prefix', trainable, state);
      for (const [name, p] of trainable) p.rt.write(p.buffer, state.get(name)!.data);
    },
    extraStateBytes: () => [...trainable.values()].reduce((s, p) => s + p.size * 4, 0),
    remove() {
      if (removed) return;
      if (lm.prefixSource === source) lm.prefixSource = null;
      for (const p of trainable.values()) p.dispose(); // P' or E, and the encoder Linears' weights and biases
      removed = true;
    },
  };
}

export const prefixTuningStrategy: StrategyDefinition<PrefixTuningConfig> = {
  name: 'prefix',
  paradigm: 'additive',
  description: 'Prefix tuning: n learned key/value pairs before every decoder layer\'s own (optional MLP reparameterization); PEFT-compatible files',
  schema: prefixTuningConfigSchema,
  mergeable: false,
  peft: {
    config: (c) => {
      const dims = peftDims.get(c);
      if (!dims) throw new Error('prefix: PEFT config asked for a config that was never applied to a model');
      return {
        peft_type: 'PREFIX_TUNING',
        task_type: 'CAUSAL_LM',
        num_virtual_tokens: c.tokens,
        ...dims,
        num_transformer_submodules: 1,
        prefix_projection: c.reparameterize,
        inference_mode: true,
      };
    },
    fileKey: (name) => name,
    stateName: (key) => (key === PEFT_EMBEDDINGS || key.startsWith(ENCODER) ? key : null),
  },
  apply: prefixInstance,
};
