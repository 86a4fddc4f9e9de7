/**
 * The invariant table's fixture and checks, shared by invariants.test.ts (every built-in method) and
 * any test file that registers a method of its own. `checkInvariants(rt, case)` runs, on a small
 * random-init model and one fixed batch (image and text rows):
 *   (e) one training step lowers the loss on the batch,
 *   (a) after a few steps exactly the intended base parameters changed (none for added methods),
 *   post-hoc methods are finalized here (their transform is part of "tuned"),
 *   (d) disable() reproduces the base model's logits exactly; enable() the tuned ones exactly,
 *   (c) save → load into a fresh copy of the base model reproduces the tuned logits exactly,
 *   (b) merge() leaves the logits unchanged (atol 1e-5) and leaves no hook behind.
 * Test-only module (imports vitest's expect); not exported from the package.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runtime } from '@keel/kernels';
import { Linear, noGrad, tidy } from '@keel/autograd';
import { MultimodalModel, WordTokenizer, answerLoss, collate, type MllmConfig, type MllmConfigInput, type TrainingBatch } from '@keel/mllm';
import { expect } from 'vitest';
import { applyTuning, loadTuning } from './apply.js';

export const tok = WordTokenizer.fromWords(['a', 'red', 'blue', 'circle', 'square', 'what', 'color', 'is', 'the', '?', 'yes', 'no', 'big']);
export const small: MllmConfigInput = {
  vision: { imageSize: 8, patchSize: 4, width: 16, layers: 2, heads: 2, intermediate: 24 },
  projector: { hidden: 20 },
  text: { vocabSize: tok.vocabSize, width: 16, layers: 2, heads: 2, kvHeads: 1, intermediate: 24, maxPositions: 40 },
  imageTokenId: tok.specials.image,
};
export const SEED = 11;

export function image(cfg: MllmConfig, seed: number): Float32Array {
  const v = cfg.vision;
  return Float32Array.from({ length: v.channels * v.imageSize ** 2 }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 0.8);
}

export function fixedBatch(cfg: MllmConfig): TrainingBatch {
  return collate(
    [
      { image: image(cfg, 1), prompt: 'what color is the circle ?', answer: 'red' },
      { image: image(cfg, 2), prompt: 'is the square big ?', answer: 'yes' },
      { image: null, prompt: 'is the circle blue ?', answer: 'no' },
    ],
    tok,
    cfg,
  );
}

export const logitsOf = async (model: MultimodalModel, batch: TrainingBatch) => (await noGrad(() => tidy(() => model.forward(batch.input).logits)).toArray()) as Float32Array;
export const lossOf = (model: MultimodalModel, batch: TrainingBatch) => noGrad(() => tidy(() => answerLoss(model, batch))).item();

export async function weightsOf(model: MultimodalModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) out.set(name, (await p.toArray()) as Float32Array);
  return out;
}

export const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
export const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

export interface Case {
  label: string;
  config: { strategy: string; [k: string]: unknown };
  lr: number;
  /** Which base parameters may change (selective methods); null: none may (added methods). */
  changes: ((name: string) => boolean) | null;
  /** extraStateBytes() = factor · 4 · trainable count (default 1: a W0 snapshot, or the added tensors). */
  extraStateFactor?: number;
  /** Whether a freshly applied method computes the base function (default true; false for soft prompts and prefixes, which add attended tokens from the start). */
  identityAtInit?: boolean;
}

export async function checkInvariants(rt: Runtime, c: Case): Promise<void> {
  const model = new MultimodalModel(rt, small, { seed: SEED });
  const batch = fixedBatch(model.config);
  const baseLogits = await logitsOf(model, batch);
  const before = await weightsOf(model);
  const context = { generalBatches: [batch] };
  const handle = applyTuning(model, c.config, context);
  const trainable = handle.trainableParameters();
  const trainable0 = new Map<string, Float32Array>();
  for (const [name, p] of trainable) trainable0.set(name, (await p.toArray()) as Float32Array);
  expect(handle.numTrainable()).toBeGreaterThan(0);
  expect(handle.trainablePercent()).toBeGreaterThan(0);
  expect(handle.trainablePercent()).toBeLessThanOrEqual(100);
  // selective methods snapshot W0, added ones hold their tensors: both = trainable bytes
  expect(handle.extraStateBytes()).toBe((c.extraStateFactor ?? 1) * 4 * handle.numTrainable());
  // installing a method must not change the function (LoRA's B = 0)
  const fresh = await logitsOf(model, batch);
  if (c.identityAtInit ?? true) expect(same(fresh, baseLogits), 'freshly applied = base').toBe(true);
  else expect(maxDiff(fresh, baseLogits), 'freshly applied changes the function').toBeGreaterThan(0);

  // (e) one step lowers the loss
  const opt = handle.optimizer({ lr: c.lr });
  const l0 = await lossOf(model, batch);
  const reported = await handle.trainStep(opt, batch);
  expect(reported).toBeCloseTo(l0, 5);
  const l1 = await lossOf(model, batch);
  expect(l1, `loss ${l0} → ${l1}`).toBeLessThan(l0);
  for (let i = 0; i < 2; i++) await handle.trainStep(opt, batch);
  handle.finalize();
  expect(handle.finalized).toBe(true);

  // (a) only the intended parameters changed
  const after = await weightsOf(model);
  const changed = [...before.keys()].filter((n) => !same(before.get(n)!, after.get(n)!));
  if (c.changes) {
    const intended = [...before.keys()].filter(c.changes);
    expect(changed).toEqual(intended);
    expect([...trainable.keys()]).toEqual(intended);
  } else {
    expect(changed).toEqual([]);
    const moved = await Promise.all([...trainable].map(async ([name, p]) => !same(trainable0.get(name)!, (await p.toArray()) as Float32Array)));
    expect(moved.every(Boolean), 'every added tensor trained').toBe(true);
    for (const [name, p] of trainable) expect(p.grad, `${name} gradient cleared after the step`).toBeNull();
  }
  const tuned = await logitsOf(model, batch);
  expect(maxDiff(tuned, baseLogits)).toBeGreaterThan(1e-4);

  // (d) disabled = base exactly; enabled = tuned exactly
  handle.disable();
  expect(same(await logitsOf(model, batch), baseLogits), 'disabled = base').toBe(true);
  handle.enable();
  expect(same(await logitsOf(model, batch), tuned), 'enabled again = tuned').toBe(true);

  // (c) save → load into a fresh base model reproduces the outputs exactly
  const dir = await mkdtemp(join(tmpdir(), 'keel-adapter-'));
  try {
    await handle.save(dir);
    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(json.strategy).toBe(c.config.strategy);
    const fresh = new MultimodalModel(rt, small, { seed: SEED });
    const loaded = await loadTuning(fresh, dir, context);
    expect(loaded.config).toEqual(handle.config);
    expect(same(await logitsOf(fresh, batch), tuned), 'loaded = tuned').toBe(true);
    loaded.dispose();
    fresh.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // (b) merge keeps the function and leaves no hook
  if (handle.definition.mergeable) {
    handle.merge();
    expect(maxDiff(await logitsOf(model, batch), tuned)).toBeLessThanOrEqual(1e-5);
    for (const [path, m] of model.namedModules()) if (m instanceof Linear) expect(m.hooks, path).toEqual([]);
    expect(() => handle.disable()).toThrow(/merged/);
  }
  handle.dispose();
  expect(model.parameters().every((p) => p.requiresGrad)).toBe(true);
  model.dispose();
}
