/**
 * A pre-training run that fails after building its model frees that model: the caller never gets
 * it, so GPU memory held by its parameters would leak for the life of the runtime. A tiny model and
 * a learning rate that overflows the weights make the run stop at a non-finite loss within a few steps.
 * Resuming: a run continued from an encoded checkpoint (taken after stage 1, in stage 2) equals the
 * uninterrupted run exactly, and a checkpoint of another run or a damaged one is refused with the
 * field or file named.
 */
import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelFromBytes } from '../model/checkpoint.js';
import { accuracyByKind } from './loop.js';
import { decodePretrainCheckpoint, encodePretrainCheckpoint, PRETRAIN_OPTIMIZER_FILE, PRETRAIN_STATE_FILE } from './pretrain-checkpoint.js';
import { pretrain, type PretrainCheckpoint, type PretrainResult } from './pretrain.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

it.each([
  ['stage 2', 0, /^pretrain: the loss became (NaN|Infinity|-Infinity) at step [2-6]/],
  ['stage 1', 4, /^pretrainVision: the loss became (NaN|Infinity|-Infinity) at step [2-4]/],
])('a run stopped by a non-finite loss in %s leaves no GPU memory behind', async (_, visionSteps, message) => {
  const before = rt.stats();
  const run = pretrain(rt, {
    steps: 6,
    visionSteps,
    batchSize: 2,
    pool: 4,
    evalCount: 1,
    // lr 1e30 drives the weights to ~1e30 after one update, so the next forward overflows f32
    lr: 1e30,
    config: { vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } },
  });
  await expect(run).rejects.toThrow(message);
  // the run did hold memory (the model, AdamW's moments) at its peak
  expect(rt.stats().peakLiveBytes).toBeGreaterThan(before.liveBytes);
  expect(rt.stats().liveBytes).toBe(before.liveBytes);
  expect(rt.stats().liveBuffers).toBe(before.liveBuffers);
});

it('accuracyByKind splits results by question type in first-seen order', () => {
  expect(accuracyByKind(['color', 'shape', 'color', 'color'], [true, false, false, true])).toEqual({
    color: { accuracy: 2 / 3, count: 3 },
    shape: { accuracy: 0, count: 1 },
  });
  expect(accuracyByKind([], [])).toEqual({});
  expect(() => accuracyByKind(['a'], [])).toThrow('accuracyByKind: 1 kinds for 0 results');
});

describe('resuming', () => {
  const tiny = {
    steps: 6,
    batchSize: 2,
    pool: 8,
    evalCount: 1,
    progressEvery: 1,
    visionSteps: 2,
    config: { vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } },
  };
  const weightsOf = async (r: PretrainResult) => new Map([...r.model.namedParameters()].map(([n, p]) => [n, p])).entries();

  it('a run resumed from an encoded checkpoint reproduces the uninterrupted run bit for bit', async () => {
    const saved = new Map<number, Map<string, Uint8Array | string>>();
    const whole = await pretrain(rt, { ...tiny, checkpointEvery: 2, onCheckpoint: async (c) => void saved.set(c.step, encodePretrainCheckpoint(c)) });
    // checkpoints at 2 and 4, none after the last step
    expect([...saved.keys()]).toEqual([2, 4]);
    const resume = decodePretrainCheckpoint(saved.get(4)!, 'ckpt');
    expect(resume.step).toBe(4);
    const resumed = await pretrain(rt, { ...tiny, resume });
    try {
      expect(resumed.resumedFrom).toBe(4);
      expect(whole.resumedFrom).toBeNull();
      expect(resumed.lossCurve).toEqual(whole.lossCurve);
      expect(resumed.lossCurve).toHaveLength(6);
      // stage 1 ran once, before the checkpoints; the resumed run skips it and keeps its record
      expect(whole.visionLossCurve.map(([step]) => step)).toEqual([1, 2]);
      expect(resumed.visionLossCurve).toEqual(whole.visionLossCurve);
      expect(resumed.visionSeconds).toBe(whole.visionSeconds);
      const a = new Map(await weightsOf(whole));
      for (const [name, p] of await weightsOf(resumed)) expect(Array.from((await p.toArray()) as Float32Array), name).toEqual(Array.from((await a.get(name)!.toArray()) as Float32Array));
      expect(resumed.scores).toEqual(whole.scores);
      expect(resumed.byKind).toEqual(whole.byKind);
      expect(Object.keys(whole.byKind)).toEqual(Object.keys(whole.scores));
    } finally {
      whole.model.dispose();
      resumed.model.dispose();
    }
  });

  it('the checkpoint directory is a model directory loadModel reads', async () => {
    let files: Map<string, Uint8Array | string> | undefined;
    const r = await pretrain(rt, { ...tiny, steps: 3, checkpointEvery: 2, onCheckpoint: async (c) => void (files = encodePretrainCheckpoint(c)) });
    r.model.dispose();
    const str = (f: string) => (typeof files!.get(f) === 'string' ? (files!.get(f) as string) : new TextDecoder().decode(files!.get(f) as Uint8Array));
    const loaded = loadModelFromBytes(rt, { configJson: str('config.json'), safetensors: files!.get('model.safetensors') as Uint8Array, tokenizerJson: str('tokenizer.json') }, 'ckpt');
    expect(loaded.model.numParameters()).toBeGreaterThan(0);
    loaded.model.dispose();
  });

  it('refuses a checkpoint of another run, naming the field', async () => {
    let c: PretrainCheckpoint | undefined;
    const r = await pretrain(rt, { ...tiny, steps: 3, checkpointEvery: 2, onCheckpoint: async (x) => void (c = x) });
    r.model.dispose();
    const before = rt.stats().liveBuffers;
    await expect(pretrain(rt, { ...tiny, steps: 3, lr: 1e-3, resume: c! })).rejects.toThrow("pretrain: cannot resume: the checkpoint's run has lr 0.002, this run 0.001");
    await expect(pretrain(rt, { ...tiny, steps: 3, mix: { text: 1 }, resume: c! })).rejects.toThrow(/cannot resume: the checkpoint's run has mix\.text 0\.2, this run 1/);
    await expect(pretrain(rt, { ...tiny, steps: 3, config: { ...tiny.config, text: { ...tiny.config.text, width: 32 } }, resume: c! })).rejects.toThrow(/has config\.text\.width 16, this run 32/);
    await expect(pretrain(rt, { ...tiny, steps: 2, resume: c! })).rejects.toThrow(/has steps 3, this run 2/);
    await expect(pretrain(rt, { ...tiny, steps: 3, visionSteps: 0, resume: c! })).rejects.toThrow(/has visionSteps 2, this run 0/);
    await expect(pretrain(rt, { ...tiny, checkpointEvery: 2 })).rejects.toThrow('pretrain: checkpointEvery is set but there is no onCheckpoint');
    expect(rt.stats().liveBuffers).toBe(before);
  });

  it('decoding names the file and the field that is wrong', async () => {
    let files: Map<string, Uint8Array | string> | undefined;
    const r = await pretrain(rt, { ...tiny, steps: 3, checkpointEvery: 2, onCheckpoint: async (c) => void (files = encodePretrainCheckpoint(c)) });
    r.model.dispose();
    const without = (f: string) => new Map([...files!].filter(([k]) => k !== f));
    const withState = (edit: (s: Record<string, unknown>) => void) => {
      const s = JSON.parse(files!.get(PRETRAIN_STATE_FILE) as string);
      edit(s);
      return new Map([...files!, [PRETRAIN_STATE_FILE, JSON.stringify(s)]]);
    };
    expect(() => decodePretrainCheckpoint(without(PRETRAIN_OPTIMIZER_FILE), 'd')).toThrow('d/optimizer.safetensors: missing');
    expect(() => decodePretrainCheckpoint(without('model.safetensors'), 'd')).toThrow('d/model.safetensors: missing');
    expect(() => decodePretrainCheckpoint(withState((s) => void (s.kind = 'x')), 'd')).toThrow("d/trainer_state.json: not a pre-training checkpoint (kind \"x\"");
    expect(() => decodePretrainCheckpoint(withState((s) => void (s.format = 9)), 'd')).toThrow('checkpoint format 9 is not supported');
    expect(() => decodePretrainCheckpoint(withState((s) => void (s.stream = -1)), 'd')).toThrow('d/trainer_state.json: stream');
    expect(() => decodePretrainCheckpoint(withState((s) => void ((s.optimizer as { slots: string[] }).slots = ['m'])), 'd')).toThrow("d/optimizer.safetensors: tensor 'slot.v' is not a slot listed");
    expect(() => decodePretrainCheckpoint(withState((s) => void ((s.optimizer as { slots: string[] }).slots.push('w'))), 'd')).toThrow("tensor 'slot.w' is missing");
    const cut = files!.get('model.safetensors') as Uint8Array;
    expect(() => decodePretrainCheckpoint(new Map([...files!, ['model.safetensors', cut.subarray(0, cut.length - 8)]]), 'd')).toThrow(/d\/model\.safetensors/);
    expect(() => decodePretrainCheckpoint(withState((s) => void (s.trainSec = null)), 'd')).toThrow('d/trainer_state.json: trainSec');
    expect(() => decodePretrainCheckpoint(withState((s) => void (s.visionLossCurve = [[1, 'x']])), 'd')).toThrow('d/trainer_state.json: visionLossCurve.0.1');
    // a checkpoint from before stage 1 existed reads as a run without one
    const old = decodePretrainCheckpoint(
      withState((s) => {
        delete (s.run as Record<string, unknown>).visionSteps;
        delete s.visionLossCurve;
        delete s.visionSec;
      }),
      'd',
    );
    expect([old.run.visionSteps, old.visionLossCurve, old.visionSec]).toEqual([0, [], 0]);
  });
});
