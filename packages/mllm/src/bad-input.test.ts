/**
 * Bad input at the model level (issue 8) that the IO and model tests leave out: a checkpoint whose
 * tokenizer is missing, malformed or larger than the config's vocabulary; images of the wrong size
 * given to the model; and a run whose loss stops being finite.
 *
 * Truncated, oversized-header, wrong-dtype and wrong-shape safetensors, and a missing or malformed
 * config.json, are tested in io/safetensors.test.ts and io/model-files.test.ts; a PNG that is not
 * one in data/image.test.ts; random and mutated config.json / tokenizer.json in io/config-fuzz.test.ts.
 */
import { Runtime } from '@keel/kernels';
import { tidy } from '@keel/autograd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig, type MllmConfig } from './config.js';
import { encodeModelFiles, llavaParameterShapes, ModelFilesError, type ModelTensor } from './io/model-files.js';
import { loadModelFromBytes } from './model/checkpoint.js';
import { collate } from './model/collate.js';
import { MultimodalModel } from './model/mllm.js';
import { WordTokenizer } from './tokenizer/word.js';
import { pretrain } from './train/pretrain.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const tok = WordTokenizer.fromWords(['what', 'color', 'is', 'it', '?', 'red']);
const tiny = (vocabSize: number): MllmConfig =>
  resolveConfig({
    vision: { imageSize: 8, patchSize: 4, width: 16, layers: 1, heads: 2, intermediate: 16 },
    text: { vocabSize, width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 },
    imageTokenId: tok.specials.image,
  });

/** A checkpoint's files as contents (zero weights: these tests fail before the weights matter). */
function checkpointBytes(config: MllmConfig, tokenizerJson: string | null): { configJson: string; safetensors: Uint8Array; tokenizerJson: string } {
  const tensors = new Map<string, ModelTensor>([...llavaParameterShapes(config)].map(([name, shape]) => [name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }]));
  const files = encodeModelFiles({ config, tensors });
  return { configJson: files.get('config.json') as string, safetensors: files.get('model.safetensors') as Uint8Array, tokenizerJson: tokenizerJson as string };
}

describe('checkpoint tokenizer', () => {
  const tokJson = () => JSON.parse(JSON.stringify(tok.toJSON())) as Record<string, any>;

  it('a missing tokenizer.json is named', () => {
    expect(() => loadModelFromBytes(rt, checkpointBytes(tiny(tok.vocabSize), null), 'ckpt')).toThrow(/^ckpt: tokenizer\.json is missing; the model cannot read or write text without it$/);
  });

  it('tokenizer.json that is not JSON, or not an object, is a ModelFilesError naming the file', () => {
    const cfg = tiny(tok.vocabSize);
    const notJson = () => loadModelFromBytes(rt, checkpointBytes(cfg, '{"model": '), 'ckpt');
    expect(notJson).toThrow(ModelFilesError);
    expect(notJson).toThrow(/^ckpt\/tokenizer\.json: not valid JSON \(/);
    expect(() => loadModelFromBytes(rt, checkpointBytes(cfg, '[1, 2]'), 'ckpt')).toThrow(/^ckpt\/tokenizer\.json: expected a JSON object$/);
  });

  it('a structurally malformed tokenizer.json names the file and the field', () => {
    const json = tokJson();
    json['model'].type = 'CharLevel';
    expect(() => loadModelFromBytes(rt, checkpointBytes(tiny(tok.vocabSize), JSON.stringify(json)), 'ckpt')).toThrow(
      /^ckpt\/tokenizer\.json: field "model\.type" is "CharLevel", an unknown model type/,
    );
    const dup = tokJson();
    dup['model'].vocab['red'] = 0;
    expect(() => loadModelFromBytes(rt, checkpointBytes(tiny(tok.vocabSize), JSON.stringify(dup)), 'ckpt')).toThrow(/^ckpt\/tokenizer\.json: field "model\.vocab" gives id 0 to both "<pad>" and "red"$/);
  });

  it('a tokenizer with more tokens than config.json vocab_size is named with both sizes', () => {
    const small = tok.vocabSize - 2;
    expect(() => loadModelFromBytes(rt, checkpointBytes(tiny(small), JSON.stringify(tok.toJSON())), 'ckpt')).toThrow(
      new RegExp(`^ckpt: tokenizer has ${tok.vocabSize} tokens but config.json's vocab_size is ${small}$`),
    );
  });
});

describe('images of the wrong size', () => {
  it('the model names the image count and the size it takes', () => {
    const model = new MultimodalModel(rt, tiny(tok.vocabSize), { seed: 1 });
    try {
      const per = 3 * 8 * 8;
      const batch = collate([{ image: new Float32Array(per), prompt: 'what color is it ?', answer: 'red' }], tok, model.config);
      expect(() => tidy(() => model.forward({ ...batch.input, images: new Float32Array(2 * per) }).logits)).toThrow(
        /^MultimodalModel: 1 rows hold image tokens but 384 image values \(2 images of 3×8×8\) were given$/,
      );
      expect(() => tidy(() => model.forward({ ...batch.input, images: new Float32Array(per - 1) }).logits)).toThrow(/1 rows hold image tokens but 191 image values/);
      expect(() => collate([{ image: new Float32Array(4 * 16 * 16), prompt: 'what', answer: 'red' }], tok, model.config)).toThrow(
        /^collate: example 0 has an image of 1024 values, the model takes 3×8×8 = 192$/,
      );
    } finally {
      model.dispose();
    }
  });
});

describe('non-finite loss', () => {
  it('pretraining stops at the first non-finite loss, naming the step and the lr', async () => {
    // lr 1e30 drives the weights to ~1e30 after one update, so the next forward overflows f32
    const run = pretrain(rt, {
      steps: 6,
      visionSteps: 0, // stage 1 has its own check (train/pretrain.test.ts)
      batchSize: 2,
      pool: 4,
      evalCount: 1,
      progressEvery: 1,
      lr: 1e30,
      config: { vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } },
    });
    await expect(run).rejects.toThrow(/^pretrain: the loss became (NaN|Infinity|-Infinity) at step [2-6]; lower lr \(1e\+30\) or check the data$/);
  });
  it('a negative or fractional visionSteps is refused before anything is built', async () => {
    for (const visionSteps of [-1, 1.5]) await expect(pretrain(rt, { steps: 2, visionSteps })).rejects.toThrow(`pretrain: visionSteps must be an integer ≥ 0, got ${visionSteps}`);
  });
});
