/**
 * The size bounds of the model config (config.ts): a layer count or width no released model has is
 * rejected by the schema itself, so every path into a model — resolveConfig, the schema the CLI's
 * `keel pretrain --config` parses with, and a checkpoint's config.json — fails naming the field and
 * the limit instead of enumerating a billion layers' parameters.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH, mllmConfigSchema, resolveConfig, type MllmConfigInput } from './config.js';
import { fromHfConfig, toHfConfig } from './io/hf-config.js';

const issues = (input: unknown): string[] => {
  const r = mllmConfigSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('size bounds', () => {
  const cases: [string, MllmConfigInput, RegExp][] = [
    ['text layers', { text: { layers: 1e9 } }, /^text\.layers: 1000000000 layers exceed keel's limit of 1024: no released model is that deep$/],
    ['vision layers', { vision: { layers: MAX_LAYERS + 1 } }, new RegExp(`^vision\\.layers: ${MAX_LAYERS + 1} layers exceed keel's limit of ${MAX_LAYERS}`)],
    ['text width', { text: { width: 1e9 } }, new RegExp(`^text\\.width: width 1000000000 exceeds keel's limit of ${MAX_WIDTH}: no released model is that wide$`)],
    ['vision MLP width', { vision: { intermediate: MAX_WIDTH * 2 } }, new RegExp(`^vision\\.intermediate: intermediate ${MAX_WIDTH * 2} exceeds keel's limit of ${MAX_WIDTH}`)],
    ['projector width', { projector: { hidden: 1e12 } }, new RegExp(`^projector\\.hidden: hidden 1000000000000 exceeds keel's limit of ${MAX_WIDTH}`)],
    ['vocabulary', { text: { vocabSize: MAX_VOCAB + 1 } }, new RegExp(`^text\\.vocabSize: vocabSize ${MAX_VOCAB + 1} exceeds keel's limit of ${MAX_VOCAB}`)],
  ];

  it.each(cases)('%s beyond the limit is rejected naming the field', (_, input, message) => {
    expect(issues(input).some((l) => message.test(l))).toBe(true);
    expect(() => resolveConfig(input, 'cfg')).toThrow(ConfigError);
    expect(() => resolveConfig(input, 'cfg')).toThrow(new RegExp(`^cfg: invalid model config:\\n {2}${message.source.slice(1)}`, 'm'));
  });

  it('the limits themselves are accepted', () => {
    const c = resolveConfig({ vision: { layers: MAX_LAYERS, intermediate: MAX_WIDTH }, text: { layers: MAX_LAYERS, vocabSize: MAX_VOCAB } });
    expect([c.vision.layers, c.text.layers, c.vision.intermediate, c.text.vocabSize]).toEqual([MAX_LAYERS, MAX_LAYERS, MAX_WIDTH, MAX_VOCAB]);
  });

  it("a checkpoint's config.json is bounded by the same schema, reported under the HF field name", () => {
    const json = toHfConfig(resolveConfig()) as unknown as { vision_config: Record<string, unknown>; text_config: Record<string, unknown> };
    json.vision_config['num_hidden_layers'] = 1e9;
    json.text_config['hidden_size'] = 1e9;
    const call = () => fromHfConfig(json, 'dir/config.json');
    expect(call).toThrow(ConfigError);
    expect(call).toThrow(/^ {2}vision_config\.num_hidden_layers: 1000000000 layers exceed keel's limit of 1024/m);
    expect(call).toThrow(new RegExp(`^ {2}text_config\\.hidden_size: width 1000000000 exceeds keel's limit of ${MAX_WIDTH}`, 'm'));
  });
});
