/**
 * The multimodal model, LLaVA-style: the ViT's patch features go through a 2-layer MLP projector
 * into the language model's width and replace the `<image>` placeholder tokens of the text.
 *   img = linear_2(gelu(linear_1(vision_tower(patches))))          (Bi, P, W)
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
import { Activation, Linear, Module, concat, indexSelect, reshape, tensor, type Tensor } from '@keel/autograd';
import { imageTokenCount, projectorHidden, resolveConfig, type MllmConfig, type MllmConfigInput } from '../config.js';
import { LanguageModel, type LayerCache } from './language.js';
import { VisionTower, patchTensor } from './vision.js';

/** `multi_modal_projector`: (…, Wv) → (…, W). */
export class Projector extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;
  private readonly act: Activation;
  constructor(rt: Runtime, c: MllmConfig, seed: number) {
    super();
    const hidden = projectorHidden(c);
    this.linear_1 = this.module('linear_1', new Linear(rt, c.vision.width, hidden, { seed }));
    this.linear_2 = this.module('linear_2', new Linear(rt, hidden, c.text.width, { seed: (seed + 1) >>> 0 }));
    this.act = new Activation(c.projector.act);
  }
  forward(x: Tensor): Tensor {
    return this.linear_2.forward(this.act.forward(this.linear_1.forward(x)));
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
  /** (B, L + T) key flags, 1 = real, 0 = padding. */
  keyPadding?: Tensor | null;
}

export interface ForwardResult {
  logits: Tensor; // (B, T, V)
  cache: LayerCache[];
}

export class MultimodalModel extends Module {
  readonly config: MllmConfig;
  readonly vision_tower: VisionTower;
  readonly multi_modal_projector: Projector;
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
    this.multi_modal_projector = this.module('multi_modal_projector', new Projector(rt, this.config, (seed ^ 0x2c9277b5) >>> 0));
    this.language_model = this.module('language_model', new LanguageModel(rt, this.config.text, (seed ^ 0x7f4a7c15) >>> 0));
  }

  /** Image tokens per image (P). */
  get imageTokens(): number {
    return imageTokenCount(this.config);
  }

  /** images (Bi, C, S, S) CHW → projected image tokens (Bi, P, W). */
  encodeImages(images: Float32Array, count: number): Tensor {
    return this.multi_modal_projector.forward(this.vision_tower.forward(patchTensor(this.rt, images, count, this.config)));
  }

  /** Token embeddings with image features spliced in: (B, T, W). */
  embedInputs(input: ModelInput): Tensor {
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
    if (rows.length === 0) return text;
    const img = this.encodeImages(input.images!, rows.length); // (Bi, P, W)
    // gather rows of [text tokens; image tokens] into sequence order: one indexSelect, whose
    // backward scatters each token's gradient back to its source
    const P = this.imageTokens;
    const index = new Int32Array(B * T);
    for (let i = 0; i < B * T; i++) index[i] = i;
    rows.forEach(({ row, start }, r) => {
      for (let j = 0; j < P; j++) index[row * T + start + j] = B * T + r * P + j;
    });
    const table = concat([reshape(text, [B * T, W]), reshape(img, [rows.length * P, W])], 0);
    return reshape(indexSelect(table, 0, tensor(this.rt, index, [B * T], { dtype: 'i32' })), [B, T, W]);
  }

  forward(input: ModelInput, o: ForwardOptions = {}): ForwardResult {
    const x = this.embedInputs(input);
    const { hidden, cache } = this.language_model.decode(x, o);
    return { logits: this.language_model.head(hidden), cache };
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
