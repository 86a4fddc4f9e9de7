/**
 * Stage 1 of pre-training: the vision tower alone learns dense scene parsing (data/scene-parse.ts)
 * through a temporary linear head on its patch features — per patch, three softmax heads (shape,
 * colour, size, each with a 'none' class), loss = the sum of their mean cross-entropies. The head is
 * thrown away afterwards; only the tower's weights carry over into stage 2 (pretrain.ts), which then
 * trains the whole model on the general suite.
 *
 * The connector is not involved, so the stage is the same for every connector family.
 * Recipe: AdamW (weight decay 0.01 on matrices), warmup over the first tenth (at most 30 steps),
 * cosine to 10 % of the peak lr, gradient-norm clipping at 1. Fresh scenes every step from a
 * seeded stream: deterministic from the seed on a given device.
 * Non-goals: checkpoints inside this stage (it is short; a run interrupted in it starts over).
 */
import { AdamW, Linear, add, backward, cosineSchedule, crossEntropy, narrow, reshape, tensor, tidy, type Tensor } from '@keel/autograd';
import { parseScene, parseTargets, PARSE_CLASSES, PARSE_HEADS } from '../data/scene-parse.js';
import { Rng, streamSeed } from '../data/prng.js';
import { sceneImage } from '../data/world.js';
import type { MultimodalModel } from '../model/mllm.js';
import { patchTensor } from '../model/vision.js';
import { decayGroups } from './loop.js';

export interface VisionPretrainOptions {
  steps: number;
  /** Scenes per step. */
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
  seed: number;
  /** Called every `progressEvery` steps and at the last with the mean loss since the previous call. */
  onProgress?: (step: number, loss: number) => void;
  progressEvery?: number;
}

export interface VisionPretrainResult {
  /** [step, mean loss] at each progress point. */
  lossCurve: [number, number][];
  seconds: number;
}

/** Runs stage 1 on `model.vision_tower` in place (file comment). */
export async function pretrainVision(model: MultimodalModel, o: VisionPretrainOptions): Promise<VisionPretrainResult> {
  for (const [k, v] of Object.entries({ steps: o.steps, batchSize: o.batchSize })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`pretrainVision: ${k} must be a positive integer, got ${v}`);
  }
  if (!(o.lr > 0)) throw new Error(`pretrainVision: lr must be > 0, got ${o.lr}`);
  const rt = model.rt;
  const c = model.config.vision;
  const S = c.imageSize;
  const P = (S / c.patchSize) ** 2;
  const B = o.batchSize;
  const sizes = PARSE_HEADS.map((h) => PARSE_CLASSES[h].length);
  const head = new Linear(rt, c.width, sizes.reduce((a, b) => a + b, 0), { seed: streamSeed('vision-parse-head', o.seed) });
  const tower = model.vision_tower;
  const optimizer = new AdamW(rt, decayGroups([...tower.namedParameters(), ...head.namedParameters()], 0.01), {
    lr: o.lr,
    maxNorm: 1,
    schedule: cosineSchedule({ warmup: Math.min(30, Math.floor(o.steps / 10)), total: o.steps, minRatio: 0.1 }),
  });
  const rng = new Rng(streamSeed('vision-parse-scenes', o.seed));
  const every = o.progressEvery ?? 50;
  const lossCurve: [number, number][] = [];
  let recent = 0;
  let recentCount = 0;
  const start = performance.now();
  try {
    for (let step = 1; step <= o.steps; step++) {
      const images = new Float32Array(B * c.channels * S * S);
      const labels = PARSE_HEADS.map(() => new Int32Array(B * P));
      for (let b = 0; b < B; b++) {
        const scene = parseScene(rng, 'train');
        images.set(sceneImage(scene, S), b * c.channels * S * S);
        const t = parseTargets(scene, S, c.patchSize);
        PARSE_HEADS.forEach((h, i) => labels[i]!.set(t[h], b * P));
      }
      const loss = tidy(() => {
        const features = reshape(tower.forward(patchTensor(rt, images, B, model.config)), [B * P, c.width]);
        const logits = head.forward(features);
        let total: Tensor | null = null;
        let offset = 0;
        sizes.forEach((n, i) => {
          const l = crossEntropy(narrow(logits, 1, offset, n), tensor(rt, labels[i]!, [B * P], { dtype: 'i32' }));
          total = total ? add(total, l) : l;
          offset += n;
        });
        backward(total!);
        return total!;
      });
      try {
        optimizer.step();
        tower.zeroGrad();
        head.zeroGrad();
        const value = await loss.item();
        if (!Number.isFinite(value)) throw new Error(`pretrainVision: the loss became ${value} at step ${step}; lower lr (${o.lr})`);
        recent += value;
        recentCount++;
      } finally {
        loss.dispose();
      }
      if (step % every === 0 || step === o.steps) {
        lossCurve.push([step, recent / recentCount]);
        o.onProgress?.(step, recent / recentCount);
        recent = 0;
        recentCount = 0;
      }
    }
  } finally {
    optimizer.dispose();
    head.dispose();
  }
  return { lossCurve, seconds: (performance.now() - start) / 1000 };
}
