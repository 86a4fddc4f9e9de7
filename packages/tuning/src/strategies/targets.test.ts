/**
 * The `connector` alias of target patterns (targets.ts): on an MLP-projector model and on a
 * resampler model, `connector.**` selects exactly the connector's parameters and Linear modules, and
 * LoRA with targets ['connector.**'] adapts every connector Linear and trains.
 */
import { Linear } from '@keel/autograd';
import { Runtime } from '@keel/kernels';
import { MultimodalModel, resolveConfig, type MllmConfigInput } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTuning } from './apply.js';
import { fixedBatch, lossOf, SEED, small } from './invariant-harness.js';
import { CONNECTOR_MODULE, resolveTargetAlias, selectLinears, selectParameters, targetRegExp } from './targets.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

// width 8 ≠ the text width 16, so the resampler also has its output_projection
const resampler: MllmConfigInput = { ...small, projector: { type: 'resampler', queries: 4, layers: 1, heads: 2, width: 8 } };
const MODELS = [
  ['mlp', small],
  ['resampler', resampler],
] as const;

const underConnector = (name: string) => name.startsWith(`${CONNECTOR_MODULE}.`);

describe('connector alias', () => {
  it('rewrites only a leading `connector` segment', () => {
    expect(resolveTargetAlias('connector.**')).toBe('multi_modal_projector.**');
    expect(resolveTargetAlias('connector')).toBe('multi_modal_projector');
    expect(resolveTargetAlias('connector.layers.*.cross_attn.q_proj')).toBe('multi_modal_projector.layers.*.cross_attn.q_proj');
    for (const p of ['connectors.**', '**.connector', 'language_model.**', 'connector_x', 'multi_modal_projector.**']) expect(resolveTargetAlias(p)).toBe(p);
    expect(targetRegExp('connector.**').test('multi_modal_projector.linear_1.weight')).toBe(true);
    expect(targetRegExp('connector.**').test('language_model.model.norm.weight')).toBe(false);
  });

  it.each(MODELS)('%s: connector.** selects exactly the connector parameters and Linear modules', (_, config) => {
    const model = new MultimodalModel(rt, config, { seed: SEED });
    try {
      const params = [...model.namedParameters().keys()];
      const wanted = params.filter(underConnector);
      expect(wanted.length).toBeGreaterThan(0);
      expect([...selectParameters(model, ['connector.**'], 'test').keys()]).toEqual(wanted);
      expect([...selectParameters(model, ['connector'], 'test').keys()]).toEqual(wanted);
      const linears = [...model.namedModules()].filter(([p, m]) => m instanceof Linear && underConnector(p)).map(([p]) => p);
      expect([...selectLinears(model, ['connector.**'], 'test').keys()]).toEqual(linears);
      if (model.config.projector.type === 'resampler') {
        expect(wanted).toContain('multi_modal_projector.latents');
        expect(linears).toEqual(expect.arrayContaining(['multi_modal_projector.layers.0.cross_attn.q_proj', 'multi_modal_projector.layers.0.mlp.fc2', 'multi_modal_projector.modality_projection', 'multi_modal_projector.output_projection']));
      } else {
        expect(linears).toEqual(['multi_modal_projector.linear_1', 'multi_modal_projector.linear_2']);
      }
    } finally {
      model.dispose();
    }
  });

  it("a family's own names still need that family, and the error quotes the pattern as written", () => {
    const model = new MultimodalModel(rt, resampler, { seed: SEED });
    try {
      expect(() => selectLinears(model, ['connector.linear_1'], 'lora')).toThrow(/lora: target pattern 'connector\.linear_1' matches no Linear module \(Linear modules are named like/);
    } finally {
      model.dispose();
    }
  });

  it.each(MODELS)("%s: LoRA with targets ['connector.**'] adapts every connector Linear and trains", async (_, config) => {
    const model = new MultimodalModel(rt, config, { seed: SEED });
    try {
      const linears = [...model.namedModules()].filter((e): e is [string, Linear] => e[1] instanceof Linear && underConnector(e[0]));
      const r = 2;
      const handle = applyTuning(model, { strategy: 'lora', r, targets: ['connector.**'] });
      try {
        const names = [...handle.trainableParameters().keys()];
        expect(names).toEqual(linears.flatMap(([p]) => [`${p}.lora_A`, `${p}.lora_B`]));
        expect(handle.numTrainable()).toBe(linears.reduce((s, [, l]) => s + r * (l.inFeatures + l.outFeatures), 0));
        const batch = fixedBatch(resolveConfig(config));
        const before = await lossOf(model, batch);
        const opt = handle.optimizer({ lr: 1e-2 });
        for (let i = 0; i < 3; i++) await handle.trainStep(opt, batch);
        expect(await lossOf(model, batch)).toBeLessThan(before);
      } finally {
        handle.dispose();
      }
    } finally {
      model.dispose();
    }
  });
});
