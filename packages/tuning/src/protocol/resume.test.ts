import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '@keel/kernels';
import { MultimodalModel, WordTokenizer, serializeSafetensors, vocabularyWords, type MllmConfigInput } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TuningConfigInput, TuningHandle } from '../strategies/apply.js';
import { CHECKPOINT_STATE_FILE, CHECKPOINT_TENSORS_FILE, decodeCheckpoint, encodeCheckpoint, runDifference, type TuneCheckpoint } from './checkpoint.js';
import { latestCheckpoint, readCheckpoint, writeCheckpoint } from './checkpoint.node.js';
import type { Evaluation } from './scores.js';
import { NonFiniteLossError, TuneAbortedError, tune, type TuneOptions } from './tune.js';

let rt: Runtime;
let dir: string;
beforeAll(async () => {
  rt = await Runtime.create();
  dir = await mkdtemp(join(tmpdir(), 'keel-resume-'));
});
afterAll(async () => {
  rt.destroy();
  await rm(dir, { recursive: true, force: true });
});

const tok = WordTokenizer.fromWords(vocabularyWords());
const tiny: MllmConfigInput = {
  vision: { imageSize: 16, patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 24 },
  projector: { hidden: 16 },
  text: { vocabSize: tok.vocabSize, width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 24, maxPositions: 64 },
  imageTokenId: tok.specials.image,
};
const fresh = () => new MultimodalModel(rt, tiny, { seed: 5 });
// scores are not what these tests are about: a fixed base saves one evaluation per run
const base: Evaluation = { T: 0.25, U: 0.5, scores: { mnist: 0.25, caption: 0.5, vqa: 0.5, text: 0.5 }, byKind: { mnist: { digit: { accuracy: 0.25, count: 4 } } }, samples: [] };
const STEPS = 8;
const run = (config: TuningConfigInput): TuneOptions => ({ config, task: 'mnist', steps: STEPS, batchSize: 2, lr: 1e-2, evalCount: 1, progressEvery: 1, base });
// T/U and mask snapshots every 2 steps: the one at step 4 sees what the resumed step 4 restored
const EVAL_EVERY = 2;

/** Every trainable tensor's bytes, so equality is bit for bit. */
async function weightBytes(handle: TuningHandle): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const [name, p] of handle.trainableParameters()) out.set(name, new Uint8Array(((await p.toArray()) as Float32Array).buffer));
  return out;
}

// refresh and round 4: step 4, the first after the checkpoint, runs on the restored mask (the
// optimizer's) and reports the restored density (the method's running state) before a new one is drawn
const CASES: { label: string; config: TuningConfigInput }[] = [
  { label: 'full', config: { strategy: 'full' } },
  { label: 'spider', config: { strategy: 'spider' } },
  { label: 'topk grad_sum refresh 4', config: { strategy: 'topk', score: 'grad_sum', refresh: 4 } },
  { label: 'hft round 4', config: { strategy: 'hft', round: 4 } },
  { label: 'lora', config: { strategy: 'lora', r: 2, targets: ['language_model.**.q_proj', 'language_model.**.v_proj'] } },
  // post-hoc: its state() refuses before finalize, so a checkpoint must hold the trainable tensors themselves
  { label: 'dare', config: { strategy: 'dare', p: 0.5 } },
];

describe('tune: interrupt and resume reproduce the uninterrupted run', () => {
  for (const c of CASES) {
    it(`${c.label}: resumed from the step-3 checkpoint, every loss and the final weights are identical`, async () => {
      let model = fresh();
      const whole = await tune(model, tok, { ...run(c.config), evalEvery: EVAL_EVERY });
      const wholeWeights = await weightBytes(whole.handle);
      whole.handle.dispose();
      model.dispose();
      expect(whole.lossCurve.map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(whole.evalCurve.map((e) => e.step)).toEqual([0, 2, 4, 6, 8]);

      // interrupted after step 5; checkpoints every 3 steps, the one of step 3 on disk
      const ckDir = join(dir, c.label.replace(/\W+/g, '-'));
      const taken: TuneCheckpoint[] = [];
      const seen: [number, number][] = [];
      const stop = new AbortController();
      model = fresh();
      await expect(
        tune(model, tok, {
          ...run(c.config),
          evalEvery: EVAL_EVERY,
          checkpointEvery: 3,
          onCheckpoint: async (ck) => {
            taken.push(ck);
            await writeCheckpoint(ckDir, ck);
          },
          onProgress: (p) => {
            seen.push([p.step, p.loss]);
            if (p.step === 5) stop.abort();
          },
          signal: stop.signal,
        }),
      ).rejects.toThrow(/stopped after step 5 of 8/);
      model.dispose();
      expect(taken.map((ck) => ck.step)).toEqual([3]);
      expect(seen).toEqual(whole.lossCurve.slice(0, 5)); // taking a checkpoint disturbs nothing

      const onDisk = await readCheckpoint(ckDir);
      expect(onDisk.step).toBe(3);
      const inMemory = encodeCheckpoint(taken[0]!);
      for (const ck of [onDisk, decodeCheckpoint(inMemory.json, inMemory.tensors, 'memory')]) {
        model = fresh();
        const resumed = await tune(model, tok, { ...run(c.config), evalEvery: EVAL_EVERY, resume: ck });
        expect(resumed.resumedFrom).toBe(3);
        expect(resumed.lossCurve).toEqual(whole.lossCurve);
        expect(resumed.evalCurve).toEqual(whole.evalCurve);
        expect(resumed.masks).toEqual(whole.masks);
        expect(await weightBytes(resumed.handle)).toEqual(wholeWeights);
        resumed.handle.dispose();
        model.dispose();
      }
    });
  }

  it('a progress mean that spans the checkpoint comes out the same', async () => {
    const config = { strategy: 'lora', r: 2, targets: ['language_model.**.q_proj'] };
    const options = { ...run(config), steps: 6, progressEvery: 4 };
    let model = fresh();
    const whole = await tune(model, tok, options);
    whole.handle.dispose();
    model.dispose();
    expect(whole.lossCurve.map(([s]) => s)).toEqual([4, 6]);
    const taken: TuneCheckpoint[] = [];
    const stop = new AbortController();
    const onCheckpoint = async (c: TuneCheckpoint) => {
      taken.push(c);
      stop.abort();
    };
    model = fresh();
    await expect(tune(model, tok, { ...options, checkpointEvery: 3, onCheckpoint, signal: stop.signal })).rejects.toThrow(/stopped after step 3/);
    model.dispose();
    expect(taken[0]!.recentCount).toBe(3);
    model = fresh();
    const resumed = await tune(model, tok, { ...options, resume: taken[0]! });
    expect(resumed.lossCurve).toEqual(whole.lossCurve);
    resumed.handle.dispose();
    model.dispose();
  });

  it('a resume with another lr, seed or method config is refused, naming the field', async () => {
    const config = { strategy: 'lora', r: 2, targets: ['language_model.**.q_proj'] };
    const model = fresh();
    const taken: TuneCheckpoint[] = [];
    const stopped = tune(model, tok, { ...run(config), steps: 2, checkpointEvery: 1, onCheckpoint: async (c) => void taken.push(c), signal: AbortSignal.abort() });
    await expect(stopped).rejects.toBeInstanceOf(TuneAbortedError);
    await expect(stopped).rejects.toThrow(/stopped after step 1 of 2/);
    expect(taken.map((c) => c.step)).toEqual([1]);
    const resume = taken[0]!;
    await expect(tune(model, tok, { ...run(config), steps: 2, lr: 2e-2, resume })).rejects.toThrow(/lr differs \(checkpoint 0\.01, this run 0\.02\)/);
    await expect(tune(model, tok, { ...run(config), steps: 2, seed: 1, resume })).rejects.toThrow(/seed differs/);
    await expect(tune(model, tok, { ...run({ ...config, r: 4 }), steps: 2, resume })).rejects.toThrow(/config\.r differs \(checkpoint 2, this run 4\)/);
    await expect(tune(model, tok, { ...run(config), steps: 3, resume })).rejects.toThrow(/steps differs/);
    expect(runDifference(resume.run, { ...resume.run, tag: { base: 'elsewhere' } })?.field).toBe('tag.base');
    model.dispose();
  });

  it('a non-finite loss stops the run naming the step; the previous checkpoint stays complete', async () => {
    const ckDir = join(dir, 'nan');
    const model = fresh();
    const written: number[] = [];
    // lr 1e38 moves every weight by about ±1e38 in one Adam step: the next forward overflows
    const onCheckpoint = async (c: TuneCheckpoint) => {
      await writeCheckpoint(ckDir, c);
      written.push(c.step);
    };
    const err = await tune(model, tok, { ...run({ strategy: 'full' }), lr: 1e38, checkpointEvery: 1, onCheckpoint }).catch((e: unknown) => e);
    model.dispose();
    expect(err).toBeInstanceOf(NonFiniteLossError);
    const step = (err as NonFiniteLossError).step;
    expect(step).toBeGreaterThan(1);
    expect((err as Error).message).toMatch(new RegExp(`the loss became (NaN|-?Infinity) at step ${step} \\(full on mnist, lr 1e\\+38\\)`));
    expect(written).toEqual(Array.from({ length: step - 1 }, (_, i) => i + 1)); // none of the failing step
    expect((await readdir(ckDir)).sort()).toEqual([`checkpoint-${step - 1}`, 'latest']);
    const last = await readCheckpoint(ckDir);
    expect(last.step).toBe(step - 1);
    expect(last.lossCurve.every(([, l]) => Number.isFinite(l))).toBe(true);
  });
});

/** A small checkpoint by hand: u32 words with the high bit set, f32 values, a MaskedAdamW-like optimizer state. */
function handMade(step: number): TuneCheckpoint {
  return {
    format: 1,
    step,
    stream: 0xdeadbeef,
    run: { config: { strategy: 'topk', k: 0.1 }, task: 'mnist', steps: 10, batchSize: 2, lr: 1e-3, weightDecay: 0, seed: 0, pool: 20, evalCount: 2, evalEvery: 0, progressEvery: 1, tag: {} },
    lossCurve: [[1, 2.5], [2, 2.25]],
    evalCurve: [{ step: 0, T: 0.1, U: 0.2 }],
    masks: [{ step: 2, density: [['a', 0.5], ['b', 1]] }],
    trainSec: 1.5,
    recent: 0.3,
    recentCount: 1,
    base,
    weights: new Map([
      ['a', { shape: [2, 3], data: Float32Array.of(1, -2, 3.5, 0, -0, 1e-30) }],
      ['b', { shape: [], data: Float32Array.of(step) }],
    ]),
    running: new Map<string, Float32Array | Uint32Array>([
      ['sums', Float32Array.of(0.25, -1)],
      ['mask', Uint32Array.of(0xffffffff, 0x80000001, 0)],
    ]),
    optimizer: { kind: 'MaskedAdamW', step, lengths: [6, 1], groups: [{ lr: 1e-3, weightDecay: 0 }], slots: { m: new Float32Array(128).fill(0.5), v: new Float32Array(128) }, extra: { mode: 'bits', bits: Uint32Array.of(0x80000000, 7, 0xfffffffe, 1) } },
  };
}

describe('checkpoint encoding', () => {
  it('round-trips every field; u32 words keep their bits', () => {
    const c = handMade(2);
    const { json, tensors } = encodeCheckpoint(c);
    const back = decodeCheckpoint(json, tensors, 'ck');
    expect(back).toEqual(c);
    expect(back.running.get('mask')).toBeInstanceOf(Uint32Array);
    expect([...(back.optimizer.extra!.bits as Uint32Array)]).toEqual([0x80000000, 7, 0xfffffffe, 1]);
    expect(Object.is(back.weights.get('a')!.data[4], -0)).toBe(true);
  });

  it('refuses a wrong version, a bad field, a missing, reshaped or unlisted tensor, naming file and key', () => {
    const { json, tensors } = encodeCheckpoint(handMade(2));
    const state = JSON.parse(json);
    const edit = (f: (s: typeof state) => void) => {
      const s = structuredClone(state);
      f(s);
      return JSON.stringify(s);
    };
    expect(() => decodeCheckpoint(edit((s) => (s.format = 2)), tensors, 'ck')).toThrow(`ck/${CHECKPOINT_STATE_FILE}: checkpoint format 2 is not supported`);
    expect(() => decodeCheckpoint(edit((s) => (s.step = -1)), tensors, 'ck')).toThrow(`ck/${CHECKPOINT_STATE_FILE}: step: must be ≥ 0`);
    expect(() => decodeCheckpoint(edit((s) => delete s.run.lr), tensors, 'ck')).toThrow(/trainer_state\.json: run\.lr:/);
    expect(() => decodeCheckpoint('{"format": 1,', tensors, 'ck')).toThrow(/trainer_state\.json: not valid JSON/);
    expect(() => decodeCheckpoint(edit((s) => (s.tensors['weights.c'] = { dtype: 'f32', shape: [1] })), tensors, 'ck')).toThrow(`ck/${CHECKPOINT_TENSORS_FILE}: tensor 'weights.c' is missing`);
    expect(() => decodeCheckpoint(edit((s) => (s.tensors['running.sums'].shape = [3])), tensors, 'ck')).toThrow(/tensor 'running\.sums' has shape \[2\], .* says \[3\]/);
    expect(() => decodeCheckpoint(edit((s) => (s.tensors['running.mask'].dtype = 'f32')), tensors, 'ck')).toThrow(/tensor 'running\.mask' is I32, expected F32/);
    expect(() => decodeCheckpoint(edit((s) => delete s.tensors['optimizer.slot.v']), tensors, 'ck')).toThrow(/tensor 'optimizer\.slot\.v' is not listed in ck\/trainer_state\.json/);
    const extraFile = serializeSafetensors([['weights.a', { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) }]]);
    expect(() => decodeCheckpoint(json, extraFile, 'ck')).toThrow(/tensor 'weights\.b' is missing/);
    expect(() => encodeCheckpoint({ ...handMade(2), lossCurve: [[1, Number.NaN]] })).toThrow(/encodeCheckpoint: lossCurve\.0\.1/);
  });
});

describe('checkpoint files', () => {
  it('an interrupted write leaves latest naming a complete checkpoint; the next write cleans up', async () => {
    const ckDir = join(dir, 'atomic');
    expect(await latestCheckpoint(ckDir)).toBeNull();
    await expect(readCheckpoint(ckDir)).rejects.toThrow(/no checkpoint \(.*atomic\/latest does not exist\)/);
    await writeCheckpoint(ckDir, handMade(3));
    // what a process killed during the step-6 write leaves: a half-filled temporary directory, a
    // renamed directory that latest does not name yet, and a half-written temporary latest
    await mkdir(join(ckDir, 'checkpoint-6.4242.abcdef.tmp'));
    await writeFile(join(ckDir, 'checkpoint-6.4242.abcdef.tmp', CHECKPOINT_STATE_FILE), '{"format": 1, "st');
    await mkdir(join(ckDir, 'checkpoint-9'));
    await writeFile(join(ckDir, 'checkpoint-9', CHECKPOINT_STATE_FILE), '{}');
    await writeFile(join(ckDir, 'latest.4242.abcdef.tmp'), 'checkpoint-');
    expect((await readCheckpoint(ckDir)).step).toBe(3);
    expect(await latestCheckpoint(ckDir)).toBe(join(ckDir, 'checkpoint-3'));

    await writeCheckpoint(ckDir, handMade(9)); // replaces the orphan of the same step
    expect((await readdir(ckDir)).filter((e) => e.startsWith('checkpoint-'))).toEqual(['checkpoint-9']);
    expect(await readCheckpoint(ckDir)).toEqual(handMade(9));
    // the step latest names, written again (a fresh run reaching an older run's step): the new one wins
    const again = { ...handMade(9), trainSec: 7 };
    await writeCheckpoint(ckDir, again);
    expect(await readCheckpoint(ckDir)).toEqual(again);
    expect((await readdir(ckDir)).filter((e) => e.startsWith('checkpoint-'))).toEqual(['checkpoint-9']);
    // a checkpoint that cannot be encoded writes nothing
    await expect(writeCheckpoint(ckDir, { ...handMade(12), trainSec: Number.POSITIVE_INFINITY })).rejects.toThrow(/trainSec/);
    expect(await readCheckpoint(ckDir)).toEqual(again);

    await rm(join(ckDir, 'checkpoint-9', CHECKPOINT_TENSORS_FILE));
    await expect(readCheckpoint(ckDir)).rejects.toThrow(/checkpoint-9\/tensors\.safetensors does not exist \(.*latest names an incomplete checkpoint\)/);
    await writeFile(join(ckDir, 'latest'), '../../etc\n');
    await expect(latestCheckpoint(ckDir)).rejects.toThrow(/latest: expected the name of a checkpoint-<step> directory/);
  });
});
