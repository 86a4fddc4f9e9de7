/**
 * A pre-training run that fails after building its model frees that model: the caller never gets
 * it, so GPU memory held by its parameters would leak for the life of the runtime. A tiny model and
 * a learning rate that overflows the weights make the run stop at a non-finite loss within a few steps.
 */
import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pretrain } from './pretrain.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

it('a run stopped by a non-finite loss leaves no GPU memory behind', async () => {
  const before = rt.stats();
  const run = pretrain(rt, {
    steps: 6,
    batchSize: 2,
    pool: 4,
    evalCount: 1,
    // lr 1e30 drives the weights to ~1e30 after one update, so the next forward overflows f32
    lr: 1e30,
    config: { vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } },
  });
  await expect(run).rejects.toThrow(/^pretrain: the loss became (NaN|Infinity|-Infinity) at step [2-6]/);
  // the run did hold memory (the model, AdamW's moments) at its peak
  expect(rt.stats().peakLiveBytes).toBeGreaterThan(before.liveBytes);
  expect(rt.stats().liveBytes).toBe(before.liveBytes);
  expect(rt.stats().liveBuffers).toBe(before.liveBuffers);
});
