/**
 * The invariant table every registered strategy must pass (checks (a)–(e): invariant-harness.ts),
 * plus (f) bad configs fail with messages naming the field, the pattern or the strategy.
 * A strategy registered without a row in CASES fails the coverage test.
 */
import { Runtime } from '@keel/kernels';
import { Linear } from '@keel/autograd';
import { MultimodalModel } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTuning } from './apply.js';
import { checkInvariants, fixedBatch, logitsOf, maxDiff, same, small, SEED, type Case } from './invariant-harness.js';
import { registerBuiltinStrategies } from './builtin.js';
import { getStrategy, listStrategies, registerStrategy } from './registry.js';
import { NORM_TARGETS, lastDecoderLayers } from './targets.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
  registerBuiltinStrategies();
});
afterAll(() => rt.destroy());

const PROJ = (n: string) => n.startsWith('multi_modal_projector.');
const HFT_TARGETS = ['multi_modal_projector.**', 'language_model.model.norm'];
const HFT_CHANGES = (n: string) => PROJ(n) || n === 'language_model.model.norm.weight';

const CASES: Case[] = [
  { label: 'full (every parameter)', config: { strategy: 'full' }, lr: 1e-3, changes: () => true },
  { label: 'full (projector only)', config: { strategy: 'full', targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: (n) => n.startsWith('multi_modal_projector.') },
  {
    label: 'full (last decoder layer + final norm)',
    config: { strategy: 'full', targets: [...lastDecoderLayers({ config: { text: { layers: 2 } } }, 1), 'language_model.model.norm'] },
    lr: 1e-2,
    changes: (n) => n.startsWith('language_model.model.layers.1.') || n === 'language_model.model.norm.weight',
  },
  { label: 'full (norms only)', config: { strategy: 'full', targets: [...NORM_TARGETS] }, lr: 3e-2, changes: (n) => /(layer_norm\d|layrnorm|layernorm|model\.norm)\.(weight|bias)$/.test(n) },
  { label: 'bitfit', config: { strategy: 'bitfit' }, lr: 3e-2, changes: (n) => n.endsWith('.bias') },
  { label: 'hft (round 1, seed 0, projector + final norm)', config: { strategy: 'hft', round: 1, seed: 0, targets: HFT_TARGETS }, lr: 1e-2, changes: HFT_CHANGES, extraStateFactor: 1 },
  { label: 'hft (round 2, seed 1, projector + final norm)', config: { strategy: 'hft', round: 2, seed: 1, targets: HFT_TARGETS }, lr: 1e-2, changes: HFT_CHANGES, extraStateFactor: 1 },
  { label: 'spider (every parameter)', config: { strategy: 'spider' }, lr: 1e-2, changes: () => true, extraStateFactor: 3 },
  { label: 'spider (projector + last decoder layer)', config: { strategy: 'spider', targets: ['multi_modal_projector.**', 'language_model.model.layers.1'] }, lr: 1e-2, changes: (n) => PROJ(n) || n.startsWith('language_model.model.layers.1.'), extraStateFactor: 3 },
  { label: 'topk (snip, per tensor, k 0.1)', config: { strategy: 'topk' }, lr: 1e-2, changes: () => true, extraStateFactor: 1 },
  { label: 'topk (magnitude, global, k 0.5, projector weights)', config: { strategy: 'topk', score: 'magnitude', scope: 'global', k: 0.5, targets: ['multi_modal_projector.*.weight'] }, lr: 1e-2, changes: (n) => PROJ(n) && n.endsWith('.weight'), extraStateFactor: 1 },
  { label: 'topk (grad_sum, global, k 0.3, refresh 1, projector)', config: { strategy: 'topk', score: 'grad_sum', scope: 'global', k: 0.3, refresh: 1, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: PROJ, extraStateFactor: 2 },
  { label: 'topk (fisher, per tensor, k 0.2, refresh 2)', config: { strategy: 'topk', score: 'fisher', k: 0.2, refresh: 2 }, lr: 1e-2, changes: () => true, extraStateFactor: 2 },
  { label: 'magnitude_mask (p 0.5, every parameter)', config: { strategy: 'magnitude_mask' }, lr: 1e-2, changes: () => true, extraStateFactor: 1 },
  { label: 'magnitude_mask (p 0.9, projector)', config: { strategy: 'magnitude_mask', p: 0.9, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: PROJ, extraStateFactor: 1 },
  { label: 'l2sp (every parameter)', config: { strategy: 'l2sp', lambda: 0.1 }, lr: 1e-3, changes: () => true },
  { label: 'l2sp (projector)', config: { strategy: 'l2sp', lambda: 1, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: PROJ },
  { label: 'ewc (every parameter)', config: { strategy: 'ewc', lambda: 0.1 }, lr: 1e-3, changes: () => true, extraStateFactor: 2 },
  { label: 'ewc (last decoder layer)', config: { strategy: 'ewc', lambda: 1, targets: ['language_model.model.layers.1'] }, lr: 1e-2, changes: (n) => n.startsWith('language_model.model.layers.1.'), extraStateFactor: 2 },
  { label: 'wise_ft (every parameter, α = 0.5)', config: { strategy: 'wise_ft' }, lr: 1e-3, changes: () => true },
  { label: 'wise_ft (projector, α = 0.3)', config: { strategy: 'wise_ft', alpha: 0.3, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: PROJ },
  { label: 'dare (every parameter, p = 0.5)', config: { strategy: 'dare', p: 0.5, seed: 3 }, lr: 1e-3, changes: () => true },
  { label: 'dare (decoder MLPs, p = 0.9)', config: { strategy: 'dare', targets: ['language_model.**.mlp'] }, lr: 1e-2, changes: (n) => /^language_model\.model\.layers\.\d\.mlp\./.test(n) },
  { label: 'ties (every parameter, density 0.2)', config: { strategy: 'ties' }, lr: 1e-3, changes: () => true },
  { label: 'ties (projector, density 0.5, λ = 1.5)', config: { strategy: 'ties', density: 0.5, lambda: 1.5, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: PROJ },
  { label: 'adapter (o_proj + down_proj, bottleneck 4, gelu)', config: { strategy: 'adapter', bottleneck: 4 }, lr: 1e-2, changes: null },
  { label: 'adapter (relu, o_proj + projector, bottleneck 2)', config: { strategy: 'adapter', bottleneck: 2, activation: 'relu', targets: ['language_model.**.o_proj', 'multi_modal_projector.linear_2'] }, lr: 1e-2, changes: null },
  { label: 'prompt (4 vocab tokens)', config: { strategy: 'prompt', tokens: 4 }, lr: 1e-2, changes: null, identityAtInit: false },
  { label: 'prompt (2 random tokens)', config: { strategy: 'prompt', tokens: 2, init: 'random', seed: 3 }, lr: 1e-2, changes: null, identityAtInit: false },
  { label: 'prefix (4 tokens)', config: { strategy: 'prefix', tokens: 4 }, lr: 1e-2, changes: null, identityAtInit: false },
  { label: 'prefix (3 tokens, MLP reparameterization)', config: { strategy: 'prefix', tokens: 3, reparameterize: true, encoderHidden: 8 }, lr: 1e-2, changes: null, identityAtInit: false },
  { label: 'ia3 (k, v, down_proj)', config: { strategy: 'ia3' }, lr: 3e-2, changes: null },
  { label: 'ia3 (every linear; biased vision/projector layers)', config: { strategy: 'ia3', targets: ['**'], feedforward: ['**.down_proj', '**.fc2', 'multi_modal_projector.linear_2'] }, lr: 3e-2, changes: null },
  { label: 'lora (default q/v targets)', config: { strategy: 'lora', r: 4, alpha: 8 }, lr: 1e-2, changes: null },
  { label: 'lora (rsLoRA, every linear)', config: { strategy: 'lora', r: 2, alpha: 4, rslora: true, targets: ['**'] }, lr: 1e-2, changes: null },
  { label: 'lora (init pissa)', config: { strategy: 'lora', r: 4, alpha: 8, init: 'pissa' }, lr: 1e-2, changes: null, extraStateFactor: 2 },
  { label: 'dora (default q/v targets)', config: { strategy: 'dora', r: 4, alpha: 8 }, lr: 1e-2, changes: null },
  { label: 'dora (rsLoRA, projector)', config: { strategy: 'dora', r: 2, alpha: 4, rslora: true, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: null },
  { label: 'dora (init pissa, v_proj)', config: { strategy: 'dora', r: 5, alpha: 10, init: 'pissa', targets: ['language_model.**.v_proj'] }, lr: 1e-2, changes: null, extraStateFactor: 31 / 16 },
];

describe('invariant table', () => {
  it('covers every registered strategy', () => {
    const covered = new Set(CASES.map((c) => c.config.strategy));
    expect(listStrategies().map((d) => d.name).filter((n) => !covered.has(n))).toEqual([]);
  });

  for (const c of CASES) {
    it(c.label, () => checkInvariants(rt, c));
  }
});

describe('LoRA specifics', () => {
  it('saves PEFT key names and config fields; counts r·(I + O) per target', async () => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    const handle = applyTuning(model, { strategy: 'lora', r: 4, alpha: 16, rslora: true });
    const mods = [...model.namedModules()].filter(([p]) => /^language_model\..*\.(q|v)_proj$/.test(p)) as [string, Linear][];
    expect(mods.length).toBe(4);
    expect(handle.numTrainable()).toBe(mods.reduce((s, [, l]) => s + 4 * (l.inFeatures + l.outFeatures), 0));
    const files = await handle.toFiles({ baseModel: 'keel/base' });
    const json = JSON.parse(files.configJson);
    expect(json).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 16, lora_dropout: 0, use_rslora: true, target_modules: mods.map(([p]) => p), base_model_name_or_path: 'keel/base' });
    const header = new TextDecoder().decode(files.safetensors.subarray(8, 8 + Number(new DataView(files.safetensors.buffer, files.safetensors.byteOffset).getBigUint64(0, true))));
    const keys = Object.keys(JSON.parse(header)).filter((k) => k !== '__metadata__');
    expect(keys).toContain('base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(JSON.parse(header)['base_model.model.language_model.model.layers.0.self_attn.v_proj.lora_B.weight'].shape).toEqual([8, 4]);
    handle.dispose();
    model.dispose();
  });

  it('dispose() without merge uninstalls the adapter: the base function is back', async () => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    const batch = fixedBatch(model.config);
    const base = await logitsOf(model, batch);
    const handle = applyTuning(model, { strategy: 'lora', r: 2, targets: ['multi_modal_projector.**'] });
    const opt = handle.optimizer({ lr: 1e-2 });
    for (let i = 0; i < 2; i++) await handle.trainStep(opt, batch);
    expect(maxDiff(await logitsOf(model, batch), base)).toBeGreaterThan(1e-4);
    handle.dispose();
    expect(same(await logitsOf(model, batch), base)).toBe(true);
    expect(() => lastDecoderLayers(model, 3)).toThrow(/n must be an integer in \[1, 2\].*got 3/);
    model.dispose();
  });
});

describe('config validation', () => {
  const withModel = (fn: (m: MultimodalModel) => void) => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    try {
      fn(model);
    } finally {
      model.dispose();
    }
  };

  it('rejects rank 0, and lists every bad field by path', () => {
    withModel((m) => {
      expect(() => applyTuning(m, { strategy: 'lora', r: 0 })).toThrow(/lora config is invalid: r: rank r must be > 0/);
      let msg = '';
      try {
        applyTuning(m, { strategy: 'lora', r: 1.5, alpha: -1, targets: [], rank: 4 });
      } catch (e) {
        msg = (e as Error).message;
      }
      for (const part of ['r: rank r must be an integer', 'alpha: alpha must be > 0', 'targets: give at least one target pattern', 'rank']) expect(msg).toContain(part);
      expect(() => applyTuning(m, { strategy: 'lora', dropout: 0.1 })).toThrow(/dropout: dropout > 0 is not supported/);
      expect(() => applyTuning(m, { strategy: 'lora', dropout: 1 })).toThrow(/dropout must be in \[0, 1\)/);
      // a rejected config installs nothing
      for (const [, mod] of m.namedModules()) if (mod instanceof Linear) expect(mod.hooks).toEqual([]);
    });
  });

  it('names target patterns that match nothing', () => {
    withModel((m) => {
      expect(() => applyTuning(m, { strategy: 'lora', targets: ['language_model.**.q_proj', 'language_model.**.qkv'] })).toThrow(/lora: target pattern 'language_model\.\*\*\.qkv' matches no Linear module/);
      for (const [, mod] of m.namedModules()) if (mod instanceof Linear) expect(mod.hooks).toEqual([]);
      expect(() => applyTuning(m, { strategy: 'full', targets: ['projector.**'] })).toThrow(/full: target pattern 'projector\.\*\*' matches no parameter/);
      expect(() => applyTuning(m, { strategy: 'bitfit', targets: ['language_model.**'] })).toThrow(/bitfit: target pattern 'language_model\.\*\*' matches no bias parameter/);
    });
  });

  it('names unknown strategies with the registered ones, and rejects duplicate registration', () => {
    withModel((m) => {
      expect(() => applyTuning(m, { strategy: 'qlora' })).toThrow(/unknown strategy "qlora"; registered strategies: full, bitfit, .*lora/);
      expect(() => applyTuning(m, {} as { strategy: string })).toThrow(/config\.strategy must be a strategy name/);
    });
    expect(() => registerStrategy(getStrategy('lora'))).toThrow(/'lora' is already registered/);
  });

  it('refuses to load an adapter of another strategy', async () => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    const lora = applyTuning(model, { strategy: 'lora', r: 2 });
    const files = await lora.toFiles();
    lora.dispose();
    const full = applyTuning(model, { strategy: 'full', targets: ['multi_modal_projector.**'] });
    expect(() => full.loadFiles(files, 'dir')).toThrow(/saved by strategy 'lora', this handle is 'full'/);
    full.dispose();
    model.dispose();
  });
});
