import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, RESAMPLER_DEFAULTS, resolveConfig, visionConfigSchema, textConfigSchema, projectorConfigSchema } from '../config.js';
import { fromHfConfig, hfConfigPaths, toHfConfig } from './hf-config.js';

const nonDefault = resolveConfig({
  imageTokenId: 7,
  projector: { hidden: 96, act: 'gelu_erf', downsample: 2 },
  vision: { imageSize: 48, patchSize: 12, channels: 1, width: 32, layers: 3, heads: 2, intermediate: 80, layerNormEps: 1e-6, act: 'gelu_erf' },
  text: { vocabSize: 300, width: 64, layers: 2, heads: 8, kvHeads: 4, intermediate: 160, ropeTheta: 500000, rmsNormEps: 1e-5, tieEmbeddings: false, maxPositions: 200 },
});

/** A fresh HF object, edited by `edit`, passed through JSON so it is what a file would hold. */
function hfWith(edit: (h: Record<string, any>) => void): unknown {
  const h = JSON.parse(JSON.stringify(toHfConfig(resolveConfig()))) as Record<string, any>;
  edit(h);
  return h;
}

describe('toHfConfig / fromHfConfig', () => {
  it('round-trips the default config and writes the HF LLaVA layout', () => {
    const c = resolveConfig();
    const hf = toHfConfig(c);
    expect(hf.architectures).toEqual(['LlavaForConditionalGeneration']);
    expect(hf.model_type).toBe('llava');
    expect(hf.vision_config.model_type).toBe('clip_vision_model');
    expect(hf.vision_config.hidden_act).toBe('gelu_pytorch_tanh'); // keel 'gelu' is the tanh approximation
    expect(hf.projector_hidden_act).toBe('gelu_pytorch_tanh');
    expect(hf.text_config).toMatchObject({ model_type: 'llama', hidden_act: 'silu', hidden_size: c.text.width, num_key_value_heads: c.text.kvHeads });
    expect(hf.image_seq_length).toBe(16);
    expect('projector_hidden_size' in hf).toBe(false); // 0 = text width: HF's own layout
    expect(Object.keys(hf).filter((k) => k === 'projector_type' || k.startsWith('resampler_'))).toEqual([]); // the MLP writes LLaVA's keys only
    expect(fromHfConfig(JSON.parse(JSON.stringify(hf)), 'config.json')).toEqual(c);
  });

  it('round-trips a config where every field differs from its default', () => {
    const hf = toHfConfig(nonDefault, { keelVersion: '0.1.0' });
    expect(hf.projector_hidden_size).toBe(96);
    expect(hf.projector_downsample).toBe(2);
    expect(hf.image_seq_length).toBe(4); // (48 / 12 / 2)²
    expect(hf.vision_config.hidden_act).toBe('gelu');
    expect(hf.keel_version).toBe('0.1.0');
    expect(fromHfConfig(JSON.parse(JSON.stringify(hf)), 'config.json')).toEqual(nonDefault);
    // the test config really is non-default in every field
    const defaults = resolveConfig();
    for (const part of ['vision', 'text', 'projector'] as const) {
      for (const [k, v] of Object.entries(defaults[part])) {
        // the other projector type is the resampler's round trip below
        if (part !== 'projector' || k !== 'type') expect(nonDefault[part][k as keyof typeof defaults[typeof part]], `${part}.${k}`).not.toEqual(v);
      }
    }
  });

  it('round-trips a resampler config, every resampler size non-default, under the resampler_* keys', () => {
    const c = resolveConfig({ projector: { type: 'resampler', act: 'gelu_erf', queries: 7, layers: 3, heads: 2, width: 32, intermediate: 48, positions: 'sincos2d' } });
    const hf = toHfConfig(c);
    expect(hf).toMatchObject({
      projector_type: 'resampler',
      projector_hidden_act: 'gelu',
      resampler_n_latents: 7,
      resampler_depth: 3,
      resampler_n_heads: 2,
      resampler_hidden_size: 32,
      resampler_intermediate_size: 48,
      resampler_positions: 'sincos2d',
      image_seq_length: 7,
    });
    expect('projector_downsample' in hf || 'projector_hidden_size' in hf).toBe(false);
    expect(fromHfConfig(JSON.parse(JSON.stringify(hf)), 'config.json')).toEqual(c);
    for (const [k, v] of Object.entries(RESAMPLER_DEFAULTS)) expect(c.projector[k as keyof typeof c.projector], `projector.${k}`).not.toEqual(v);
    // widths left at 0 (= text width, 4·width) are not written, and read back as 0; positions
    // 'none' is not written, so a checkpoint from before the key reads as what it is
    const d = resolveConfig({ projector: { type: 'resampler' } });
    const hd = toHfConfig(d);
    expect('resampler_hidden_size' in hd || 'resampler_intermediate_size' in hd || 'resampler_positions' in hd).toBe(false);
    expect(fromHfConfig(JSON.parse(JSON.stringify(hd)), 'config.json')).toEqual(d);
  });

  it("reads the bundled base model's config.json as the MLP projector and writes it back unchanged", () => {
    const json = JSON.parse(readFileSync(new URL('../../base/config.json', import.meta.url), 'utf8'));
    const c = fromHfConfig(json, 'base/config.json');
    expect(c.projector.type).toBe('mlp');
    expect(JSON.parse(JSON.stringify(toHfConfig(c, json.keel_version !== undefined ? { keelVersion: json.keel_version } : {})))).toEqual(json);
  });

  it('names an HF path for every keel field', () => {
    const keys = [
      'imageTokenId',
      ...Object.keys(visionConfigSchema.shape).map((k) => `vision.${k}`),
      ...Object.keys(textConfigSchema.shape).map((k) => `text.${k}`),
      ...Object.keys(projectorConfigSchema.shape).map((k) => `projector.${k}`),
    ];
    expect(Object.keys(hfConfigPaths).sort()).toEqual(keys.sort());
  });

  it('ignores unknown keys and fills HF class defaults for behaviour fields', () => {
    const json = hfWith((h) => {
      h.transformers_version = '4.45.0';
      h.vision_config.projection_dim = 768;
      for (const k of ['num_key_value_heads', 'rope_theta', 'rms_norm_eps', 'tie_word_embeddings', 'max_position_embeddings', 'hidden_act']) delete h.text_config[k];
      delete h.tie_word_embeddings;
      delete h.vision_config.num_channels;
      delete h.projector_hidden_act;
      delete h.vision_feature_select_strategy;
      delete h.image_seq_length;
    });
    const c = fromHfConfig(json, 'config.json');
    expect(c.text).toMatchObject({ kvHeads: c.text.heads, ropeTheta: 10000, rmsNormEps: 1e-6, tieEmbeddings: false, maxPositions: 2048 });
    expect(c.vision.channels).toBe(3);
    expect(c.projector.act).toBe('gelu_erf'); // HF's default projector_hidden_act 'gelu' is exact GELU
  });

  it('reads gelu_new as the tanh approximation', () => {
    expect(fromHfConfig(hfWith((h) => (h.vision_config.hidden_act = 'gelu_new')), 'c').vision.act).toBe('gelu');
  });

  it.each<[string, (h: Record<string, any>) => void, RegExp]>([
    ['text hidden_act other than silu', (h) => (h.text_config.hidden_act = 'gelu'), /text_config\.hidden_act: "gelu" is not supported: keel's Llama MLP is SwiGLU/],
    ['vision_feature_layer other than -1', (h) => (h.vision_feature_layer = -2), /vision_feature_layer: -2 is not supported: keel feeds the projector the last encoder layer/],
    ['a feature-layer list', (h) => (h.vision_feature_layer = [-2, -1]), /vision_feature_layer: \[-2,-1\] is not supported/],
    ['select strategy other than default', (h) => (h.vision_feature_select_strategy = 'full'), /vision_feature_select_strategy: "full" is not supported: keel drops the CLS token/],
    ['non-null rope_scaling', (h) => (h.text_config.rope_scaling = { type: 'linear', factor: 2 }), /text_config\.rope_scaling: \{"type":"linear","factor":2\} is not supported: keel implements plain RoPE/],
    ['a vision activation keel lacks', (h) => (h.vision_config.hidden_act = 'quick_gelu'), /vision_config\.hidden_act: hidden_act "quick_gelu" is not supported/],
    ['a projector activation keel lacks', (h) => (h.projector_hidden_act = 'relu'), /projector_hidden_act: projector_hidden_act "relu" is not supported/],
    ['a SigLIP vision tower', (h) => (h.vision_config.model_type = 'siglip_vision_model'), /vision_config\.model_type: "siglip_vision_model" is not supported: keel's vision tower is CLIP's ViT/],
    ['a Mistral text model', (h) => (h.text_config.model_type = 'mistral'), /text_config\.model_type: "mistral" is not supported/],
    ['a non-LLaVA model_type', (h) => (h.model_type = 'llava_next'), /model_type: "llava_next" is not supported/],
    ['architectures without LLaVA', (h) => (h.architectures = ['LlamaForCausalLM']), /architectures: must include 'LlavaForConditionalGeneration'/],
    ['attention biases', (h) => (h.text_config.attention_bias = true), /text_config\.attention_bias: true is not supported/],
    ['MLP biases', (h) => (h.text_config.mlp_bias = true), /text_config\.mlp_bias: true is not supported/],
    ['a projector without biases', (h) => (h.multimodal_projector_bias = false), /multimodal_projector_bias: false is not supported/],
    ['dropout', (h) => (h.vision_config.attention_dropout = 0.1), /vision_config\.attention_dropout: keel has no dropout/],
    ['a head_dim other than hidden / heads', (h) => (h.text_config.head_dim = 64), /text_config\.head_dim: 64 is not supported: keel's head dim is hidden_size \/ num_attention_heads = 32/],
    ['tie flags that disagree', (h) => (h.tie_word_embeddings = false), /tie_word_embeddings: false disagrees with text_config\.tie_word_embeddings true/],
    ['an image_seq_length that disagrees', (h) => (h.image_seq_length = 576), /image_seq_length: 576 disagrees with \(image_size \/ patch_size \/ projector_downsample\)² = 16/],
    ['a missing size field', (h) => delete h.text_config.hidden_size, /text_config\.hidden_size: Invalid input: expected number, received undefined/],
    ['a missing vision_config', (h) => delete h.vision_config, /vision_config: Invalid input: expected object, received undefined/],
    ['a missing vision_feature_layer', (h) => delete h.vision_feature_layer, /vision_feature_layer: required: keel feeds the projector the last encoder layer \(-1\); HF defaults to -2/],
    ['a missing image_token_index', (h) => delete h.image_token_index, /image_token_index: Invalid input: expected number, received undefined/],
    ['a wrong type', (h) => (h.vision_config.patch_size = '8'), /vision_config\.patch_size: Invalid input: expected number, received string/],
    ['a non-integer size', (h) => (h.text_config.num_hidden_layers = 2.5), /text_config\.num_hidden_layers: expected a positive integer, got 2\.5/],
    ['a zero size', (h) => (h.vision_config.num_attention_heads = 0), /vision_config\.num_attention_heads: expected a positive integer, got 0/],
    ['keel cross-field checks, in HF names', (h) => (h.text_config.num_key_value_heads = 3), /text_config\.num_key_value_heads: heads 4 is not a multiple of kvHeads 3/],
    ['an image token outside the vocabulary', (h) => (h.image_token_index = 999), /image_token_index: imageTokenId 999 is outside the vocabulary/],
    ['an unknown projector_type', (h) => (h.projector_type = 'qformer'), /projector_type: "qformer" is not supported: keel's projectors are 'mlp' \(LLaVA\) and 'resampler' \(Perceiver\)/],
    ['a resampler key without projector_type', (h) => (h.resampler_n_latents = 8), /resampler_n_latents: queries is a resampler setting; it needs type 'resampler' \(type is 'mlp'\)/],
    ['a resampler key with projector_type mlp', (h) => Object.assign(h, { projector_type: 'mlp', resampler_depth: 2 }), /resampler_depth: layers is a resampler setting/],
    ['projector_downsample with the resampler', (h) => Object.assign(h, { projector_type: 'resampler', projector_downsample: 2, image_seq_length: 16 }), /projector_downsample: downsample 2 must be 1 with the resampler/],
    ['resampler heads that do not divide its width', (h) => Object.assign(h, { projector_type: 'resampler', resampler_n_heads: 3, image_seq_length: 16 }), /resampler_n_heads: resampler width 128 \(the text width\) is not divisible by heads 3/],
    ['unknown resampler positions', (h) => Object.assign(h, { projector_type: 'resampler', resampler_positions: 'rope' }), /resampler_positions: "rope" is not supported: keel's resampler positions are 'none' and 'sincos2d'/],
    ['resampler positions with the MLP', (h) => (h.resampler_positions = 'sincos2d'), /resampler_positions: positions is a resampler setting; it needs type 'resampler'/],
    ['a zero resampler size', (h) => Object.assign(h, { projector_type: 'resampler', resampler_depth: 0 }), /resampler_depth: expected a positive integer, got 0/],
    ['an image_seq_length that disagrees with the resampler', (h) => Object.assign(h, { projector_type: 'resampler', resampler_n_latents: 5 }), /image_seq_length: 16 disagrees with resampler_n_latents = 5 image tokens/],
  ])('rejects %s, naming the field', (_, edit, message) => {
    const json = hfWith(edit);
    expect(() => fromHfConfig(json, 'ckpt/config.json')).toThrow(ConfigError);
    expect(() => fromHfConfig(json, 'ckpt/config.json')).toThrow(/^ckpt\/config\.json: invalid Hugging Face LLaVA config:\n/);
    expect(() => fromHfConfig(json, 'ckpt/config.json')).toThrow(message);
  });

  it.each([
    ['null', null, 'null'],
    ['an array', [1], 'an array'],
    ['a string', '{"model_type":"llava"}', 'string'],
    ['a number', 3, 'number'],
  ])('rejects non-object JSON (%s)', (_, json, got) => {
    expect(() => fromHfConfig(json, 'x.json')).toThrow(new RegExp(`^x\\.json: invalid Hugging Face LLaVA config:\\n  \\(root\\): expected a JSON object, got ${got}`));
  });
});
