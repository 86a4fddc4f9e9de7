/**
 * Continued pre-training and question-type weights (pretrain.ts): a run can start stage 2 from
 * existing weights, and draw some question types more often within their task.
 *   - kindDraw with every weight 1 draws exactly the index floor(u·n) the unweighted draw does, so a
 *     run with neutral weights equals one without them; a weight w makes a type w times as likely.
 *   - init weights are what the run starts from, their digest is part of the run's identity (a
 *     checkpoint of a continuation resumes only a continuation of the same weights), and weights
 *     that do not fit the config are refused by name.
 *   - a connector swap (init.fresh = the connector's prefix) takes every other weight from the init
 *     and leaves the connector as the seed initializes it, whatever the init's connector was.
 *   - freeze: stage 2 leaves the parameters its globs name exactly as it found them (stage 1 still
 *     trains the tower), trains the rest, is part of the run's identity, and hands back a model whose
 *     every parameter trains; a glob that names nothing is refused before anything runs.
 */
import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sample } from '../data/tasks.js';
import { modelTensors } from '../model/checkpoint.js';
import { decodePretrainCheckpoint, encodePretrainCheckpoint } from './pretrain-checkpoint.js';
import { kindDraw } from './kind-draw.js';
import { pretrain, type PretrainCheckpoint, type PretrainOptions } from './pretrain.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const sample = (kind: string): Sample => ({ image: null, prompt: 'p', answer: 'a', task: 'vqa', kind });

describe('kindDraw', () => {
  const pool = ['color', 'exist', 'shape', 'exist', 'where', 'color', 'exist'].map(sample);

  it('with no weighted type of the task, or weights of 1, draws floor(u·n)', () => {
    const plain = kindDraw(pool, 'vqa', {});
    const other = kindDraw(pool, 'vqa', { 'caption.one-object': 5 });
    const ones = kindDraw(pool, 'vqa', { 'vqa.exist': 1, 'vqa.color': 1 });
    for (let i = 0; i < 2000; i++) {
      const u = (i + 0.5) / 2000;
      const want = Math.floor(u * pool.length);
      expect([plain(u), other(u), ones(u)]).toEqual([want, want, want]);
    }
    // the ends of [0, 1)
    expect([ones(0), ones(1 - 2 ** -53)]).toEqual([0, pool.length - 1]);
  });

  it('draws a type of weight w w times as often as one of weight 1', () => {
    const draw = kindDraw(pool, 'vqa', { 'vqa.exist': 3 });
    // total weight 4·1 + 3·3 = 13: each exist sample 3/13, each other 1/13
    const counts = new Array<number>(pool.length).fill(0);
    const n = 13 * 1000;
    for (let i = 0; i < n; i++) counts[draw((i + 0.5) / n)]!++;
    expect(counts).toEqual(pool.map((s) => (s.kind === 'exist' ? 3000 : 1000)));
  });
});

describe('continued pre-training', () => {
  const tiny: PretrainOptions = {
    steps: 3,
    batchSize: 2,
    pool: 10,
    evalCount: 1,
    progressEvery: 1,
    visionSteps: 0,
    config: { vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } },
  };

  it('neutral kind weights train exactly as no kind weights', async () => {
    const a = await pretrain(rt, tiny);
    const b = await pretrain(rt, { ...tiny, kindWeights: { 'vqa.exist': 1, 'caption.two-objects': 1 } });
    // VQA alone, so every draw goes through the weighted pool
    const vqa = { ...tiny, mix: { caption: 0, vqa: 1, text: 0 } };
    const plain = await pretrain(rt, vqa);
    const c = await pretrain(rt, { ...vqa, kindWeights: { 'vqa.exist': 50 } });
    try {
      expect(b.lossCurve).toEqual(a.lossCurve);
      // a heavy weight changes which examples are drawn
      expect(c.lossCurve).not.toEqual(plain.lossCurve);
      expect(c.options.kindWeights).toEqual({ 'vqa.exist': 50 });
    } finally {
      for (const r of [a, b, plain, c]) r.model.dispose();
    }
  });

  it('refuses kind weights that name no question type, listing the known ones', async () => {
    const before = rt.stats().liveBuffers;
    await expect(pretrain(rt, { ...tiny, kindWeights: { 'vqa.exits': 2 } })).rejects.toThrow(/kindWeights names 'vqa\.exits', no question type of the mixed tasks \(known: .*vqa\.exist.*\)/);
    await expect(pretrain(rt, { ...tiny, kindWeights: { 'mnist.digit': 2 } })).rejects.toThrow("kindWeights key 'mnist.digit' names 'mnist', not a general task");
    await expect(pretrain(rt, { ...tiny, kindWeights: { exist: 2 } })).rejects.toThrow("kindWeights key 'exist' is not task.kind");
    await expect(pretrain(rt, { ...tiny, kindWeights: { 'vqa.exist': 0 } })).rejects.toThrow("kindWeights weight of 'vqa.exist' must be > 0, got 0");
    expect(rt.stats().liveBuffers).toBe(before);
  });

  it('starts from the init weights, and a checkpoint resumes only a continuation of the same weights', async () => {
    const first = await pretrain(rt, tiny);
    const weights = await modelTensors(first.model);
    first.model.dispose();
    // a learning rate of 1e-12 leaves the weights where they started, to f32 precision
    const still = await pretrain(rt, { ...tiny, steps: 1, lr: 1e-12, init: { weights, digest: 'sha256:a' } });
    try {
      for (const [name, p] of still.model.namedParameters()) {
        const got = (await p.toArray()) as Float32Array;
        const want = weights.get(name)!.data;
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!), name).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i]!)));
      }
      expect(still.options.init).toBe('sha256:a');
    } finally {
      still.model.dispose();
    }

    let c: PretrainCheckpoint | undefined;
    const cont = await pretrain(rt, { ...tiny, init: { weights, digest: 'sha256:a' }, checkpointEvery: 2, onCheckpoint: async (x) => void (c = decodePretrainCheckpoint(encodePretrainCheckpoint(x), 'ckpt')) });
    const resumed = await pretrain(rt, { ...tiny, init: { weights, digest: 'sha256:a' }, resume: c! });
    try {
      expect(c!.run.init).toBe('sha256:a');
      expect(resumed.lossCurve).toEqual(cont.lossCurve);
    } finally {
      cont.model.dispose();
      resumed.model.dispose();
    }
    const before = rt.stats().liveBuffers;
    await expect(pretrain(rt, { ...tiny, init: { weights, digest: 'sha256:b' }, resume: c! })).rejects.toThrow(/cannot resume: the checkpoint's run has init "sha256:a", this run "sha256:b"/);
    await expect(pretrain(rt, { ...tiny, resume: c! })).rejects.toThrow(/has init "sha256:a", this run null/);
    const cut = new Map(weights);
    cut.delete('multi_modal_projector.linear_1.weight');
    await expect(pretrain(rt, { ...tiny, init: { weights: cut, digest: 'x' } })).rejects.toThrow('pretrain: cannot start from the init weights: the weights lack multi_modal_projector.linear_1.weight');
    const wide = { ...tiny, config: { ...tiny.config, text: { ...tiny.config!.text, width: 32 } } };
    await expect(pretrain(rt, { ...wide, init: { weights, digest: 'x' } })).rejects.toThrow(/cannot start from the init weights: weight \S+ has shape \[\d+,\d+\], the model \[\d+,\d+\]/);
    expect(rt.stats().liveBuffers).toBe(before);
  });

  it('a connector swap takes the vision tower and language model and keeps the fresh connector', async () => {
    const first = await pretrain(rt, tiny);
    const weights = await modelTensors(first.model);
    first.model.dispose();
    const resamplerConfig = { ...tiny.config, projector: { type: 'resampler' as const, queries: 4, layers: 1, heads: 2 } };
    const fresh = await pretrain(rt, { ...tiny, steps: 1, lr: 1e-12, config: resamplerConfig });
    const freshWeights = await modelTensors(fresh.model);
    fresh.model.dispose();
    const swapped = await pretrain(rt, { ...tiny, steps: 1, lr: 1e-12, config: resamplerConfig, init: { weights, digest: 'sha256:a', fresh: ['multi_modal_projector.'] } });
    try {
      expect(swapped.options.init).toBe('sha256:a fresh:multi_modal_projector.');
      let connector = 0;
      for (const [name, p] of swapped.model.namedParameters()) {
        const got = (await p.toArray()) as Float32Array;
        const isConnector = name.startsWith('multi_modal_projector.');
        connector += isConnector ? 1 : 0;
        const want = (isConnector ? freshWeights : weights).get(name)!.data;
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
        expect(worst, name).toBeLessThanOrEqual(1e-6);
      }
      expect(connector).toBeGreaterThan(4);
    } finally {
      swapped.model.dispose();
    }
    await expect(pretrain(rt, { ...tiny, init: { weights, digest: 'x', fresh: ['connector.'] } })).rejects.toThrow('no parameter starts with connector. (the prefixes to keep fresh)');
  });

  it('freeze keeps the named parameters as stage 2 found them and trains the rest', async () => {
    const first = await pretrain(rt, tiny);
    const weights = await modelTensors(first.model);
    first.model.dispose();
    const init = { weights, digest: 'sha256:a' };
    const frozen = await pretrain(rt, { ...tiny, lr: 1e-2, init, freeze: ['vision_tower.**'] });
    const withStage1 = await pretrain(rt, { ...tiny, lr: 1e-2, init, visionSteps: 2, freeze: ['vision_tower.**'] });
    try {
      expect(frozen.options.freeze).toEqual(['vision_tower.**']);
      let vision = 0;
      let moved = 0;
      for (const [name, p] of frozen.model.namedParameters()) {
        expect(p.requiresGrad, name).toBe(true);
        const got = (await p.toArray()) as Float32Array;
        const want = weights.get(name)!.data;
        const same = got.every((x, i) => x === want[i]);
        if (name.startsWith('vision_tower.')) {
          vision++;
          expect(same, name).toBe(true);
        } else if (!same) moved++;
      }
      expect(vision).toBeGreaterThan(4);
      expect(moved).toBeGreaterThan(4);
      // stage 1 is not stage 2: with vision steps the tower still trains
      const tower = [...withStage1.model.namedParameters()].filter(([n]) => n.startsWith('vision_tower.'));
      const changed = await Promise.all(tower.map(async ([n, p]) => ((await p.toArray()) as Float32Array).some((x, i) => x !== weights.get(n)!.data[i])));
      expect(changed.some(Boolean)).toBe(true);
    } finally {
      frozen.model.dispose();
      withStage1.model.dispose();
    }
    let c: PretrainCheckpoint | undefined;
    const run = await pretrain(rt, { ...tiny, init, freeze: ['vision_tower.**'], checkpointEvery: 2, onCheckpoint: async (x) => void (c = decodePretrainCheckpoint(encodePretrainCheckpoint(x), 'ckpt')) });
    run.model.dispose();
    expect(c!.run.freeze).toEqual(['vision_tower.**']);
    const before = rt.stats().liveBuffers;
    await expect(pretrain(rt, { ...tiny, init, resume: c! })).rejects.toThrow(/cannot resume: the checkpoint's run has freeze \["vision_tower\.\*\*"\], this run \[\]/);
    await expect(pretrain(rt, { ...tiny, freeze: ['vision_tower.**', 'vison_tower.**'] })).rejects.toThrow("pretrain: freeze 'vison_tower.**' names no parameter of the model");
    expect(rt.stats().liveBuffers).toBe(before);
  });
});
