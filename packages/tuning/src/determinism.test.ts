/**
 * A tuning run is a pure function of its seed on a given device (tune.ts's recipe): two fresh runs
 * with the same seed give bit-identical per-step losses and trained tensors, and another seed gives
 * other losses. Covered for full (plain AdamW), spider (MaskedAdamW and its GPU-side importance
 * state) and lora (added tensors with seeded init) — the three optimizer paths of the benchmark.
 *
 * Each run builds its own model from the same init seed, so nothing but `seed` differs between runs.
 * Non-goals: equality across devices or drivers (reduction orders differ), the evaluation numbers.
 */
import { Runtime } from '@keel/kernels';
import { MultimodalModel, WordTokenizer, vocabularyWords, type MllmConfigInput } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tune } from './protocol/tune.js';
import type { TuningConfigInput } from './strategies/apply.js';

const tok = WordTokenizer.fromWords(vocabularyWords());
const tiny: MllmConfigInput = {
  vision: { imageSize: 16, patchSize: 8, width: 8, layers: 1, heads: 2, intermediate: 8 },
  projector: { hidden: 8 },
  text: { vocabSize: tok.vocabSize, width: 8, layers: 1, heads: 2, kvHeads: 1, intermediate: 8, maxPositions: 64 },
  imageTokenId: tok.specials.image,
};
const STEPS = 8;

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

interface Run {
  /** Mean loss of every step (progressEvery 1). */
  losses: number[];
  /** The trainable tensors after the last step, by name. */
  trained: Map<string, number[]>;
}

async function run(config: TuningConfigInput, seed: number): Promise<Run> {
  const model = new MultimodalModel(rt, tiny, { seed: 3 });
  const r = await tune(model, tok, { config, task: 'count', steps: STEPS, batchSize: 4, lr: 1e-2, seed, evalCount: 2, progressEvery: 1 });
  const trained = new Map<string, number[]>();
  for (const [name, p] of r.handle.trainableParameters()) trained.set(name, Array.from((await p.toArray()) as Float32Array));
  r.handle.dispose();
  model.dispose();
  return { losses: r.lossCurve.map(([, loss]) => loss), trained };
}

describe('tune() is deterministic from its seed', () => {
  const CONFIGS: TuningConfigInput[] = [{ strategy: 'full' }, { strategy: 'spider' }, { strategy: 'lora', r: 2 }];
  for (const config of CONFIGS) {
    it(`${config.strategy}: the same seed gives bit-identical losses and weights; another seed other losses`, async () => {
      const a = await run(config, 7);
      const b = await run(config, 7);
      expect(a.losses.length).toBe(STEPS);
      expect(a.losses.every(Number.isFinite), `losses: ${a.losses.join(', ')}`).toBe(true);
      // toEqual compares numbers with Object.is: bit-identical, not merely close
      expect(b.losses, `${config.strategy}: losses of two runs with seed 7`).toEqual(a.losses);
      expect(b.trained.size).toBe(a.trained.size);
      for (const [name, values] of a.trained) expect(b.trained.get(name), `${config.strategy}: trained '${name}' of two runs with seed 7`).toEqual(values);

      const c = await run(config, 8);
      expect(c.losses, `${config.strategy}: losses with seed 8 equal those with seed 7`).not.toEqual(a.losses);
    });
  }
});
