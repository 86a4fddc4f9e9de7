/**
 * A resampler model's checkpoint: save → load gives the same config and identical logits, and the
 * IO layer's parameter list (llavaParameterShapes) is exactly the model's.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '@keel/kernels';
import { noGrad, tidy } from '@keel/autograd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MllmConfigInput } from '../config.js';
import { llavaParameterShapes } from '../io/model-files.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { loadModel, saveModel } from './checkpoint.js';
import { collate } from './collate.js';
import { MultimodalModel } from './mllm.js';

let rt: Runtime;
let dir: string;
beforeAll(async () => {
  rt = await Runtime.create();
  dir = await mkdtemp(join(tmpdir(), 'keel-resampler-'));
});
afterAll(async () => {
  rt.destroy();
  await rm(dir, { recursive: true, force: true });
});

const tok = WordTokenizer.fromWords(['what', 'color', 'is', 'it', '?', 'red', 'blue']);
const config: MllmConfigInput = {
  vision: { imageSize: 8, patchSize: 4, width: 16, layers: 1, heads: 2, intermediate: 16 },
  projector: { type: 'resampler', queries: 3, layers: 2, heads: 2, width: 8, intermediate: 12, act: 'gelu_erf', positions: 'sincos2d' },
  text: { vocabSize: tok.vocabSize, width: 16, layers: 1, heads: 2, kvHeads: 2, intermediate: 16 },
  imageTokenId: tok.specials.image,
};

async function logitsOf(model: MultimodalModel): Promise<Float32Array> {
  const image = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i));
  const b = collate([{ image, prompt: 'what color is it ?', answer: 'red' }, { image: null, prompt: 'blue', answer: 'red' }], tok, model.config);
  return (await noGrad(() => tidy(() => model.forward(b.input).logits)).toArray()) as Float32Array;
}

describe('resampler checkpoint', () => {
  it('round-trips to the same config and identical logits; the IO layer lists exactly its parameters', async () => {
    const model = new MultimodalModel(rt, config, { seed: 23 });
    expect([...llavaParameterShapes(model.config)].map(([n, s]) => `${n}:${s}`)).toEqual([...model.namedParameters()].map(([n, p]) => `${n}:${p.shape}`));
    const out = join(dir, 'resampler');
    await saveModel(out, model, tok);
    const json = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(json).toMatchObject({ projector_type: 'resampler', resampler_n_latents: 3, resampler_depth: 2, resampler_n_heads: 2, resampler_hidden_size: 8, resampler_positions: 'sincos2d', image_seq_length: 3 });
    const loaded = await loadModel(rt, out);
    expect(loaded.unused).toEqual([]);
    expect(loaded.model.config).toEqual(model.config);
    expect(await logitsOf(loaded.model)).toEqual(await logitsOf(model));
    model.dispose();
    loaded.model.dispose();
  });
});
