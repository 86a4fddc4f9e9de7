/**
 * The bases shipped in @keel/mllm (one per architecture preset): each loads as the architecture it
 * is filed under, its card and metrics.json describe the weights next to them (the scores in the card
 * are metrics.json's); the mlp base's card states its whole recipe, and the resampler base is a
 * connector swap from it: its init digest is the mlp base's weights', its vision tower is that
 * base's frozen tower, bit for bit.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Runtime } from '@keel/kernels';
import { ARCH_NAMES, GENERAL_TASKS } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledBasePath, loadCheckpoint } from './model-dir.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

describe.each(ARCH_NAMES)('the bundled %s base', (arch) => {
  it('loads as that architecture, and its card states metrics.json\'s scores', async () => {
    const dir = bundledBasePath(arch);
    const { model } = await loadCheckpoint(rt, dir);
    try {
      expect(model.config.projector.type).toBe(arch);
      const metrics = JSON.parse(await readFile(join(dir, 'metrics.json'), 'utf8'));
      expect(metrics.arch).toBe(arch);
      expect(metrics.parameters).toBe(model.numParameters());
      const card = await readFile(join(dir, 'README.md'), 'utf8');
      for (const task of GENERAL_TASKS) expect(card).toContain(`| ${task} | ${(100 * metrics.scores[task]).toFixed(1)} % |`);
      expect(card).toContain(metrics.command);
    } finally {
      model.dispose();
    }
  });
});

it("the mlp base kept its vision tower frozen, and its card names every run of its recipe", async () => {
  const dir = bundledBasePath('mlp');
  const metrics = JSON.parse(await readFile(join(dir, 'metrics.json'), 'utf8'));
  const card = await readFile(join(dir, 'README.md'), 'utf8');
  expect(metrics.freeze).toEqual(['vision_tower.**']);
  // a continuation: the card states the run that made its init weights, and the tower graft before it
  expect(card).toContain(metrics.init.command);
  expect(card).toContain('scripts/recipes/graft-tower.ts');
});

it("the resampler base is a connector swap from the bundled mlp base: that base's tower, bit for bit, and sin-cos patch positions", async () => {
  const dir = bundledBasePath('resampler');
  const mlpDir = bundledBasePath('mlp');
  const metrics = JSON.parse(await readFile(join(dir, 'metrics.json'), 'utf8'));
  const mlpMetrics = JSON.parse(await readFile(join(mlpDir, 'metrics.json'), 'utf8'));
  const digest = createHash('sha256').update(await readFile(join(mlpDir, 'model.safetensors'))).digest('hex');
  expect(metrics.init.digest).toBe(`sha256:${digest}`);
  expect(metrics.init.command).toBe(mlpMetrics.command);
  expect(metrics.init.connectorSwap).toEqual({ from: 'mlp', fresh: 'multi_modal_projector.' });
  expect(metrics.freeze).toEqual(['vision_tower.**']);
  const [resampler, mlp] = await Promise.all([loadCheckpoint(rt, dir), loadCheckpoint(rt, mlpDir)]);
  try {
    expect(resampler.model.config.projector).toMatchObject({ type: 'resampler', positions: 'sincos2d' });
    const mlpParams = mlp.model.namedParameters();
    const tower = [...resampler.model.namedParameters()].filter(([n]) => n.startsWith('vision_tower.'));
    expect(tower.length).toBe([...mlpParams.keys()].filter((n) => n.startsWith('vision_tower.')).length);
    for (const [name, p] of tower) expect(await p.toArray(), name).toEqual(await mlpParams.get(name)!.toArray());
  } finally {
    resampler.model.dispose();
    mlp.model.dispose();
  }
});
