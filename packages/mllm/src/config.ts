/**
 * The model's configuration: one object for the vision encoder, the projector (the vision-language
 * connector: a LLaVA MLP or a Perceiver resampler, by `projector.type`) and the language model,
 * validated by a schema so a bad value is rejected with the field's path before any GPU work.
 * Defaults describe keel's bundled base model (small enough to pre-train on a CPU-emulated GPU).
 *
 * Names follow the paper's vocabulary in camelCase; io/hf-config.ts maps them to and from the
 * Hugging Face LLaVA `config.json` (vision_config = CLIP-ViT, text_config = Llama).
 *
 * Non-goals: dropout, rope scaling variants, multiple images per sample.
 */
import { z } from 'zod';

const positiveInt = z.number().int().positive();

/**
 * Bounds on the sizes that set how much a model allocates. No released model comes near them
 * (Llama 3.1 405B: 126 layers, width 16384, MLP 53248; the largest vocabularies hold 256k tokens),
 * so a larger value is a typo or a damaged config.json. Unchecked, building or loading would first
 * enumerate every layer's parameters (hours and gigabytes for 1e9 layers, or a RangeError once a Map
 * holds 2²⁴ names) before any allocation could fail.
 */
export const MAX_LAYERS = 1024;
export const MAX_WIDTH = 131072;
export const MAX_VOCAB = 1 << 20;

const layerCount = positiveInt.max(MAX_LAYERS, {
  error: (iss) => `${JSON.stringify(iss.input)} layers exceed keel's limit of ${MAX_LAYERS}: no released model is that deep`,
});
const widthOf = (what: string, max: number) =>
  positiveInt.max(max, { error: (iss) => `${what} ${JSON.stringify(iss.input)} exceeds keel's limit of ${max}: no released model is that wide` });

export const visionConfigSchema = z
  .object({
    /** Side of the square input image in pixels. */
    imageSize: positiveInt.default(32),
    /** Side of a square patch; imageSize must be a multiple. P = (imageSize / patchSize)² patches. */
    patchSize: positiveInt.default(8),
    /** Input channels (RGB). */
    channels: positiveInt.default(3),
    /** Hidden width of the ViT. */
    width: widthOf('width', MAX_WIDTH).default(64),
    /** Number of pre-LN transformer blocks. */
    layers: layerCount.default(2),
    /** Attention heads; width / heads must be a multiple of 4 (attention kernel). */
    heads: positiveInt.default(4),
    /** Hidden width of each block's MLP. */
    intermediate: widthOf('intermediate', MAX_WIDTH).default(128),
    /** ε of every LayerNorm. */
    layerNormEps: z.number().positive().default(1e-5),
    /** MLP activation: tanh-approximated or exact (erf) GELU. */
    act: z.enum(['gelu', 'gelu_erf']).default('gelu'),
  })
  .strict();

type Act = 'gelu' | 'gelu_erf';
interface ProjectorCommon {
  hidden: number;
  act: Act;
  downsample: number;
}
/** The LLaVA connector: an MLP over every (merged) patch feature. */
export interface MlpProjectorConfig extends ProjectorCommon {
  type: 'mlp';
}
/** The Perceiver-style connector (model/resampler.ts), every size filled in. */
export interface ResamplerConfig extends ProjectorCommon {
  type: 'resampler';
  queries: number;
  layers: number;
  heads: number;
  width: number;
  intermediate: number;
  positions: ResamplerPositions;
}

/**
 * How the resampler's queries can tell where a patch is. 'none' (Idefics2): the patch features
 * alone. 'sincos2d': a fixed 2D sine-cosine embedding of the patch's (row, column) is added to the
 * projected patches, so keys and values both carry position (model/resampler.ts).
 */
export type ResamplerPositions = 'none' | 'sincos2d';

/** Sizes a resampler takes when the config leaves them out. */
export const RESAMPLER_DEFAULTS = { queries: 16, layers: 2, heads: 4, width: 0, intermediate: 0, positions: 'none' } as const;
const RESAMPLER_FIELDS = Object.keys(RESAMPLER_DEFAULTS) as (keyof typeof RESAMPLER_DEFAULTS)[];

const nonNegativeWidth = (what: string) =>
  z
    .number()
    .int()
    .nonnegative()
    .max(MAX_WIDTH, { error: (iss) => `${what} ${JSON.stringify(iss.input)} exceeds keel's limit of ${MAX_WIDTH}: no released model is that wide` });

export const projectorConfigSchema = z
  .object({
    /**
     * Connector family. 'mlp' (LLaVA): one image token per (merged) patch. 'resampler' (Perceiver /
     * Idefics2, BLIP-2's Q-Former without its text branch): `queries` learned latents cross-attend
     * to the patch features and become the image tokens, however many patches there are.
     */
    type: z.enum(['mlp', 'resampler']).default('mlp'),
    /** mlp — LLaVA-1.5: Linear(vision width → hidden) → GELU → Linear(hidden → text width). 0 = text width. */
    hidden: nonNegativeWidth('hidden').default(0),
    /** GELU of the MLP projector, or of the resampler's per-layer MLP. */
    act: z.enum(['gelu', 'gelu_erf']).default('gelu'),
    /**
     * mlp — VILA-style token downsampling: each d×d block of neighbouring patch features is
     * concatenated into one (d²·Wv) feature before the MLP, so the LLM sees (grid / d)² image
     * tokens. 1 = LLaVA; the resampler needs 1.
     */
    downsample: positiveInt.default(1),
    // The fields below belong to the resampler: set with type 'mlp' they are an error, and for
    // 'resampler' the defaults in comments are filled in (RESAMPLER_DEFAULTS).
    /** resampler — learned queries Q = image tokens per image. Default 16. */
    queries: positiveInt
      .max(MAX_WIDTH, { error: (iss) => `queries ${JSON.stringify(iss.input)} exceeds keel's limit of ${MAX_WIDTH} image tokens` })
      .optional(),
    /** resampler — blocks of cross-attention + MLP. Default 2. */
    layers: layerCount.optional(),
    /** resampler — attention heads; width / heads must be a multiple of 4, at most 128. Default 4. */
    heads: positiveInt.optional(),
    /** resampler — width Wr of the latents; 0 = text width (default), else a final Linear maps Wr → text width. */
    width: nonNegativeWidth('width').optional(),
    /** resampler — hidden width of each block's MLP; 0 = 4·Wr (default). */
    intermediate: nonNegativeWidth('intermediate').optional(),
    /**
     * resampler — patch positions for the queries: 'none' (default, Idefics2; every checkpoint
     * written before this key) or 'sincos2d' (a fixed 2D sin-cos table added to the projected
     * patches; the --arch resampler preset). See ResamplerPositions.
     */
    positions: z.enum(['none', 'sincos2d']).optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (p.type === 'mlp') {
      for (const f of RESAMPLER_FIELDS) if (p[f] !== undefined) issue(f, `${f} is a resampler setting; it needs type 'resampler' (type is 'mlp')`);
      return;
    }
    if (p.hidden !== 0) issue('hidden', `hidden ${p.hidden} is the MLP projector's width; the resampler's MLP width is 'intermediate'`);
    if (p.downsample !== 1) issue('downsample', `downsample ${p.downsample} must be 1 with the resampler: its ${p.queries ?? RESAMPLER_DEFAULTS.queries} queries already set the image token count`);
  });

/** The resolved form: no resampler keys for 'mlp', every resampler size present for 'resampler'. */
function canonicalProjector(p: z.output<typeof projectorConfigSchema>): MlpProjectorConfig | ResamplerConfig {
  const common = { hidden: p.hidden, act: p.act, downsample: p.downsample };
  if (p.type === 'mlp') return { type: 'mlp', ...common };
  const r = RESAMPLER_DEFAULTS;
  return {
    type: 'resampler',
    ...common,
    queries: p.queries ?? r.queries,
    layers: p.layers ?? r.layers,
    heads: p.heads ?? r.heads,
    width: p.width ?? r.width,
    intermediate: p.intermediate ?? r.intermediate,
    positions: p.positions ?? r.positions,
  };
}

export const textConfigSchema = z
  .object({
    vocabSize: widthOf('vocabSize', MAX_VOCAB).default(256),
    /** Hidden width of the decoder. */
    width: widthOf('width', MAX_WIDTH).default(128),
    layers: layerCount.default(3),
    /** Query heads; width / heads must be a multiple of 4. */
    heads: positiveInt.default(4),
    /** Key/value heads (grouped-query attention when < heads; must divide heads). */
    kvHeads: positiveInt.default(2),
    /** Hidden width of the SwiGLU MLP. */
    intermediate: widthOf('intermediate', MAX_WIDTH).default(256),
    /** RoPE frequency base θ. */
    ropeTheta: z.number().positive().default(10000),
    /** ε of every RMSNorm. */
    rmsNormEps: z.number().positive().default(1e-6),
    /** Share the token embedding with the LM head. */
    tieEmbeddings: z.boolean().default(true),
    /** Longest sequence (image tokens + text) the model is meant for; generation checks it. */
    maxPositions: positiveInt.default(128),
  })
  .strict();

export const mllmConfigSchema = z
  .object({
    vision: visionConfigSchema.default(() => visionConfigSchema.parse({})),
    projector: projectorConfigSchema.prefault({}).transform(canonicalProjector),
    text: textConfigSchema.default(() => textConfigSchema.parse({})),
    /** Token id of the `<image>` placeholder replaced by the projected image tokens. */
    imageTokenId: z.number().int().nonnegative().default(4),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (c.vision.imageSize % c.vision.patchSize !== 0) {
      issue(['vision', 'patchSize'], `imageSize ${c.vision.imageSize} is not a multiple of patchSize ${c.vision.patchSize}`);
    }
    for (const part of ['vision', 'text'] as const) {
      const { width, heads } = c[part];
      if (width % heads !== 0) issue([part, 'heads'], `width ${width} is not divisible by heads ${heads}`);
      else if ((width / heads) % 4 !== 0 || width / heads > 128) issue([part, 'heads'], `head dim ${width / heads} must be a multiple of 4 and at most 128`);
    }
    if (c.text.heads % c.text.kvHeads !== 0) issue(['text', 'kvHeads'], `heads ${c.text.heads} is not a multiple of kvHeads ${c.text.kvHeads}`);
    if (c.imageTokenId >= c.text.vocabSize) issue(['imageTokenId'], `imageTokenId ${c.imageTokenId} is outside the vocabulary (${c.text.vocabSize})`);
    const grid = c.vision.imageSize / c.vision.patchSize;
    const p = c.projector;
    // field errors do not stop this check, so it only judges sizes that passed their own schema
    const valid = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0;
    if (p.type === 'resampler') {
      const width = p.width || c.text.width;
      const of = p.width ? `width ${width}` : `width ${width} (the text width)`;
      if (valid(width) && valid(p.heads) && width % p.heads !== 0) issue(['projector', 'heads'], `resampler ${of} is not divisible by heads ${p.heads}`);
      else if (valid(width) && valid(p.heads) && ((width / p.heads) % 4 !== 0 || width / p.heads > 128)) {
        issue(['projector', 'heads'], `resampler head dim ${width / p.heads} = ${of} / heads ${p.heads} must be a multiple of 4 and at most 128`);
      }
    } else if (Number.isInteger(grid) && grid % p.downsample !== 0) {
      issue(['projector', 'downsample'], `the ${grid}×${grid} patch grid is not divisible by downsample ${p.downsample}`);
    }
    const tokens = imageTokenCount(c);
    if (tokens >= c.text.maxPositions) issue(['text', 'maxPositions'], `maxPositions ${c.text.maxPositions} leaves no room for text after ${tokens} image tokens`);
  });

export type VisionConfig = z.output<typeof visionConfigSchema>;
export type ProjectorConfig = MlpProjectorConfig | ResamplerConfig;
export type TextConfig = z.output<typeof textConfigSchema>;
export type MllmConfig = z.output<typeof mllmConfigSchema>;
/** What a caller may pass: any subset, the rest defaulted. */
export type MllmConfigInput = z.input<typeof mllmConfigSchema>;

/** Thrown for an invalid configuration; the message lists every bad field by path. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Fills defaults and validates; `source` names where the config came from in the error. */
export function resolveConfig(input: MllmConfigInput = {}, source = 'config'): MllmConfig {
  const r = mllmConfigSchema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`${source}: invalid model config:\n${lines.join('\n')}`);
  }
  return r.data;
}

/** Image tokens the connector hands to the language model: one per (merged) patch (CLS dropped, as LLaVA), or the resampler's queries. */
export const imageTokenCount = (c: MllmConfig): number =>
  c.projector.type === 'resampler' ? c.projector.queries : (c.vision.imageSize / c.vision.patchSize / c.projector.downsample) ** 2;

/** ViT patches per image (grid²), before the projector's downsampling. */
export const patchCount = (c: MllmConfig): number => (c.vision.imageSize / c.vision.patchSize) ** 2;

/** Input width of the projector's first layer: d²·Wv. */
export const projectorInput = (c: MllmConfig): number => c.projector.downsample ** 2 * c.vision.width;

/** Projector hidden width after resolving 0 = text width. */
export const projectorHidden = (c: MllmConfig): number => c.projector.hidden || c.text.width;

/** A resampler's sizes after resolving width 0 = text width and intermediate 0 = 4·width. */
export function resamplerSizes(c: MllmConfig): { queries: number; layers: number; heads: number; width: number; intermediate: number } {
  const p = c.projector;
  if (p.type !== 'resampler') throw new Error(`resamplerSizes: projector.type is '${p.type}', not 'resampler'`);
  const width = p.width || c.text.width;
  return { queries: p.queries, layers: p.layers, heads: p.heads, width, intermediate: p.intermediate || 4 * width };
}
