/**
 * The invariant table every registered strategy must pass, on a small random-init model and one
 * fixed batch (image and text rows):
 *   (e) one training step lowers the loss on the batch,
 *   (a) after a few steps exactly the intended base parameters changed (none for added methods),
 *   (d) disable() reproduces the base model's logits exactly; enable() the tuned ones exactly,
 *   (c) save → load into a fresh copy of the base model reproduces the tuned logits exactly,
 *   (b) merge() leaves the logits unchanged (atol 1e-5) and leaves no hook behind,
 *   (f) bad configs fail with messages naming the field, the pattern or the strategy.
 * A strategy registered without a row in CASES fails the coverage test.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '@keel/kernels';
import { Linear, noGrad, tidy } from '@keel/autograd';
import { MultimodalModel, WordTokenizer, answerLoss, collate, type MllmConfig, type MllmConfigInput, type TrainingBatch } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTuning, loadTuning } from './apply.js';
import { registerBuiltinStrategies } from './builtin.js';
import { getStrategy, listStrategies, registerStrategy } from './registry.js';
import { NORM_TARGETS, lastDecoderLayers } from './targets.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
  registerBuiltinStrategies();
});
afterAll(() => rt.destroy());

const tok = WordTokenizer.fromWords(['a', 'red', 'blue', 'circle', 'square', 'what', 'color', 'is', 'the', '?', 'yes', 'no', 'big']);
const small: MllmConfigInput = {
  vision: { imageSize: 8, patchSize: 4, width: 16, layers: 2, heads: 2, intermediate: 24 },
  projector: { hidden: 20 },
  text: { vocabSize: tok.vocabSize, width: 16, layers: 2, heads: 2, kvHeads: 1, intermediate: 24, maxPositions: 40 },
  imageTokenId: tok.specials.image,
};
const SEED = 11;

function image(cfg: MllmConfig, seed: number): Float32Array {
  const v = cfg.vision;
  return Float32Array.from({ length: v.channels * v.imageSize ** 2 }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 0.8);
}

function fixedBatch(cfg: MllmConfig): TrainingBatch {
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

const logitsOf = async (model: MultimodalModel, batch: TrainingBatch) => (await noGrad(() => tidy(() => model.forward(batch.input).logits)).toArray()) as Float32Array;
const lossOf = (model: MultimodalModel, batch: TrainingBatch) => noGrad(() => tidy(() => answerLoss(model, batch))).item();

async function weightsOf(model: MultimodalModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) out.set(name, (await p.toArray()) as Float32Array);
  return out;
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

interface Case {
  label: string;
  config: { strategy: string; [k: string]: unknown };
  lr: number;
  /** Which base parameters may change (selective methods); null: none may (added methods). */
  changes: ((name: string) => boolean) | null;
}

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
  { label: 'lora (default q/v targets)', config: { strategy: 'lora', r: 4, alpha: 8 }, lr: 1e-2, changes: null },
  { label: 'lora (rsLoRA, every linear)', config: { strategy: 'lora', r: 2, alpha: 4, rslora: true, targets: ['**'] }, lr: 1e-2, changes: null },
];

describe('invariant table', () => {
  it('covers every registered strategy', () => {
    const covered = new Set(CASES.map((c) => c.config.strategy));
    expect(listStrategies().map((d) => d.name).filter((n) => !covered.has(n))).toEqual([]);
  });

  for (const c of CASES) {
    it(c.label, async () => {
      const model = new MultimodalModel(rt, small, { seed: SEED });
      const batch = fixedBatch(model.config);
      const baseLogits = await logitsOf(model, batch);
      const before = await weightsOf(model);
      const handle = applyTuning(model, c.config);
      const trainable = handle.trainableParameters();
      const trainable0 = new Map<string, Float32Array>();
      for (const [name, p] of trainable) trainable0.set(name, (await p.toArray()) as Float32Array);
      expect(handle.numTrainable()).toBeGreaterThan(0);
      expect(handle.trainablePercent()).toBeGreaterThan(0);
      expect(handle.trainablePercent()).toBeLessThanOrEqual(100);
      // selective methods snapshot W0, added ones hold their tensors: both = trainable bytes
      expect(handle.extraStateBytes()).toBe(4 * handle.numTrainable());
      // installing a method must not change the function (LoRA's B = 0)
      expect(same(await logitsOf(model, batch), baseLogits), 'freshly applied = base').toBe(true);

      // (e) one step lowers the loss
      const opt = handle.optimizer({ lr: c.lr });
      const l0 = await lossOf(model, batch);
      const reported = await handle.trainStep(opt, batch);
      expect(reported).toBeCloseTo(l0, 5);
      const l1 = await lossOf(model, batch);
      expect(l1, `loss ${l0} → ${l1}`).toBeLessThan(l0);
      for (let i = 0; i < 2; i++) await handle.trainStep(opt, batch);

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
        const loaded = await loadTuning(fresh, dir);
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
    });
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
      expect(() => applyTuning(m, { strategy: 'qlora' })).toThrow(/unknown strategy "qlora"; registered strategies: full, bitfit, lora/);
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
