/**
 * The bases shipped in @keel/mllm (one per architecture preset): each loads as the architecture it
 * is filed under, its card and metrics.json describe the weights next to them (the scores in the card
 * are metrics.json's), and the resampler base, a connector swap, names the mlp base's weights as its
 * init by their digest.
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

it("the resampler base's init is the mlp base's weights, its connector fresh", async () => {
  const metrics = JSON.parse(await readFile(join(bundledBasePath('resampler'), 'metrics.json'), 'utf8'));
  const mlpWeights = await readFile(join(bundledBasePath('mlp'), 'model.safetensors'));
  expect(metrics.init.digest).toBe(`sha256:${createHash('sha256').update(mlpWeights).digest('hex')}`);
  expect(metrics.init.connectorSwap).toEqual({ from: 'mlp', fresh: 'multi_modal_projector.' });
  expect(metrics.init.command).toBe(JSON.parse(await readFile(join(bundledBasePath('mlp'), 'metrics.json'), 'utf8')).command);
});
