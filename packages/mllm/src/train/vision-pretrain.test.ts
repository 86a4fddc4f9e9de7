/**
 * Stage 1 of pre-training: only the vision tower learns (the connector and the language model are
 * untouched bit for bit), the parse loss falls, a run is a function of its seed, and nothing it
 * allocated (the head, AdamW's moments) outlives it.
 */
import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveConfig } from '../config.js';
import { MultimodalModel } from '../model/mllm.js';
import { pretrainVision } from './vision-pretrain.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const config = resolveConfig({
  vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 32 },
  text: { vocabSize: 40, width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 },
  imageTokenId: 3,
});
const snapshot = async (m: MultimodalModel) => new Map(await Promise.all([...m.namedParameters()].map(async ([n, p]) => [n, Array.from((await p.toArray()) as Float32Array)] as const)));

it('trains the vision tower only, lowers the parse loss and frees what it allocated', async () => {
  const model = new MultimodalModel(rt, config, { seed: 1 });
  try {
    const before = await snapshot(model);
    const live = rt.stats().liveBuffers;
    const steps: number[] = [];
    const r = await pretrainVision(model, { steps: 60, batchSize: 8, lr: 1e-2, seed: 0, progressEvery: 10, onProgress: (s) => steps.push(s) });
    expect(rt.stats().liveBuffers).toBe(live);
    expect(steps).toEqual([10, 20, 30, 40, 50, 60]);
    expect(r.lossCurve.map(([s]) => s)).toEqual(steps);
    // three heads of 4, 7 and 3 classes start near ln 4 + ln 7 + ln 3 ≈ 4.43 and must fall well below
    expect(r.lossCurve[0]![1]).toBeGreaterThan(2);
    expect(r.lossCurve.at(-1)![1]).toBeLessThan(0.8 * r.lossCurve[0]![1]);
    const after = await snapshot(model);
    for (const [name, w] of after) {
      if (name.startsWith('vision_tower.')) continue;
      expect(w, name).toEqual(before.get(name));
    }
    const moved = [...after].filter(([name, w]) => name.startsWith('vision_tower.') && w.some((v, i) => v !== before.get(name)![i]));
    expect(moved.length).toBe([...after.keys()].filter((n) => n.startsWith('vision_tower.')).length);
  } finally {
    model.dispose();
  }
});

it('is a function of its seed', async () => {
  const run = async (seed: number) => {
    const model = new MultimodalModel(rt, config, { seed: 1 });
    try {
      const r = await pretrainVision(model, { steps: 3, batchSize: 2, lr: 1e-2, seed, progressEvery: 1 });
      return { curve: r.lossCurve, weights: await snapshot(model) };
    } finally {
      model.dispose();
    }
  };
  const a = await run(0);
  expect(await run(0)).toEqual(a);
  expect((await run(1)).curve).not.toEqual(a.curve);
});

it('names a bad option', async () => {
  const model = new MultimodalModel(rt, config, { seed: 1 });
  try {
    await expect(pretrainVision(model, { steps: 0, batchSize: 2, lr: 1e-2, seed: 0 })).rejects.toThrow('pretrainVision: steps must be a positive integer, got 0');
    await expect(pretrainVision(model, { steps: 1, batchSize: 2, lr: -1, seed: 0 })).rejects.toThrow('pretrainVision: lr must be > 0, got -1');
  } finally {
    model.dispose();
  }
});
