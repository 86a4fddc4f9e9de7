/**
 * The multimodal model, LLaVA-style: the ViT's patch features go through a connector into the
 * language model's width and replace the `<image>` placeholder tokens of the text.
 *   img = linear_2(gelu(linear_1(vision_tower(patches))))          (Bi, P, W)
 * That is the MLP projector (`projector.type: 'mlp'`); a resampler model (`'resampler'`,
 * resampler.ts) instead gives P = `queries` tokens from learned queries over the patch features.
 *   x   = embed(ids) with the P image-token positions of each image row replaced by img, in order
 *   logits = lm_head(decoder(x))
 * The caller expands each `<image>` to P copies of the image token id (as HF's LLaVA processor
 * does), so positions are fixed before the model runs; collate.ts does this.
 *
 * Dimension legend: B rows, Bi rows with an image, T tokens, P image tokens per image, W text width,
 * Wv vision width, V vocabulary, C·p·p flattened patch.
 * Non-goals: several images per row, images of other sizes than the config's.
 */
import type { Runtime } from '@keel/kernels';
import { Activation, Linear, Module, concat, indexSelect, permute, reshape, tensor, type Tensor } from '@keel/autograd';
import { imageTokenCount, projectorHidden, projectorInput, resolveConfig, type MllmConfig, type MllmConfigInput } from '../config.js';
import { LanguageModel, type LayerCache } from './language.js';
import { Resampler } from './resampler.js';
import { VisionTower, patchTensor } from './vision.js';

/**
 * `multi_modal_projector`: patch features (Bi, g², Wv) → image tokens (Bi, (g/d)², W). With
 * downsample d > 1 each d×d block of neighbouring patches is first concatenated into one feature,
 * in (dy, dx, channel) order (keel's layout; VILA's mlp_downsample orders channels differently).
 */
export class Projector extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;
  private readonly act: Activation;
  private readonly grid: number;
  private readonly d: number;
  constructor(rt: Runtime, c: MllmConfig, seed: number) {
    super();
    const hidden = projectorHidden(c);
    this.grid = c.vision.imageSize / c.vision.patchSize;
    this.d = c.projector.downsample;
    this.linear_1 = this.module('linear_1', new Linear(rt, projectorInput(c), hidden, { seed }));
    this.linear_2 = this.module('linear_2', new Linear(rt, hidden, c.text.width, { seed: (seed + 1) >>> 0 }));
    this.act = new Activation(c.projector.act);
  }
  /** (Bi, g², Wv) → (Bi, (g/d)², d²·Wv): block (by, bx) gathers patches (by·d + dy, bx·d + dx). */
  merge(x: Tensor): Tensor {
    const { grid: g, d } = this;
    if (d === 1) return x;
    const [B, , C] = x.shape as [number, number, number];
    const blocks = reshape(x, [B, g / d, d, g / d, d, C]);
    return reshape(permute(blocks, [0, 1, 3, 2, 4, 5]), [B, (g / d) ** 2, d * d * C]);
  }
  forward(x: Tensor): Tensor {
    return this.linear_2.forward(this.act.forward(this.linear_1.forward(this.merge(x))));
  }
}

/** One batch of token rows (row-major (B, T)) and the images of the rows that hold image tokens. */
export interface ModelInput {
  ids: Int32Array;
  batch: number;
  length: number;
  /** (Bi, C, S, S) CHW values for the rows containing image tokens, in row order; null when none. */
  images?: Float32Array | null;
}

export interface ForwardOptions {
  /** KV cache from the previous decoding step (null: positions start at 0). */
  cache?: readonly LayerCache[] | null;
  /**
   * (B, L) flags for every token the caller has fed so far, this step's included: 1 = real,
   * 0 = padding (left padding for generation). Padded keys are never attended. Null: all real.
   */
  keyFlags?: Int32Array | null;
}

export interface ForwardResult {
  logits: Tensor; // (B, T, V)
  cache: LayerCache[];
}

/** The connector registered as `multi_modal_projector`, one class per `projector.type`. */
export type Connector = Projector | Resampler;

export class MultimodalModel extends Module {
  readonly config: MllmConfig;
  readonly vision_tower: VisionTower;
  readonly multi_modal_projector: Connector;
  readonly language_model: LanguageModel;

  constructor(
    readonly rt: Runtime,
    config: MllmConfigInput | MllmConfig = {},
    options: { seed?: number } = {},
  ) {
    super();
    this.config = resolveConfig(config);
    const seed = options.seed ?? 0;
    this.vision_tower = this.module('vision_tower', new VisionTower(rt, this.config.vision, (seed ^ 0x1000193) >>> 0));
    const connectorSeed = (seed ^ 0x2c9277b5) >>> 0;
    const connector = this.config.projector.type === 'resampler' ? new Resampler(rt, this.config, connectorSeed) : new Projector(rt, this.config, connectorSeed);
    this.multi_modal_projector = this.module('multi_modal_projector', connector);
    this.language_model = this.module('language_model', new LanguageModel(rt, this.config.text, (seed ^ 0x7f4a7c15) >>> 0));
  }

  /**
   * Tuning extension point (prompt tuning): learned embeddings (n, W) placed before each row's
   * first real token at the first step. They take n positions and n cache entries; their logits are
   * dropped, so the output lines up with the input tokens.
   */
  softPrompt: Tensor | null = null;

  /** Image tokens per image (P). */
  get imageTokens(): number {
    return imageTokenCount(this.config);
  }

  /** images (Bi, C, S, S) CHW → projected image tokens (Bi, P, W). */
  encodeImages(images: Float32Array, count: number): Tensor {
    return this.multi_modal_projector.forward(this.vision_tower.forward(patchTensor(this.rt, images, count, this.config)));
  }

  /**
   * Token embeddings with image features spliced in: (B, T, W); with `soft` (n, W) learned
   * embeddings also placed right before each row's first real token (after its left padding):
   * (B, n + T, W).
   */
  embedInputs(input: ModelInput, soft: { embeddings: Tensor; leadPads: readonly number[] } | null = null): Tensor {
    const { ids, batch: B, length: T } = input;
    if (ids.length !== B * T) throw new Error(`MultimodalModel: ids has ${ids.length} values, expected batch ${B} × length ${T}`);
    const V = this.config.text.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i]! < 0 || ids[i]! >= V) throw new Error(`MultimodalModel: token id ${ids[i]} at row ${Math.floor(i / T)}, position ${i % T} is outside the vocabulary (${V})`);
    }
    const rows = imageRows(ids, B, T, this.config.imageTokenId, this.imageTokens);
    const W = this.config.text.width;
    const lm = this.language_model;
    const text = lm.embed(tensor(this.rt, ids, [B, T], { dtype: 'i32' })); // (B, T, W)
    const S = this.config.vision;
    const imageSize = S.channels * S.imageSize * S.imageSize;
    const given = input.images ? input.images.length / imageSize : 0;
    if (!Number.isInteger(given) || given !== rows.length) {
      throw new Error(`MultimodalModel: ${rows.length} rows hold image tokens but ${input.images ? `${input.images.length} image values (${given} images of ${S.channels}×${S.imageSize}×${S.imageSize})` : 'no images'} were given`);
    }
    if (rows.length === 0 && !soft) return text;
    // gather rows of [text tokens; image tokens; soft tokens] into sequence order: one indexSelect,
    // whose backward scatters each token's gradient back to its source
    const P = this.imageTokens;
    const n = soft ? soft.embeddings.shape[0]! : 0;
    const Tout = T + n;
    const source = new Int32Array(B * T); // row-major (B, T): where each input token comes from
    for (let i = 0; i < B * T; i++) source[i] = i;
    rows.forEach(({ row, start }, r) => {
      for (let j = 0; j < P; j++) source[row * T + start + j] = B * T + r * P + j;
    });
    const softBase = B * T + rows.length * P;
    const index = new Int32Array(B * Tout);
    for (let b = 0; b < B; b++) {
      const lead = soft ? soft.leadPads[b]! : 0;
      for (let t = 0; t < Tout; t++) {
        index[b * Tout + t] = t < lead ? source[b * T + t]! : t < lead + n ? softBase + t - lead : source[b * T + t - n]!;
      }
    }
    const parts = [reshape(text, [B * T, W])];
    if (rows.length > 0) parts.push(reshape(this.encodeImages(input.images!, rows.length), [rows.length * P, W]));
    if (soft) parts.push(soft.embeddings);
    return reshape(indexSelect(concat(parts, 0), 0, tensor(this.rt, index, [B * Tout], { dtype: 'i32' })), [B, Tout, W]);
  }

  forward(input: ModelInput, o: ForwardOptions = {}): ForwardResult {
    const B = input.batch;
    const T = input.length;
    const first = !o.cache;
    const flags = o.keyFlags ?? null;
    const L = flags ? flags.length / B : 0;
    if (flags && (!Number.isInteger(L) || L < T)) throw new Error(`MultimodalModel: keyFlags has ${flags.length} values; expected batch ${B} × (tokens so far ≥ ${T})`);
    // left padding of each row (leading zero flags): soft-prompt tokens go right after it
    const leadPads = Array.from({ length: B }, (_, b) => {
      let p = 0;
      while (flags && p < L && flags[b * L + p] === 0) p++;
      return p;
    });
    const soft = this.softPrompt && first ? { embeddings: this.softPrompt, leadPads } : null;
    const x = this.embedInputs(input, soft);
    const nSoft = this.softPrompt ? this.softPrompt.shape[0]! : 0;
    const keyPadding = flags ? this.layerKeyFlags(flags, B, L, leadPads, nSoft) : null;
    const r = this.language_model.decode(x, { cache: o.cache ?? null, keyPadding, leadPads });
    // drop the soft tokens' positions: logits line up with the caller's tokens
    let hidden = r.hidden;
    if (soft) {
      const keepIdx = new Int32Array(B * T);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) keepIdx[b * T + t] = b * (T + nSoft) + (t < leadPads[b]! ? t : t + nSoft);
      const W = this.config.text.width;
      hidden = reshape(indexSelect(reshape(hidden, [B * (T + nSoft), W]), 0, tensor(this.rt, keepIdx, [B * T], { dtype: 'i32' })), [B, T, W]);
    }
    return { logits: this.language_model.head(hidden), cache: r.cache };
  }

  /**
   * Key flags as the layers see them: prefix keys first (always attended), then per row the
   * caller's flags with nSoft ones inserted after the row's left padding.
   */
  private layerKeyFlags(flags: Int32Array, B: number, L: number, leadPads: readonly number[], nSoft: number): Tensor {
    const nPrefix = this.language_model.prefixLength();
    const width = nPrefix + nSoft + L;
    const out = new Int32Array(B * width);
    for (let b = 0; b < B; b++) {
      const row = out.subarray(b * width, (b + 1) * width);
      row.fill(1, 0, nPrefix);
      const src = flags.subarray(b * L, (b + 1) * L);
      row.set(src.subarray(0, leadPads[b]), nPrefix);
      row.fill(1, nPrefix + leadPads[b]!, nPrefix + leadPads[b]! + nSoft);
      row.set(src.subarray(leadPads[b]), nPrefix + leadPads[b]! + nSoft);
    }
    return tensor(this.rt, out, [B, width], { dtype: 'i32' });
  }
}

/** Rows holding image tokens and where their run of P starts; any other count is an error. */
export function imageRows(ids: Int32Array, B: number, T: number, imageId: number, P: number): { row: number; start: number }[] {
  const out: { row: number; start: number }[] = [];
  for (let b = 0; b < B; b++) {
    let first = -1;
    let count = 0;
    for (let t = 0; t < T; t++) {
      if (ids[b * T + t] !== imageId) continue;
      if (first < 0) first = t;
      count++;
    }
    if (count === 0) continue;
    if (count !== P) throw new Error(`MultimodalModel: row ${b} holds ${count} image tokens (id ${imageId}); an image takes exactly ${P}`);
    for (let t = first; t < first + P; t++) {
      if (ids[b * T + t] !== imageId) throw new Error(`MultimodalModel: row ${b}'s image tokens are not one contiguous run of ${P}`);
    }
    out.push({ row: b, start: first });
  }
  return out;
}
