import { Runtime } from '@keel/kernels';
import { MultimodalModel, WordTokenizer, collate, getTask, toExample, vocabularyWords, type MllmConfigInput } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateTargetUpstream, harmonicMean, protocolScores } from './scores.js';
import { tune, tuneRunIdentity } from './tune.js';
import { BENCH_SUITE, QUICK_SUITE } from './suite.js';
import { applyTuning, type TuningConfigInput } from '../strategies/apply.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const tok = WordTokenizer.fromWords(vocabularyWords());
const tiny: MllmConfigInput = {
  vision: { imageSize: 16, patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 24 },
  projector: { hidden: 16 },
  text: { vocabSize: tok.vocabSize, width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 24, maxPositions: 64 },
  imageTokenId: tok.specials.image,
};
/** The same model with the resampler connector (no MLP hidden width: that field is the MLP's). */
const tinyResampler: MllmConfigInput = { ...tiny, projector: { type: 'resampler', queries: 4, layers: 1, heads: 2 } };

describe('protocol scores', () => {
  it('computes H, E, F, O from T and U against the base', () => {
    const s = protocolScores({ T: 0.8, U: 0.6 }, { T: 0.1, U: 0.9 });
    expect(s.H).toBeCloseTo((2 * 0.8 * 0.6) / 1.4, 12);
    expect(s.E).toBeCloseTo(0.7, 12);
    expect(s.F).toBeCloseTo(-0.3, 12);
    expect(s.O).toBeCloseTo(0.4, 12);
    expect(harmonicMean(0, 0)).toBe(0);
    expect(harmonicMean(1, 0)).toBe(0);
    expect(harmonicMean(0.5, 0.5)).toBe(0.5);
  });

  it('rejects scores that are not fractions, naming which', () => {
    expect(() => protocolScores({ T: 80, U: 0.6 }, { T: 0, U: 0.5 })).toThrow(/tuned T must be a fraction in \[0, 1\], got 80/);
    expect(() => protocolScores({ T: 0.8, U: 0.6 }, { T: 0, U: Number.NaN })).toThrow(/base U/);
  });
});

describe('evaluateTargetUpstream and tune', () => {
  it('scores every task on the same held-out draw; U is the general mean', async () => {
    const model = new MultimodalModel(rt, tiny, { seed: 3 });
    const e = await evaluateTargetUpstream(model, tok, { task: 'count', count: 4 });
    expect(Object.keys(e.scores)).toEqual(['count', 'caption', 'vqa', 'text']);
    expect(e.U).toBeCloseTo((e.scores.caption! + e.scores.vqa! + e.scores.text!) / 3, 12);
    expect(e.T).toBe(e.scores.count);
    await expect(evaluateTargetUpstream(model, tok, { task: 'vqa', count: 4 })).rejects.toThrow(/target task 'vqa' is also in the general suite/);
    model.dispose();
  });

  it('trains a method on a downstream task and reports the full row, deterministically', async () => {
    const run = async () => {
      const model = new MultimodalModel(rt, tiny, { seed: 3 });
      const r = await tune(model, tok, { config: { strategy: 'lora', r: 2, targets: ['language_model.**.q_proj'] }, task: 'mnist', steps: 4, batchSize: 4, lr: 1e-2, evalCount: 4, progressEvery: 2, evalEvery: 2 });
      const out = { losses: r.lossCurve, row: r.row, curve: r.evalCurve };
      r.handle.dispose();
      model.dispose();
      return out;
    };
    const a = await run();
    expect(a.losses.map(([s]) => s)).toEqual([2, 4]);
    expect(a.losses.every(([, l]) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(a.curve.map((p) => p.step)).toEqual([0, 2, 4]);
    expect(a.row).toMatchObject({ strategy: 'lora', task: 'mnist' });
    for (const k of ['T', 'U', 'H', 'E', 'F', 'O', 'trainable', 'trainable_pct', 'extra_state_bytes', 'peak_mb', 'sec_per_step', 'sec'] as const) expect(Number.isFinite(a.row[k]), k).toBe(true);
    expect(a.row.trainable).toBe(2 * (16 + 16)); // one q_proj, r·(I + O)
    expect(a.row.peak_mb).toBeGreaterThan(0);
    const b = await run();
    expect(b.losses).toEqual(a.losses);
  });

  it('rejects a general task as the target and bad budgets', async () => {
    const model = new MultimodalModel(rt, tiny, { seed: 3 });
    await expect(tune(model, tok, { config: { strategy: 'full' }, task: 'caption' })).rejects.toThrow(/'caption' is a general task/);
    await expect(tune(model, tok, { config: { strategy: 'full' }, task: 'mnist', steps: 0 })).rejects.toThrow(/steps must be a positive integer, got 0/);
    await expect(tune(model, tok, { config: { strategy: 'full' }, task: 'digits' })).rejects.toThrow(/digits/);
    model.dispose();
  });
});

describe('tuneRunIdentity', () => {
  it("passes the run's seed to a method with a seed field the config leaves unset, and only then", () => {
    expect(tuneRunIdentity({ config: { strategy: 'lora' }, task: 'mnist', seed: 5 }).config.seed).toBe(5);
    expect(tuneRunIdentity({ config: { strategy: 'hft' }, task: 'mnist', seed: 9 }).config.seed).toBe(9);
    expect(tuneRunIdentity({ config: { strategy: 'lora', seed: 2 }, task: 'mnist', seed: 5 }).config.seed).toBe(2);
    expect('seed' in tuneRunIdentity({ config: { strategy: 'full' }, task: 'mnist', seed: 5 }).config).toBe(false);
    expect(() => tuneRunIdentity({ config: { strategy: 'lora', r: 0 }, task: 'mnist', seed: 5 })).toThrow(/lora config is invalid: r/);
  });
});

describe('bench suite', () => {
  it.each(BENCH_SUITE.map((e) => [e.label, e] as const))('%s: its config passes the method schema', (_, entry) => {
    expect(() => tuneRunIdentity({ config: entry.config, task: 'mnist' })).not.toThrow();
  });
  // Every row must run unchanged on every connector family: its connector targets are the
  // `connector.**` alias, and methods without targets must find their modules in both.
  it.each(BENCH_SUITE.flatMap((e) => (['mlp', 'resampler'] as const).map((arch) => [e.label, arch, e] as const)))('%s applies to a tiny %s model and trains a step', async (_, arch, entry) => {
    const model = new MultimodalModel(rt, arch === 'mlp' ? tiny : tinyResampler, { seed: 3 });
    try {
      const examples = (await getTask('vqa').samples('train', 2, 0, { size: model.config.vision.imageSize })).map(toExample);
      const batch = collate(examples, tok, model.config);
      const handle = applyTuning(model, entry.config as TuningConfigInput, { generalBatches: [batch] });
      try {
        await handle.ready();
        const names = [...handle.trainableParameters().keys()];
        expect(names.length).toBeGreaterThan(0);
        const targets = (entry.config.targets ?? []) as string[];
        if (targets.includes('connector.**')) expect(names.some((n) => n.startsWith('multi_modal_projector.')), 'a connector tensor trains').toBe(true);
        expect(Number.isFinite(await handle.trainStep(handle.optimizer({ lr: entry.lr }), batch))).toBe(true);
      } finally {
        handle.dispose();
      }
    } finally {
      model.dispose();
    }
  });
  it('the quick suite is a subset of the bench suite with ≥ 6 methods', () => {
    expect(QUICK_SUITE.length).toBeGreaterThanOrEqual(6);
    for (const e of QUICK_SUITE) expect(BENCH_SUITE).toContain(e);
  });
});
