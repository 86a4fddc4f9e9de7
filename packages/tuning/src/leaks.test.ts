/**
 * Long training loops must not leak GPU memory: for every strategy family, the runtime's live
 * storage buffers and bytes after the last step equal those after warm-up step 10, and dispose()
 * returns them to what they were before applyTuning. Each step allocates and frees dozens of
 * buffers (activations, gradients, masks, scores), so one forgotten release grows these counts
 * linearly and shows up here long before a real run runs out of device memory.
 *
 * Budget: a step takes ~10–35 ms on the 2-core lavapipe machine, so the whole table at 1,000 steps
 * would take ~3 min. full and spider (the two paths that matter most: plain AdamW over every base
 * tensor, and MaskedAdamW driven from optimizer hooks) run 1,000 steps; the other families run 200,
 * still 19 refreshes of topk's mask and 19 of HFT's rounds. The file takes ~65 s on an idle machine
 * (~100 s while another job shares the two cores).
 *
 * The model is the tiniest the config allows (1 layer, width 8, 4 patches); two batches of
 * different shapes (one with an image and a text-only row, one image row) alternate, so the pool
 * serves two sets of sizes as a real data stream does.
 * Non-goals: the uniform and readback pools (stats() reports storage only), host-memory leaks.
 */
import { Runtime, type RuntimeStats } from '@keel/kernels';
import { MultimodalModel, WordTokenizer, collate, type MllmConfig, type MllmConfigInput, type TrainingBatch } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTuning, type TuningConfigInput } from './strategies/apply.js';

const tok = WordTokenizer.fromWords(['a', 'red', 'blue', 'circle', 'square', 'what', 'color', 'is', 'the', '?', 'yes', 'no', 'big']);
const tiniest: MllmConfigInput = {
  vision: { imageSize: 8, patchSize: 4, width: 8, layers: 1, heads: 2, intermediate: 8 },
  projector: { hidden: 8 },
  text: { vocabSize: tok.vocabSize, width: 8, layers: 1, heads: 2, kvHeads: 1, intermediate: 8, maxPositions: 32 },
  imageTokenId: tok.specials.image,
};
const WARMUP = 10;

const image = (cfg: MllmConfig, seed: number) => Float32Array.from({ length: cfg.vision.channels * cfg.vision.imageSize ** 2 }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 0.8);

function batches(cfg: MllmConfig): [TrainingBatch, TrainingBatch] {
  return [
    collate(
      [
        { image: image(cfg, 1), prompt: 'what color is the circle ?', answer: 'red' },
        { image: null, prompt: 'is the circle blue ?', answer: 'no' },
      ],
      tok,
      cfg,
    ),
    collate([{ image: image(cfg, 2), prompt: 'is the square big ?', answer: 'yes' }], tok, cfg),
  ];
}

interface Family {
  label: string;
  config: TuningConfigInput;
  steps: number;
}

// topk and hft refresh every 10 steps so their periodic paths (new mask, new round) run many times.
const FAMILIES: Family[] = [
  { label: 'full (selective, plain AdamW)', config: { strategy: 'full' }, steps: 1000 },
  { label: 'spider (MaskedAdamW + hooks)', config: { strategy: 'spider' }, steps: 1000 },
  { label: 'topk (hard mask, grad_sum, refresh 10)', config: { strategy: 'topk', score: 'grad_sum', refresh: 10 }, steps: 200 },
  { label: 'hft (round 10)', config: { strategy: 'hft', round: 10 }, steps: 200 },
  { label: 'lora (r 2)', config: { strategy: 'lora', r: 2 }, steps: 200 },
  { label: 'adapter (houlsby, bottleneck 2)', config: { strategy: 'adapter', bottleneck: 2 }, steps: 200 },
  { label: 'prompt (2 tokens)', config: { strategy: 'prompt', tokens: 2 }, steps: 200 },
  { label: 'ia3', config: { strategy: 'ia3' }, steps: 200 },
  { label: 'l2sp (extraLoss path)', config: { strategy: 'l2sp', lambda: 0.1 }, steps: 200 },
];

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const live = (s: RuntimeStats) => ({ liveBuffers: s.liveBuffers, liveBytes: s.liveBytes });

describe('no GPU memory leaks over long training loops', () => {
  for (const f of FAMILIES) {
    it(
      `${f.label}: ${f.steps} steps keep live buffers flat; dispose() frees everything it allocated`,
      async () => {
        const beforeModel = live(rt.stats());
        const model = new MultimodalModel(rt, tiniest, { seed: 5 });
        const data = batches(model.config);
        const beforeApply = live(rt.stats());
        const handle = applyTuning(model, f.config, { generalBatches: [data[0]] });
        // maxNorm: the clipped-gradient path (spider.ts appliedGradient) allocates its own buffers
        const opt = handle.optimizer({ lr: 1e-3, maxNorm: 1 });
        let warm: RuntimeStats | null = null;
        for (let step = 1; step <= f.steps; step++) {
          const loss = await handle.trainStep(opt, data[step % 2]!);
          if (!Number.isFinite(loss)) throw new Error(`${f.label}: loss ${loss} at step ${step}`);
          if (step === WARMUP) warm = rt.stats();
        }
        const end = rt.stats();
        expect(live(end), `${f.label}: live storage after step ${f.steps} vs after step ${WARMUP}`).toEqual(live(warm!));
        // The pool reaches its steady set of buffers during warm-up; creating more afterwards means
        // buffers are dropped without release() or never reused, which grows device memory as well.
        expect(end.created, `${f.label}: buffers the pool created by step ${f.steps} vs by step ${WARMUP}`).toBe(warm!.created);

        handle.dispose();
        expect(live(rt.stats()), `${f.label}: live storage after dispose() vs before applyTuning`).toEqual(beforeApply);
        model.dispose();
        expect(live(rt.stats()), `${f.label}: live storage after model.dispose() vs before the model`).toEqual(beforeModel);
      },
      f.steps * 200,
    );
  }
});
