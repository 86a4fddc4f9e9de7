/**
 * GPU faults as a user of the tuning package meets them. A device lost mid-run and a kernel that
 * fails validation inside a training step must reject the caller's promise (tune(), trainStep) with
 * the runtime's typed error — DeviceLostError, or a KernelError naming the kernel — instead of
 * hanging on a readback that never completes or training on with dispatches Dawn silently dropped.
 * The runtime itself (errors.ts, runtime.ts) is tested in packages/kernels' runtime.test.ts,
 * including a bad shader at the kernel level; this file checks that nothing between the runtime and
 * tune() swallows those errors or stalls on them.
 *
 * Every test creates and destroys its own Runtime: a lost device cannot be shared. "Nothing hangs"
 * is the per-test timeout (HANG_MS): a stall fails the test instead of blocking the run.
 * Non-goals: recovering from device loss (a new Runtime and model are the caller's job).
 */
import { DeviceLostError, KernelError, Runtime, defineKernel } from '@keel/kernels';
import { MultimodalModel, WordTokenizer, collate, getTask, toExample, vocabularyWords, type MllmConfigInput, type TrainingBatch } from '@keel/mllm';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { tune, type TuneOptions } from './protocol/tune.js';
import { applyTuning } from './strategies/apply.js';
import { listStrategies, registerStrategy } from './strategies/registry.js';
import { selectiveInstance } from './strategies/selective.js';
import type { StrategyDefinition } from './strategies/strategy.js';
import { selectParameters } from './strategies/targets.js';

const HANG_MS = 30_000;
const TASK = 'count'; // generated scenes: no data files to load

const tok = WordTokenizer.fromWords(vocabularyWords());
const tiny: MllmConfigInput = {
  vision: { imageSize: 16, patchSize: 8, width: 8, layers: 1, heads: 2, intermediate: 8 },
  projector: { hidden: 8 },
  text: { vocabSize: tok.vocabSize, width: 8, layers: 1, heads: 2, kvHeads: 1, intermediate: 8, maxPositions: 64 },
  imageTokenId: tok.specials.image,
};

async function withRuntime(fn: (rt: Runtime) => Promise<void>): Promise<void> {
  const rt = await Runtime.create();
  try {
    await fn(rt);
  } finally {
    rt.destroy();
  }
}

async function taskBatch(model: MultimodalModel): Promise<TrainingBatch> {
  const samples = await getTask(TASK).samples('train', 4, 0, { size: model.config.vision.imageSize });
  return collate(samples.map(toExample), tok, model.config);
}

/** tune() on a fresh tiny model; `lose(step)` runs in onProgress after every step. */
async function tuneLosing(rt: Runtime, config: TuneOptions['config'], lose: (step: number) => void, extra: Partial<TuneOptions> = {}) {
  const model = new MultimodalModel(rt, tiny, { seed: 3 });
  const reported: number[] = [];
  const run = tune(model, tok, {
    config,
    task: TASK,
    steps: 50,
    batchSize: 2,
    lr: 1e-3,
    evalCount: 2,
    progressEvery: 1,
    ...extra,
    onProgress: (p) => {
      reported.push(p.step);
      lose(p.step);
    },
  });
  return { error: await run.then(() => null, (e: unknown) => e), reported };
}

// y[0] = … a symbol WGSL does not know: the shader module fails validation
const brokenKernel = defineKernel({
  name: 'faults_broken_kernel',
  bindings: [{ name: 'y', type: 'array<f32>', access: 'read_write' }], // (1,)
  uniforms: [],
  workgroupSize: () => [1],
  dispatch: () => [1, 1, 1],
  key: () => '',
  wgsl: () => `
@compute @workgroup_size(WG_X)
fn main() {
  y[0] = undefined_symbol * 2.0;
}`,
});

const brokenSchema = z.object({ at: z.enum(['hook', 'extraLoss']) }).strict();

/**
 * Trains the projector like `full`, and dispatches the broken kernel once per step: from the
 * after-optimizer hook (trainStep in @keel/mllm) or from extraLoss (apply.ts's own step).
 */
const brokenStrategy: StrategyDefinition<z.infer<typeof brokenSchema>> = {
  name: 'faults_broken',
  paradigm: 'selective',
  description: 'test-only: a selective method whose step dispatches an invalid shader',
  schema: brokenSchema,
  mergeable: false,
  apply(model, config) {
    const inner = selectiveInstance('faults_broken', selectParameters(model, ['multi_modal_projector.**'], 'faults_broken'));
    const rt = model.rt;
    const scratch = rt.createBuffer(4);
    const dispatchBroken = () => rt.dispatch(brokenKernel, undefined, { buffers: { y: scratch } });
    return {
      ...inner,
      ...(config.at === 'hook' ? { hooks: { afterOptimizerStep: dispatchBroken } } : { extraLoss: () => (dispatchBroken(), null) }),
      remove() {
        inner.remove();
        rt.release(scratch);
      },
    };
  },
};

describe('device loss during a tuning run', () => {
  for (const config of [{ strategy: 'lora', r: 2 }, { strategy: 'spider' }, { strategy: 'l2sp', lambda: 0.1 }]) {
    it(
      `${config.strategy}: Runtime.destroy() after step 2 rejects tune() with DeviceLostError at step 3`,
      () =>
        withRuntime(async (rt) => {
          const { error, reported } = await tuneLosing(rt, config, (step) => step === 2 && rt.destroy());
          expect(error).toBeInstanceOf(DeviceLostError);
          expect((error as Error).message).toMatch(/device lost/);
          // destroy() marks the runtime lost at once: step 3's first buffer throws, nothing more trains
          expect(reported).toEqual([1, 2]);
          expect(rt.lost).toBe(true);
        }),
      HANG_MS,
    );
  }

  it(
    'a loss outside keel (GPUDevice.destroy(), as a driver reset) rejects tune() with DeviceLostError',
    () =>
      withRuntime(async (rt) => {
        const { error, reported } = await tuneLosing(rt, { strategy: 'lora', r: 2 }, (step) => step === 2 && rt.device.destroy());
        expect(error).toBeInstanceOf(DeviceLostError);
        expect((error as Error).message).toMatch(/device lost/);
        expect(reported.length, `steps reported: ${reported.join(', ')}`).toBeLessThan(50);
        expect(rt.lost).toBe(true);
      }),
    HANG_MS,
  );

  it(
    "a loss just before an evaluation rejects tune() from the evaluation's readbacks (spider: mask density, then generate)",
    () =>
      withRuntime(async (rt) => {
        const evals: number[] = [];
        const { error, reported } = await tuneLosing(rt, { strategy: 'spider' }, (step) => step === 2 && rt.device.destroy(), {
          evalEvery: 2,
          onEval: (step) => evals.push(step),
        });
        expect(error).toBeInstanceOf(DeviceLostError);
        expect(reported).toEqual([1, 2]);
        expect(evals, 'no evaluation completes on a lost device').toEqual([]);
      }),
    HANG_MS,
  );

  it(
    'a loss while steps are in flight rejects the trainStep loop with DeviceLostError',
    () =>
      withRuntime(async (rt) => {
        const model = new MultimodalModel(rt, tiny, { seed: 3 });
        const batch = await taskBatch(model);
        const handle = applyTuning(model, { strategy: 'spider' });
        const opt = handle.optimizer({ lr: 1e-3 });
        await handle.trainStep(opt, batch);
        // lands on the next turn of the event loop: inside the step below, while its loss readback waits
        setImmediate(() => rt.device.destroy());
        let steps = 0;
        const loop = async () => {
          for (; steps < 1000; steps++) await handle.trainStep(opt, batch);
        };
        const error = await loop().then(() => null, (e: unknown) => e);
        expect(error, `the loop ran ${steps} steps after the loss without an error`).toBeInstanceOf(DeviceLostError);
        handle.dispose();
        model.dispose();
      }),
    HANG_MS,
  );
});

describe('a validation error inside a training step', () => {
  if (!listStrategies().some((d) => d.name === brokenStrategy.name)) registerStrategy(brokenStrategy);

  for (const at of ['hook', 'extraLoss'] as const) {
    it(
      `an invalid shader dispatched from the method's ${at} rejects trainStep with a KernelError naming the kernel; the runtime stays usable`,
      () =>
        withRuntime(async (rt) => {
          const model = new MultimodalModel(rt, tiny, { seed: 3 });
          const batch = await taskBatch(model);
          const broken = applyTuning(model, { strategy: 'faults_broken', at });
          const error = await broken.trainStep(broken.optimizer({ lr: 1e-3 }), batch).then(() => null, (e: unknown) => e);
          expect(error).toBeInstanceOf(KernelError);
          expect((error as KernelError).kernel).toContain('faults_broken_kernel');
          expect((error as KernelError).message).toContain('undefined_symbol');
          broken.dispose();

          // the error was reported once and cleared: a sound method trains on the same device
          const lora = applyTuning(model, { strategy: 'lora', r: 2 });
          const loss = await lora.trainStep(lora.optimizer({ lr: 1e-3 }), batch);
          expect(Number.isFinite(loss), `loss after the reported error: ${loss}`).toBe(true);
          expect(rt.lost).toBe(false);
          lora.dispose();
          model.dispose();
        }),
      HANG_MS,
    );
  }
});
