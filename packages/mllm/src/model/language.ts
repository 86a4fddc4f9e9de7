/**
 * The language model: a Llama-style decoder. Token embedding, then blocks of
 *   x = x + o_proj(attn(rope(q), rope(k), v))      (causal, grouped-query when kvHeads < heads)
 *   x = x + down_proj(silu(gate_proj(h)) ⊙ up_proj(h)),  h = post_attention_layernorm(x)
 * with RMSNorm before each sub-layer, a final RMSNorm and the LM head (tied to the embedding by
 * default). Names are HF Llama's under `language_model.` (`model.layers.{i}.self_attn.q_proj`, …).
 *
 * Decoding keeps a KV cache: each layer's keys and values for the tokens seen so far, (B, Hkv, L, D).
 * A step with cache length L places its tokens at positions L, L+1, … (RoPE offset and causal qOffset).
 * Dimension legend: B batch, T new tokens, L cached tokens, W width, H query heads, Hkv key/value
 * heads, D = W/H head dim, F MLP width, V vocabulary.
 * Non-goals: dropout, sliding windows, rope scaling, attention biases (Llama has none).
 */
import type { Runtime } from '@keel/kernels';
import {
  Embedding,
  Linear,
  Module,
  ModuleList,
  RMSNorm,
  add,
  attention,
  concat,
  expand,
  indexSelect,
  linear,
  mul,
  reshape,
  rope,
  silu,
  tensor,
  type Tensor,
} from '@keel/autograd';
import type { TextConfig } from '../config.js';
import { seedStream } from './seeds.js';
import { mergeHeads, splitHeads } from './vision.js';

/** Keys and values of one layer for the tokens seen so far: (B, Hkv, L, D) each. */
export interface LayerCache {
  k: Tensor;
  v: Tensor;
}

/** Learned keys and values one layer places before every sequence (prefix tuning): (Hkv, n, D) each. */
export interface PrefixKV {
  k: Tensor;
  v: Tensor;
}

/**
 * Tuning extension point (prefix tuning whose prefixes are a function of other parameters, such as
 * Li & Liang's MLP reparameterization): `build()` runs at each sequence's first step, inside the
 * caller's scope, so the prefixes are recomputed from the current parameters and differentiable.
 * Overrides the layers' own `prefix` fields while set.
 */
export interface PrefixSource {
  /** Prefix tokens n (the same in every layer). */
  readonly length: number;
  /** One prefix per decoder layer, in layer order. */
  build(): readonly PrefixKV[];
}

export interface DecoderOptions {
  /** Cached keys/values per layer (length = layers) from earlier steps; null for a fresh sequence. */
  cache?: readonly LayerCache[] | null;
  /** (B, keys) flags, 1 = real token, 0 = padding; keys at 0 are never attended. */
  keyPadding?: Tensor | null;
  /** Left-padding tokens per row (rotation of prefix keys; see LlamaAttention.prefix). */
  leadPads?: readonly number[] | null;
}

export class LlamaAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  constructor(rt: Runtime, private readonly c: TextConfig, seed: () => number) {
    super();
    const W = c.width;
    const kvW = (W / c.heads) * c.kvHeads;
    this.q_proj = this.module('q_proj', new Linear(rt, W, W, { bias: false, seed: seed() }));
    this.k_proj = this.module('k_proj', new Linear(rt, W, kvW, { bias: false, seed: seed() }));
    this.v_proj = this.module('v_proj', new Linear(rt, W, kvW, { bias: false, seed: seed() }));
    this.o_proj = this.module('o_proj', new Linear(rt, W, W, { bias: false, seed: seed() }));
  }

  /**
   * Tuning extension point (prefix tuning): learned keys and values (Hkv, n, D) placed before every
   * sequence's own and visible to all its queries, as HF PEFT's past_key_values: the prefix takes
   * positions 0..n−1 (unrotated keys) and the text starts at position n. A row with p left-padding
   * tokens has its text rotated from n + p, so its prefix keys are rotated by p to keep every
   * query–prefix angle as in the unpadded row. They enter the cache at the first step.
   */
  prefix: PrefixKV | null = null;

  /** x (B, T, W) → (B, T, W) and this layer's cache extended by the T new tokens. `prefix` overrides the field for this call. */
  forward(x: Tensor, past: LayerCache | null, keyPadding: Tensor | null, leadPads: readonly number[] | null, prefix: PrefixKV | null = this.prefix): { out: Tensor; cache: LayerCache } {
    const c = this.c;
    const B = x.shape[0]!;
    const nPrefix = prefix ? prefix.k.shape[1]! : 0;
    const keysBefore = past ? past.k.shape[2]! : nPrefix; // absolute key index (= position) of this step's first token
    const ropeOpts = { layout: 'BHTD', offset: keysBefore, theta: c.ropeTheta } as const;
    const q = rope(splitHeads(this.q_proj.forward(x), c.heads), ropeOpts);
    let k = rope(splitHeads(this.k_proj.forward(x), c.kvHeads), ropeOpts);
    let v = splitHeads(this.v_proj.forward(x), c.kvHeads);
    if (past) {
      k = concat([past.k, k], 2);
      v = concat([past.v, v], 2);
    } else if (prefix) {
      k = concat([this.prefixKeys(prefix.k, B, leadPads), k], 2);
      v = concat([expand(reshape(prefix.v, [1, ...prefix.v.shape]), [B, ...prefix.v.shape]), v], 2);
    }
    const a = attention(q, k, v, { causal: true, qOffset: keysBefore, ...(keyPadding ? { keyPadding } : {}) });
    return { out: this.o_proj.forward(mergeHeads(a)), cache: { k, v } };
  }

  /** Prefix keys (B, Hkv, n, D), row b rotated by its left padding (one rope per distinct padding). */
  private prefixKeys(pk: Tensor, B: number, leadPads: readonly number[] | null): Tensor {
    const one = reshape(pk, [1, ...pk.shape]);
    const pads = leadPads ?? new Array<number>(B).fill(0);
    const distinct = [...new Set(pads)];
    if (distinct.length === 1 && distinct[0] === 0) return expand(one, [B, ...pk.shape]);
    // every key of the prefix turns by the same angle p: view it as one token with Hkv·n heads
    const [Hkv, n, D] = pk.shape as [number, number, number];
    const turn = (p: number) => reshape(rope(reshape(pk, [1, 1, Hkv * n, D]), { layout: 'BTHD', offset: p, theta: this.c.ropeTheta }), [1, Hkv, n, D]);
    const rotated = concat(distinct.map(turn), 0);
    return indexSelect(rotated, 0, tensor(pk.rt, Int32Array.from(pads, (p) => distinct.indexOf(p)), [B], { dtype: 'i32' }));
  }
}

class LlamaMlp extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  constructor(rt: Runtime, c: TextConfig, seed: () => number) {
    super();
    this.gate_proj = this.module('gate_proj', new Linear(rt, c.width, c.intermediate, { bias: false, seed: seed() }));
    this.up_proj = this.module('up_proj', new Linear(rt, c.width, c.intermediate, { bias: false, seed: seed() }));
    this.down_proj = this.module('down_proj', new Linear(rt, c.intermediate, c.width, { bias: false, seed: seed() }));
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(mul(silu(this.gate_proj.forward(x)), this.up_proj.forward(x)));
  }
}

export class DecoderBlock extends Module {
  readonly self_attn: LlamaAttention;
  readonly mlp: LlamaMlp;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(rt: Runtime, c: TextConfig, seed: () => number) {
    super();
    const eps = { eps: c.rmsNormEps };
    this.self_attn = this.module('self_attn', new LlamaAttention(rt, c, seed));
    this.mlp = this.module('mlp', new LlamaMlp(rt, c, seed));
    this.input_layernorm = this.module('input_layernorm', new RMSNorm(rt, c.width, eps));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new RMSNorm(rt, c.width, eps));
  }
  forward(x: Tensor, past: LayerCache | null, keyPadding: Tensor | null, leadPads: readonly number[] | null, prefix?: PrefixKV | null): { out: Tensor; cache: LayerCache } {
    const a = this.self_attn.forward(this.input_layernorm.forward(x), past, keyPadding, leadPads, prefix); // undefined: the layer's own field
    x = add(x, a.out);
    x = add(x, this.mlp.forward(this.post_attention_layernorm.forward(x)));
    return { out: x, cache: a.cache };
  }
}

class LlamaModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<DecoderBlock>;
  readonly norm: RMSNorm;
  constructor(rt: Runtime, c: TextConfig, seed: () => number) {
    super();
    this.embed_tokens = this.module('embed_tokens', new Embedding(rt, c.vocabSize, c.width, { seed: seed() }));
    this.layers = this.module('layers', new ModuleList(Array.from({ length: c.layers }, () => new DecoderBlock(rt, c, seed))));
    this.norm = this.module('norm', new RMSNorm(rt, c.width, { eps: c.rmsNormEps }));
  }
}

/** `language_model`: Llama decoder + LM head. */
export class LanguageModel extends Module {
  readonly model: LlamaModel;
  readonly lm_head: Linear | null;
  constructor(rt: Runtime, readonly config: TextConfig, seed: number) {
    super();
    const s = seedStream(seed);
    this.model = this.module('model', new LlamaModel(rt, config, s));
    this.lm_head = config.tieEmbeddings ? null : this.module('lm_head', new Linear(rt, config.width, config.vocabSize, { bias: false, seed: s() }));
  }

  /** ids (…) i32 → embeddings (…, W). */
  embed(ids: Tensor): Tensor {
    return this.model.embed_tokens.forward(ids);
  }

  /**
   * Embeddings (B, T, W) → final hidden states (B, T, W) after the last RMSNorm, and the cache
   * extended by these T tokens.
   */
  decode(x: Tensor, o: DecoderOptions = {}): { hidden: Tensor; cache: LayerCache[] } {
    const layers = this.model.layers;
    const past = o.cache ?? null;
    if (past && past.length !== layers.length) throw new Error(`LanguageModel.decode: cache has ${past.length} layers, model has ${layers.length}`);
    // prefixes enter the cache at the first step; later steps find them there
    const built = !past && this.prefixSource ? this.prefixSource.build() : null;
    if (built && built.length !== layers.length) throw new Error(`LanguageModel.decode: prefixSource built ${built.length} prefixes, model has ${layers.length} layers`);
    const cache: LayerCache[] = [];
    for (let i = 0; i < layers.length; i++) {
      const r = layers.at(i).forward(x, past ? past[i]! : null, o.keyPadding ?? null, o.leadPads ?? null, built ? built[i]! : undefined);
      x = r.out;
      cache.push(r.cache);
    }
    return { hidden: this.model.norm.forward(x), cache };
  }

  /** See PrefixSource; null: each layer's own `prefix` field applies. */
  prefixSource: PrefixSource | null = null;

  /** Prefix keys per layer (prefix tuning; 0 without). All layers carry the same count. */
  prefixLength(): number {
    if (this.prefixSource) return this.prefixSource.length;
    const n = this.model.layers.items.map((l) => (l.self_attn.prefix ? l.self_attn.prefix.k.shape[1]! : 0));
    if (n.some((x) => x !== n[0])) throw new Error(`LanguageModel: layers carry different prefix lengths (${n.join(', ')})`);
    return n[0] ?? 0;
  }

  /** Hidden states (…, W) → logits (…, V). */
  head(hidden: Tensor): Tensor {
    return this.lm_head ? this.lm_head.forward(hidden) : linear(hidden, this.model.embed_tokens.weight);
  }
}
