/**
 * keel's MllmConfig ↔ a Hugging Face LLaVA `config.json` (LlavaForConditionalGeneration with a CLIP
 * vision tower and a Llama text model), so a keel checkpoint directory reads like an HF one.
 *
 * Field map (keel → HF):
 *   imageTokenId → image_token_index        projector.act → projector_hidden_act
 *   projector.hidden → projector_hidden_size (keel extension, written only when non-zero: HF's
 *     projector is always vision width → text width → text width, so transformers ignores this key
 *     and cannot load a checkpoint whose projector hidden width differs from the text width)
 *   projector.downsample → projector_downsample (keel extension, written only when > 1: the
 *     VILA-style d×d patch merge before the MLP, which transformers' LLaVA does not have)
 *   projector.type → projector_type (keel extension, written only for 'resampler'; absent = 'mlp')
 *   projector.{queries, layers, heads} → resampler_{n_latents, depth, n_heads} (keel extensions,
 *     Idefics2's perceiver_config names, kept at the top level beside the other projector keys;
 *     written for the resampler only, and an error with projector_type 'mlp')
 *   projector.{width, intermediate} → resampler_{hidden_size, intermediate_size} (the same, written
 *     only when non-zero: 0 = text width and 4·width). A resampler checkpoint still says
 *     LlavaForConditionalGeneration, but transformers cannot load it: its LLaVA ignores these keys
 *     and expects the MLP's multi_modal_projector.linear_{1,2} weights.
 *   projector.positions → resampler_positions (keel extension, written only for 'sincos2d'; absent =
 *     'none', which is what every resampler checkpoint written before the key means)
 *   vision.{imageSize, patchSize, channels, width, layers, heads, intermediate, layerNormEps, act}
 *     → vision_config.{image_size, patch_size, num_channels, hidden_size, num_hidden_layers,
 *        num_attention_heads, intermediate_size, layer_norm_eps, hidden_act}
 *   text.{vocabSize, width, layers, heads, kvHeads, intermediate, ropeTheta, rmsNormEps,
 *        tieEmbeddings, maxPositions}
 *     → text_config.{vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
 *        num_key_value_heads, intermediate_size, rope_theta, rms_norm_eps, tie_word_embeddings,
 *        max_position_embeddings}
 * Activations: keel 'gelu' (tanh approximation) ↔ HF 'gelu_pytorch_tanh' (also read: 'gelu_new',
 * 'gelu_fast', the same formula); keel 'gelu_erf' ↔ HF 'gelu' (exact erf GELU in HF's ACT2FN).
 * Fixed by keel's architecture: vision_feature_layer −1 (the last encoder layer, no post-LN),
 * vision_feature_select_strategy 'default' (CLS dropped), Llama hidden_act 'silu', no rope_scaling,
 * no attention/MLP biases in Llama, biases in the projector, no dropout.
 *
 * Reading follows transformers where keel can: unknown keys are ignored, and a missing behaviour
 * field takes HF's class default (num_key_value_heads = num_attention_heads, rope_theta 1e4,
 * rms_norm_eps 1e-6, tie_word_embeddings false, max_position_embeddings 2048, layer_norm_eps 1e-5,
 * num_channels 3, projector_hidden_act 'gelu'). Fields that set a tensor's shape, image_token_index
 * and vision_feature_layer are required: HF's defaults for them describe a 7B model (and −2), so a
 * silent default would only move the error to weight loading. A value keel cannot honour is an error
 * naming the field.
 *
 * Non-goals: other vision towers (SigLIP) or text models (Mistral, Qwen), multi-layer feature
 * selection, image_token_id / text_config aliases of newer transformers releases.
 */
import { z } from 'zod';
import { ConfigError, imageTokenCount, mllmConfigSchema, type MllmConfig, type ProjectorConfig } from '../config.js';

// Depth and widths are bounded once, by mllmConfigSchema (config.ts), whose issues fromHfConfig
// reports under the HF field names (HF_PATH): a 1e9-layer config.json fails there, before any
// parameter list is built.
export { MAX_LAYERS } from '../config.js';

type KeelAct = 'gelu' | 'gelu_erf';
const HF_ACT: Record<KeelAct, string> = { gelu: 'gelu_pytorch_tanh', gelu_erf: 'gelu' };
const KEEL_ACT: Record<string, KeelAct> = { gelu_pytorch_tanh: 'gelu', gelu_new: 'gelu', gelu_fast: 'gelu', gelu: 'gelu_erf' };

/** The JSON object `toHfConfig` writes. */
export interface HfLlavaConfig {
  architectures: ['LlavaForConditionalGeneration'];
  model_type: 'llava';
  image_token_index: number;
  /** Image tokens per image, for HF processors; keel checks it when present. */
  image_seq_length: number;
  projector_hidden_act: string;
  projector_hidden_size?: number;
  projector_downsample?: number;
  projector_type?: 'resampler';
  resampler_n_latents?: number;
  resampler_depth?: number;
  resampler_n_heads?: number;
  resampler_hidden_size?: number;
  resampler_intermediate_size?: number;
  resampler_positions?: 'sincos2d';
  vision_feature_layer: -1;
  vision_feature_select_strategy: 'default';
  /** Mirrors text_config.tie_word_embeddings: transformers releases differ in which one they read. */
  tie_word_embeddings: boolean;
  torch_dtype: 'float32';
  vision_config: {
    model_type: 'clip_vision_model';
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    image_size: number;
    patch_size: number;
    num_channels: number;
    layer_norm_eps: number;
    hidden_act: string;
  };
  text_config: {
    model_type: 'llama';
    vocab_size: number;
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    rope_theta: number;
    rms_norm_eps: number;
    tie_word_embeddings: boolean;
    max_position_embeddings: number;
    hidden_act: 'silu';
  };
  keel_version?: string;
}

/** The resampler's keys; none for the MLP projector, so an MLP config.json is LLaVA's own layout. */
function resamplerKeys(p: ProjectorConfig): Partial<HfLlavaConfig> {
  if (p.type === 'mlp') return {};
  return {
    projector_type: 'resampler',
    resampler_n_latents: p.queries,
    resampler_depth: p.layers,
    resampler_n_heads: p.heads,
    ...(p.width ? { resampler_hidden_size: p.width } : {}),
    ...(p.intermediate ? { resampler_intermediate_size: p.intermediate } : {}),
    ...(p.positions !== 'none' ? { resampler_positions: p.positions } : {}),
  };
}

export function toHfConfig(c: MllmConfig, options: { keelVersion?: string } = {}): HfLlavaConfig {
  const { vision: v, text: t } = c;
  return {
    architectures: ['LlavaForConditionalGeneration'],
    model_type: 'llava',
    image_token_index: c.imageTokenId,
    image_seq_length: imageTokenCount(c),
    projector_hidden_act: HF_ACT[c.projector.act],
    ...(c.projector.hidden ? { projector_hidden_size: c.projector.hidden } : {}),
    ...(c.projector.downsample > 1 ? { projector_downsample: c.projector.downsample } : {}),
    ...resamplerKeys(c.projector),
    vision_feature_layer: -1,
    vision_feature_select_strategy: 'default',
    tie_word_embeddings: t.tieEmbeddings,
    torch_dtype: 'float32',
    vision_config: {
      model_type: 'clip_vision_model',
      hidden_size: v.width,
      intermediate_size: v.intermediate,
      num_hidden_layers: v.layers,
      num_attention_heads: v.heads,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      num_channels: v.channels,
      layer_norm_eps: v.layerNormEps,
      hidden_act: HF_ACT[v.act],
    },
    text_config: {
      model_type: 'llama',
      vocab_size: t.vocabSize,
      hidden_size: t.width,
      intermediate_size: t.intermediate,
      num_hidden_layers: t.layers,
      num_attention_heads: t.heads,
      num_key_value_heads: t.kvHeads,
      rope_theta: t.ropeTheta,
      rms_norm_eps: t.rmsNormEps,
      tie_word_embeddings: t.tieEmbeddings,
      max_position_embeddings: t.maxPositions,
      hidden_act: 'silu',
    },
    ...(options.keelVersion !== undefined ? { keel_version: options.keelVersion } : {}),
  };
}

/** A value keel must see exactly; the message says what was found and why keel needs `expected`. */
function exactly<T extends string | number | boolean | null>(expected: T, why: string) {
  return z.literal(expected, {
    error: (iss) => (iss.input === undefined ? `required: ${why}` : `${JSON.stringify(iss.input)} is not supported: ${why}`),
  });
}

const activation = (field: string) =>
  z.string().refine((s) => Object.prototype.hasOwnProperty.call(KEEL_ACT, s), {
    error: (iss) => `${field} ${JSON.stringify(iss.input)} is not supported: keel's GELU is 'gelu_pytorch_tanh' (also read as 'gelu_new', 'gelu_fast') or 'gelu' (exact erf)`,
  });
const notPositiveInt = (iss: { input?: unknown }) => `expected a positive integer, got ${JSON.stringify(iss.input)}`;
const size = z.number().int({ error: notPositiveInt }).positive({ error: notPositiveInt });
const noDropout = z.number().refine((p) => p === 0, { error: 'keel has no dropout: only 0 is supported' }).optional();

const hfVisionSchema = z.object({
  model_type: exactly('clip_vision_model', "keel's vision tower is CLIP's ViT"),
  hidden_size: size,
  intermediate_size: size,
  num_hidden_layers: size,
  num_attention_heads: size,
  image_size: size,
  patch_size: size,
  num_channels: size.default(3),
  layer_norm_eps: z.number().positive().default(1e-5),
  hidden_act: activation('hidden_act'),
  attention_dropout: noDropout,
});

const hfTextSchema = z.object({
  model_type: exactly('llama', "keel's language model is Llama"),
  vocab_size: size,
  hidden_size: size,
  intermediate_size: size,
  num_hidden_layers: size,
  num_attention_heads: size,
  num_key_value_heads: size.optional(),
  head_dim: size.optional(),
  rope_theta: z.number().positive().default(10000),
  rms_norm_eps: z.number().positive().default(1e-6),
  tie_word_embeddings: z.boolean().optional(),
  max_position_embeddings: size.default(2048),
  hidden_act: exactly('silu', "keel's Llama MLP is SwiGLU (silu)").default('silu'),
  rope_scaling: exactly(null, 'keel implements plain RoPE, no scaling').default(null),
  attention_bias: exactly(false, "keel's Llama attention has no biases").default(false),
  mlp_bias: exactly(false, "keel's Llama MLP has no biases").default(false),
  attention_dropout: noDropout,
});

const hfLlavaSchema = z.object({
  architectures: z
    .array(z.string())
    .refine((a) => a.includes('LlavaForConditionalGeneration'), { error: "must include 'LlavaForConditionalGeneration'" })
    .optional(),
  model_type: exactly('llava', 'keel reads LLaVA configs'),
  image_token_index: z.number().int().nonnegative(),
  image_seq_length: size.optional(),
  projector_hidden_act: activation('projector_hidden_act').default('gelu'),
  projector_hidden_size: size.optional(),
  projector_downsample: size.optional(),
  projector_type: z.enum(['mlp', 'resampler'], { error: (iss) => `${JSON.stringify(iss.input)} is not supported: keel's projectors are 'mlp' (LLaVA) and 'resampler' (Perceiver)` }).optional(),
  resampler_n_latents: size.optional(),
  resampler_depth: size.optional(),
  resampler_n_heads: size.optional(),
  resampler_hidden_size: size.optional(),
  resampler_intermediate_size: size.optional(),
  resampler_positions: z.enum(['none', 'sincos2d'], { error: (iss) => `${JSON.stringify(iss.input)} is not supported: keel's resampler positions are 'none' and 'sincos2d'` }).optional(),
  multimodal_projector_bias: exactly(true, "keel's projector has biases").optional(),
  vision_feature_layer: exactly(-1, 'keel feeds the projector the last encoder layer (-1); HF defaults to -2 when absent'),
  vision_feature_select_strategy: exactly('default', "keel drops the CLS token ('default')").default('default'),
  tie_word_embeddings: z.boolean().optional(),
  keel_version: z.string().optional(),
  vision_config: hfVisionSchema,
  text_config: hfTextSchema,
});

/** keel config path → HF path, to report keel's cross-field checks in the file's own words. */
const HF_PATH: Record<string, string> = {
  imageTokenId: 'image_token_index',
  'projector.hidden': 'projector_hidden_size',
  'projector.act': 'projector_hidden_act',
  'projector.downsample': 'projector_downsample',
  'projector.type': 'projector_type',
  'projector.queries': 'resampler_n_latents',
  'projector.layers': 'resampler_depth',
  'projector.heads': 'resampler_n_heads',
  'projector.width': 'resampler_hidden_size',
  'projector.intermediate': 'resampler_intermediate_size',
  'projector.positions': 'resampler_positions',
  'vision.imageSize': 'vision_config.image_size',
  'vision.patchSize': 'vision_config.patch_size',
  'vision.channels': 'vision_config.num_channels',
  'vision.width': 'vision_config.hidden_size',
  'vision.layers': 'vision_config.num_hidden_layers',
  'vision.heads': 'vision_config.num_attention_heads',
  'vision.intermediate': 'vision_config.intermediate_size',
  'vision.layerNormEps': 'vision_config.layer_norm_eps',
  'vision.act': 'vision_config.hidden_act',
  'text.vocabSize': 'text_config.vocab_size',
  'text.width': 'text_config.hidden_size',
  'text.layers': 'text_config.num_hidden_layers',
  'text.heads': 'text_config.num_attention_heads',
  'text.kvHeads': 'text_config.num_key_value_heads',
  'text.intermediate': 'text_config.intermediate_size',
  'text.ropeTheta': 'text_config.rope_theta',
  'text.rmsNormEps': 'text_config.rms_norm_eps',
  'text.tieEmbeddings': 'text_config.tie_word_embeddings',
  'text.maxPositions': 'text_config.max_position_embeddings',
};
/** Exposed for the test that checks every keel field has an HF name. */
export const hfConfigPaths: Readonly<Record<string, string>> = HF_PATH;

const invalid = (source: string, lines: string[]) => new ConfigError(`${source}: invalid Hugging Face LLaVA config:\n${lines.map((l) => `  ${l}`).join('\n')}`);

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Parses a `config.json` object; `source` (a path or URL) prefixes the error. Throws ConfigError. */
export function fromHfConfig(json: unknown, source: string): MllmConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    const got = json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json;
    throw invalid(source, [`(root): expected a JSON object, got ${got}`]);
  }
  const r = hfLlavaSchema.safeParse(json);
  if (!r.success) throw invalid(source, r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
  const h = r.data;
  const v = h.vision_config;
  const t = h.text_config;

  const problems: string[] = [];
  const tie = t.tie_word_embeddings ?? h.tie_word_embeddings ?? false;
  if (t.tie_word_embeddings !== undefined && h.tie_word_embeddings !== undefined && t.tie_word_embeddings !== h.tie_word_embeddings) {
    problems.push(`tie_word_embeddings: ${h.tie_word_embeddings} disagrees with text_config.tie_word_embeddings ${t.tie_word_embeddings}`);
  }
  if (t.head_dim !== undefined && t.head_dim * t.num_attention_heads !== t.hidden_size) {
    problems.push(`text_config.head_dim: ${t.head_dim} is not supported: keel's head dim is hidden_size / num_attention_heads = ${t.hidden_size / t.num_attention_heads}`);
  }
  if (problems.length) throw invalid(source, problems);

  const candidate = {
    imageTokenId: h.image_token_index,
    projector: {
      type: h.projector_type ?? 'mlp',
      hidden: h.projector_hidden_size ?? 0,
      act: KEEL_ACT[h.projector_hidden_act]!,
      downsample: h.projector_downsample ?? 1,
      // present keys only: a resampler key beside projector_type 'mlp' is then reported by name
      ...defined({
        queries: h.resampler_n_latents,
        layers: h.resampler_depth,
        heads: h.resampler_n_heads,
        width: h.resampler_hidden_size,
        intermediate: h.resampler_intermediate_size,
        positions: h.resampler_positions,
      }),
    },
    vision: {
      imageSize: v.image_size,
      patchSize: v.patch_size,
      channels: v.num_channels,
      width: v.hidden_size,
      layers: v.num_hidden_layers,
      heads: v.num_attention_heads,
      intermediate: v.intermediate_size,
      layerNormEps: v.layer_norm_eps,
      act: KEEL_ACT[v.hidden_act]!,
    },
    text: {
      vocabSize: t.vocab_size,
      width: t.hidden_size,
      layers: t.num_hidden_layers,
      heads: t.num_attention_heads,
      kvHeads: t.num_key_value_heads ?? t.num_attention_heads,
      intermediate: t.intermediate_size,
      ropeTheta: t.rope_theta,
      rmsNormEps: t.rms_norm_eps,
      tieEmbeddings: tie,
      maxPositions: t.max_position_embeddings,
    },
  };
  const k = mllmConfigSchema.safeParse(candidate);
  if (!k.success) throw invalid(source, k.error.issues.map((i) => `${HF_PATH[i.path.join('.')] ?? i.path.join('.')}: ${i.message}`));
  const config = k.data;
  if (h.image_seq_length !== undefined && h.image_seq_length !== imageTokenCount(config)) {
    const rule = config.projector.type === 'resampler' ? 'resampler_n_latents' : '(image_size / patch_size / projector_downsample)²';
    throw invalid(source, [`image_seq_length: ${h.image_seq_length} disagrees with ${rule} = ${imageTokenCount(config)} image tokens`]);
  }
  return config;
}
