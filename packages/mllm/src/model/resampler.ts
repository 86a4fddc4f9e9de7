/**
 * The resampler connector (`projector.type: 'resampler'`): Q learned latent queries cross-attend to
 * the ViT's patch features, Perceiver-style as in Idefics2's perceiver resampler (BLIP-2's Q-Former
 * without its text branch), so the language model sees Q image tokens whatever the patch count.
 *   x   = modality_projection(patches)                                   (Bi, P, Wr)
 *   z   = latents                                                        (Bi, Q, Wr)
 *   per layer:
 *     zn  = input_latents_norm(z)
 *     kv  = concat(input_context_norm(x) [+ pos], zn)                   (Bi, P + Q, Wr)
 *     z   = z + o_proj(attn(q_proj(zn), k_proj(kv), v_proj(kv)))
 *     z   = z + fc2(gelu(fc1(post_attention_layernorm(z))))
 *   out = output_projection(norm(z))                                     (Bi, Q, W)
 * Keys and values hold the latents as well as the patches (Idefics2, Flamingo's Perceiver): a
 * latent can read what the others gathered without a separate self-attention, for Q more keys.
 * The context x is the same in every layer; only the latents are updated. output_projection exists
 * only when Wr ≠ W (Idefics2 has none: its resampler runs at the text width). Every LayerNorm uses
 * vision.layerNormEps; every Linear has a bias, like the MLP projector's.
 *
 * Patch positions (`projector.positions`). Attention is permutation-invariant over its keys, so with
 * 'none' (Idefics2) a query learns where a patch is only from what the vision tower left of its
 * position embedding in the features, which is slow to learn: a keel resampler trained so stayed at
 * chance on "where" questions while binding colour to shape (base-resampler/README.md). 'sincos2d'
 * adds pos = sincos2d(row, column) (P, Wr), a fixed table (no parameter, nothing in the checkpoint),
 * to each layer's normalized context, as Qwen-VL's resampler adds its 2D sin-cos table to the
 * normalized keys. Unlike Qwen-VL it goes into the values too: an image token must carry the
 * position of what it read, since the language model sees only the tokens. Added after the norm, it
 * has a fixed size beside the unit-variance context (each entry in [−1, 1], mean square 1/2).
 * The table (MAE's 2D sin-cos): with f = Wr / 4 and ω_i = 10000^(−i/f), i < f, patch p at row
 * r = ⌊p / g⌋ and column c = p mod g of the g×g grid has
 *   pos[p] = [sin(r·ω), cos(r·ω), sin(c·ω), cos(c·ω)]   (four blocks of f; Wr is a multiple of 4).
 *
 * Names follow HF Idefics2's perceiver (`latents`, `layers.{i}.input_latents_norm`,
 * `input_context_norm`, `post_attention_layernorm`, `norm`, `modality_projection`) under keel's
 * `multi_modal_projector.` prefix; the attention is `cross_attn` ({q,k,v,o}_proj, Idefics2's
 * `self_attn`) and the MLP is CLIP's GELU `fc1`/`fc2` (Idefics2's is SwiGLU).
 *
 * Dimension legend: Bi images, P patches, Q queries, Wv vision width, Wr resampler width, W text
 * width, H heads, D = Wr / H head dim, F MLP width.
 * Non-goals: Idefics2's grouped-query attention and RMSNorm, weight compatibility with Idefics2.
 */
import type { Runtime } from '@keel/kernels';
import { Activation, LayerNorm, Linear, Module, ModuleList, add, attention, concat, expand, randn, reshape, tensor, type Parameter, type Tensor } from '@keel/autograd';
import { resamplerSizes, type MllmConfig } from '../config.js';
import { seedStream } from './seeds.js';
import { mergeHeads, splitHeads } from './vision.js';

interface Sizes {
  queries: number;
  layers: number;
  heads: number;
  width: number;
  intermediate: number;
}

class ResamplerAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  constructor(rt: Runtime, private readonly s: Sizes, seed: () => number) {
    super();
    const W = s.width;
    this.q_proj = this.module('q_proj', new Linear(rt, W, W, { seed: seed() }));
    this.k_proj = this.module('k_proj', new Linear(rt, W, W, { seed: seed() }));
    this.v_proj = this.module('v_proj', new Linear(rt, W, W, { seed: seed() }));
    this.o_proj = this.module('o_proj', new Linear(rt, W, W, { seed: seed() }));
  }
  /** latents (Bi, Q, Wr), kv (Bi, P + Q, Wr) → (Bi, Q, Wr); no mask: every query sees every key. */
  forward(latents: Tensor, kv: Tensor): Tensor {
    const h = this.s.heads;
    const q = splitHeads(this.q_proj.forward(latents), h); // (Bi, H, Q, D)
    const k = splitHeads(this.k_proj.forward(kv), h); // (Bi, H, P + Q, D)
    const v = splitHeads(this.v_proj.forward(kv), h);
    return this.o_proj.forward(mergeHeads(attention(q, k, v)));
  }
}

class ResamplerMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act: Activation;
  constructor(rt: Runtime, s: Sizes, act: 'gelu' | 'gelu_erf', seed: () => number) {
    super();
    this.fc1 = this.module('fc1', new Linear(rt, s.width, s.intermediate, { seed: seed() }));
    this.fc2 = this.module('fc2', new Linear(rt, s.intermediate, s.width, { seed: seed() }));
    this.act = new Activation(act);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}

export class ResamplerLayer extends Module {
  readonly input_latents_norm: LayerNorm;
  readonly input_context_norm: LayerNorm;
  readonly cross_attn: ResamplerAttention;
  readonly post_attention_layernorm: LayerNorm;
  readonly mlp: ResamplerMlp;
  constructor(rt: Runtime, s: Sizes, c: MllmConfig, seed: () => number) {
    super();
    const eps = { eps: c.vision.layerNormEps };
    this.input_latents_norm = this.module('input_latents_norm', new LayerNorm(rt, s.width, eps));
    this.input_context_norm = this.module('input_context_norm', new LayerNorm(rt, s.width, eps));
    this.cross_attn = this.module('cross_attn', new ResamplerAttention(rt, s, seed));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new LayerNorm(rt, s.width, eps));
    this.mlp = this.module('mlp', new ResamplerMlp(rt, s, c.projector.act, seed));
  }
  /** z (Bi, Q, Wr), context x (Bi, P, Wr), patch positions (P, Wr) or null → z (Bi, Q, Wr). */
  forward(z: Tensor, x: Tensor, pos: Tensor | null = null): Tensor {
    const zn = this.input_latents_norm.forward(z);
    const xn = this.input_context_norm.forward(x);
    const kv = concat([pos ? add(xn, pos) : xn, zn], 1);
    z = add(z, this.cross_attn.forward(zn, kv));
    return add(z, this.mlp.forward(this.post_attention_layernorm.forward(z)));
  }
}

/** `multi_modal_projector` of a resampler model: patch features (Bi, P, Wv) → image tokens (Bi, Q, W). */
export class Resampler extends Module {
  readonly latents: Parameter; // (Q, Wr)
  readonly modality_projection: Linear; // (Wr, Wv)
  readonly layers: ModuleList<ResamplerLayer>;
  readonly norm: LayerNorm;
  /** Null when Wr = W: the final norm's output is already in the text width. */
  readonly output_projection: Linear | null;
  private readonly sizes: Sizes;
  /**
   * The sincos2d table (P·Wr, row-major); null for positions 'none'. Uploaded per forward (P·Wr
   * floats, 32 KB for the bundled base) into the caller's tidy scope: a module owns only
   * parameters, and a kept GPU copy would outlive `dispose()`.
   */
  private readonly positions: Float32Array | null;
  constructor(
    private readonly rt: Runtime,
    c: MllmConfig,
    seed: number,
  ) {
    super();
    const s = resamplerSizes(c);
    this.sizes = s;
    this.positions = c.projector.type === 'resampler' && c.projector.positions === 'sincos2d' ? sincos2d(c.vision.imageSize / c.vision.patchSize, s.width) : null;
    const next = seedStream(seed);
    // small random latents (Perceiver's init): identical ones would stay identical, as every query
    // would read the same mixture of patches
    this.latents = this.param('latents', randn(rt, [s.queries, s.width], next(), { std: 0.02 }));
    this.modality_projection = this.module('modality_projection', new Linear(rt, c.vision.width, s.width, { seed: next() }));
    this.layers = this.module('layers', new ModuleList(Array.from({ length: s.layers }, () => new ResamplerLayer(rt, s, c, next))));
    this.norm = this.module('norm', new LayerNorm(rt, s.width, { eps: c.vision.layerNormEps }));
    this.output_projection = s.width === c.text.width ? null : this.module('output_projection', new Linear(rt, s.width, c.text.width, { seed: next() }));
  }
  forward(patches: Tensor): Tensor {
    const { queries: Q, width: Wr } = this.sizes;
    const x = this.modality_projection.forward(patches);
    let z = expand(reshape(this.latents, [1, Q, Wr]), [patches.shape[0]!, Q, Wr]);
    const pos = this.positions ? tensor(this.rt, this.positions, [this.positions.length / Wr, Wr]) : null;
    if (pos && pos.shape[0] !== patches.shape[1]) throw new Error(`Resampler: ${patches.shape[1]} patches per image, but the position table is for ${pos.shape[0]}`);
    for (const layer of this.layers) z = layer.forward(z, x, pos);
    const out = this.norm.forward(z);
    return this.output_projection ? this.output_projection.forward(out) : out;
  }
}

/** The fixed 2D sin-cos patch positions of a g×g grid at width Wr (file comment), (g², Wr) row-major. */
export function sincos2d(g: number, width: number): Float32Array {
  if (width % 4 !== 0) throw new Error(`sincos2d: width ${width} is not a multiple of 4`);
  const f = width / 4;
  const out = new Float32Array(g * g * width);
  for (let p = 0; p < g * g; p++) {
    const r = Math.floor(p / g);
    const col = p % g;
    for (let i = 0; i < f; i++) {
      const w = 10000 ** (-i / f);
      const o = p * width + i;
      out[o] = Math.sin(r * w);
      out[o + f] = Math.cos(r * w);
      out[o + 2 * f] = Math.sin(col * w);
      out[o + 3 * f] = Math.cos(col * w);
    }
  }
  return out;
}

/** Every resampler parameter with its shape, under `multi_modal_projector.`, in model order. */
export function resamplerParameterShapes(c: MllmConfig): Map<string, number[]> {
  const { queries: Q, layers, width: Wr, intermediate: F } = resamplerSizes(c);
  const m = new Map<string, number[]>();
  const pre = 'multi_modal_projector';
  const linear = (name: string, out: number, inp: number) => {
    m.set(`${name}.weight`, [out, inp]);
    m.set(`${name}.bias`, [out]);
  };
  const layerNorm = (name: string) => {
    m.set(`${name}.weight`, [Wr]);
    m.set(`${name}.bias`, [Wr]);
  };
  m.set(`${pre}.latents`, [Q, Wr]);
  linear(`${pre}.modality_projection`, Wr, c.vision.width);
  for (let i = 0; i < layers; i++) {
    const l = `${pre}.layers.${i}`;
    layerNorm(`${l}.input_latents_norm`);
    layerNorm(`${l}.input_context_norm`);
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) linear(`${l}.cross_attn.${p}`, Wr, Wr);
    layerNorm(`${l}.post_attention_layernorm`);
    linear(`${l}.mlp.fc1`, F, Wr);
    linear(`${l}.mlp.fc2`, Wr, F);
  }
  layerNorm(`${pre}.norm`);
  if (Wr !== c.text.width) linear(`${pre}.output_projection`, c.text.width, Wr);
  return m;
}
