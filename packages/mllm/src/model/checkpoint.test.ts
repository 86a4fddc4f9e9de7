/**
 * Checkpoint round trips: save → load gives identical logits; the IO layer's expected parameter
 * list equals the model's; truncated weights and a broken config.json fail with errors naming the
 * file.
 */
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
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
  dir = await mkdtemp(join(tmpdir(), 'keel-ckpt-'));
});
afterAll(async () => {
  rt.destroy();
  await rm(dir, { recursive: true, force: true });
});

const tok = WordTokenizer.fromWords(['what', 'color', 'is', 'it', '?', 'red', 'blue']);
const config = (tie: boolean): MllmConfigInput => ({
  vision: { imageSize: 8, patchSize: 4, width: 16, layers: 1, heads: 2, intermediate: 16 },
  text: { vocabSize: tok.vocabSize, width: 16, layers: 2, heads: 2, kvHeads: 2, intermediate: 16, tieEmbeddings: tie },
  imageTokenId: tok.specials.image,
});

async function logitsOf(model: MultimodalModel): Promise<Float32Array> {
  const image = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i));
  const b = collate([{ image, prompt: 'what color is it ?', answer: 'red' }, { image: null, prompt: 'blue', answer: 'red' }], tok, model.config);
  return (await noGrad(() => tidy(() => model.forward(b.input).logits)).toArray()) as Float32Array;
}

describe('saveModel / loadModel', () => {
  for (const tie of [true, false]) {
    it(`round-trips to identical logits (tied: ${tie}), and the IO layer lists exactly the model's parameters`, async () => {
      const model = new MultimodalModel(rt, config(tie), { seed: 21 });
      const expected = [...llavaParameterShapes(model.config)].map(([n, s]) => `${n}:${s}`);
      expect(expected).toEqual([...model.namedParameters()].map(([n, p]) => `${n}:${p.shape}`));
      const out = join(dir, `m${tie}`);
      await saveModel(out, model, tok);
      const loaded = await loadModel(rt, out);
      expect(loaded.unused).toEqual([]);
      expect(loaded.tokenizer.encode('what color is it ?')).toEqual(tok.encode('what color is it ?'));
      expect(await logitsOf(loaded.model)).toEqual(await logitsOf(model));
      model.dispose();
      loaded.model.dispose();
    });
  }

  it('names the file when the weights are truncated or config.json is broken', async () => {
    const model = new MultimodalModel(rt, config(true), { seed: 22 });
    const out = join(dir, 'broken');
    await saveModel(out, model, tok);
    model.dispose();
    const weights = join(out, 'model.safetensors');
    const bytes = await readFile(weights);
    await truncate(weights, bytes.length - 10);
    await expect(loadModel(rt, out)).rejects.toThrow(/model\.safetensors/);
    await writeFile(weights, bytes);
    await writeFile(join(out, 'config.json'), '{"model_type": "llava", ');
    await expect(loadModel(rt, out)).rejects.toThrow(/config\.json/);
  });
});
