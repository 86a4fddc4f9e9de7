/**
 * A checkpoint's tokenizer.json is a model file like config.json and model.safetensors: missing,
 * malformed or larger than the config's vocabulary, it fails with a ModelFilesError naming the file
 * (so callers such as the CLI can tell damaged input from a bug). No model reaches the GPU: every
 * case fails before the weights are uploaded.
 */
import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveConfig, type MllmConfig } from '../config.js';
import { encodeModelFiles, llavaParameterShapes, ModelFilesError, type ModelTensor } from '../io/model-files.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { loadModelFromBytes } from './checkpoint.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const tok = WordTokenizer.fromWords(['what', 'is', 'it', '?', 'red']);
const tiny = (vocabSize: number): MllmConfig =>
  resolveConfig({
    vision: { imageSize: 8, patchSize: 4, width: 16, layers: 1, heads: 2, intermediate: 16 },
    text: { vocabSize, width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 },
    imageTokenId: tok.specials.image,
  });

function load(config: MllmConfig, tokenizerJson: string | null): () => unknown {
  const tensors = new Map<string, ModelTensor>([...llavaParameterShapes(config)].map(([name, shape]) => [name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }]));
  const files = encodeModelFiles({ config, tensors });
  const bytes = { configJson: files.get('config.json') as string, safetensors: files.get('model.safetensors') as Uint8Array, tokenizerJson: tokenizerJson as string };
  return () => loadModelFromBytes(rt, bytes, 'ckpt');
}

it.each([
  ['missing', null, /^ckpt: tokenizer\.json is missing; the model cannot read or write text without it$/],
  ['of an unknown model type', JSON.stringify({ ...tok.toJSON(), model: { ...(tok.toJSON() as { model: object }).model, type: 'CharLevel' } }), /^ckpt\/tokenizer\.json: field "model\.type" is "CharLevel", an unknown model type/],
  ['without a model', JSON.stringify({ added_tokens: [] }), /^ckpt\/tokenizer\.json: field "model" is missing$/],
])('a tokenizer.json %s is a ModelFilesError naming the file', (_, json, message) => {
  const call = load(tiny(tok.vocabSize), json);
  expect(call).toThrow(ModelFilesError);
  expect(call).toThrow(message);
});

it('a tokenizer larger than config.json vocab_size is a ModelFilesError naming both sizes', () => {
  const small = tok.vocabSize - 2;
  const call = load(tiny(small), JSON.stringify(tok.toJSON()));
  expect(call).toThrow(ModelFilesError);
  expect(call).toThrow(new RegExp(`^ckpt: tokenizer has ${tok.vocabSize} tokens but config.json's vocab_size is ${small}$`));
});
