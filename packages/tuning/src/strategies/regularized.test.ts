/**
 * L2-SP, EWC, WiSE-FT, DARE and TIES: the invariant table rows (invariant-harness.ts), every
 * transform and penalty against a plain float64 CPU computation, the lifecycle of post-hoc methods
 * (finalize before save/merge, finalize while disabled, load = finalized) and bad configs.
 */
import { Runtime } from '@keel/kernels';
import { Parameter, backward, noGrad, seededRandom, tensor, tidy, type Tensor } from '@keel/autograd';
import { MultimodalModel, answerLoss, collate, streamSeed, type TrainingBatch } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTuning, loadTuningFromFiles, parseStrategyConfig, type TuningHandle } from './apply.js';
import { registerBuiltinStrategies } from './builtin.js';
import { checkInvariants, fixedBatch, image, lossOf, same, small, tok, SEED, type Case } from './invariant-harness.js';
import { dareStrategy, tiesMerge, tiesStrategy, wiseFtStrategy } from './posthoc.js';
import { diagonalFisher, ewcStrategy, l2spStrategy, weightPenalty } from './regularized.js';
import { getStrategy, listStrategies, registerStrategy } from './registry.js';
import type { StrategyDefinition } from './strategy.js';

const DEFS = [l2spStrategy, ewcStrategy, wiseFtStrategy, dareStrategy, tiesStrategy] as StrategyDefinition<unknown>[];

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
  registerBuiltinStrategies();
  const names = new Set(listStrategies().map((d) => d.name));
  for (const def of DEFS) if (!names.has(def.name)) registerStrategy(def);
  for (const def of DEFS) expect(getStrategy(def.name)).toBe(def);
});
afterAll(() => rt.destroy());

const PROJ = (n: string) => n.startsWith('multi_modal_projector.');
const CASES: Case[] = [
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
];

describe('invariant table (regularized and post-hoc methods)', () => {
  for (const c of CASES) it(c.label, () => checkInvariants(rt, c));
});

// ------------------------------------------------------------------ float64 helpers

const read = async (t: Tensor) => Float64Array.from((await t.toArray()) as Float32Array);
async function snapshotOf(params: ReadonlyMap<string, Tensor>): Promise<Map<string, Float64Array>> {
  const out = new Map<string, Float64Array>();
  for (const [name, p] of params) out.set(name, await read(p));
  return out;
}
/** |got − want| ≤ atol + rtol·|want| everywhere (the first miss is reported). */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const ok = Math.abs(got[i]! - want[i]!) <= atol + rtol * Math.abs(want[i]!);
    if (!ok) expect.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}
const uniform = (n: number, seed: number, scale = 1) => {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);
};
const f32 = Math.fround;

function secondBatch(model: MultimodalModel): TrainingBatch {
  return collate(
    [
      { image: image(model.config, 5), prompt: 'what color is the square ?', answer: 'blue' },
      { image: null, prompt: 'is the circle big ?', answer: 'no' },
    ],
    tok,
    model.config,
  );
}

/** Trains `handle` a few steps on the fixed batch; returns W0 and the trained W of its trainable tensors. */
async function trained(handle: TuningHandle, steps = 3): Promise<{ w0: Map<string, Float64Array>; w: Map<string, Float64Array> }> {
  const params = handle.trainableParameters();
  const w0 = await snapshotOf(params);
  const opt = handle.optimizer({ lr: 1e-2 });
  for (let i = 0; i < steps; i++) await handle.trainStep(opt, fixedBatch(handle.model.config));
  return { w0, w: await snapshotOf(params) };
}

function withTuning(config: { strategy: string; [k: string]: unknown }, fn: (h: TuningHandle) => Promise<void>) {
  return async () => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    const handle = applyTuning(model, config);
    try {
      await fn(handle);
    } finally {
      handle.dispose();
      model.dispose();
    }
  };
}

// ------------------------------------------------------------------ penalties

describe('L2-SP and EWC penalties', () => {
  it('weightPenalty: value (λ/2)·Σ F(W − W0)² and gradient λ·F ⊙ (W − W0) match float64', async () => {
    const shapes = [[7, 5], [13], [3, 4, 6]];
    const lambda = 0.37;
    for (const withFisher of [false, true]) {
      const data = shapes.map((s, t) => {
        const n = s.reduce((a, b) => a * b, 1);
        return { s, w: uniform(n, 10 + t, 2), w0: uniform(n, 20 + t, 2), f: uniform(n, 30 + t).map(Math.abs) };
      });
      const w = data.map((d) => new Parameter(tensor(rt, d.w, d.s)));
      const w0 = data.map((d) => tensor(rt, d.w0, d.s));
      const fisher = data.map((d) => tensor(rt, d.f, d.s));
      const value = tidy(() => {
        const l = weightPenalty(w, w0, lambda, withFisher ? fisher : undefined)!;
        backward(l);
        return l;
      });
      const [v, ...grads] = await Promise.all([value.toArray(), ...w.map((p) => p.grad!.toArray())]);
      {
        let want = 0;
        data.forEach((d, t) => {
          const g = new Float64Array(d.w.length);
          for (let i = 0; i < d.w.length; i++) {
            const diff = d.w[i]! - d.w0[i]!;
            const fi = withFisher ? d.f[i]! : 1;
            want += (lambda / 2) * fi * diff * diff;
            g[i] = lambda * fi * diff;
          }
          expectClose(grads[t] as Float32Array, g, 1e-5, 1e-6, `dW (tensor ${t}, fisher ${withFisher})`);
        });
        expectClose(v as Float32Array, [want], 1e-5, 0, `penalty (fisher ${withFisher})`);
        for (const t of [...w, ...w0, ...fisher, value]) t.dispose();
      }
    }
  });

  it('L2-SP through the strategy: 0 at W0, then the float64 value and gradient against its own W0 snapshot', async () => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    const config = parseStrategyConfig(l2spStrategy, { lambda: 0.5, targets: ['multi_modal_projector.**'] });
    const inst = l2spStrategy.apply(model, config, {});
    const w0 = await snapshotOf(inst.trainable);
    expect(await tidy(() => inst.extraLoss!()!).item()).toBe(0);
    for (const [name, p] of inst.trainable) rt.write(p.buffer, Float32Array.from(w0.get(name)!, (v, i) => v + 0.01 * Math.sin(i * 1.7 + name.length)));
    const w = await snapshotOf(inst.trainable);
    const value = await tidy(() => {
      const l = inst.extraLoss!()!;
      backward(l);
      return l;
    }).item();
    let want = 0;
    for (const [name, p] of inst.trainable) {
      const a = w.get(name)!;
      const b = w0.get(name)!;
      want += a.reduce((s, v, i) => s + 0.25 * (v - b[i]!) ** 2, 0);
      expectClose((await p.grad!.toArray()) as Float32Array, a.map((v, i) => 0.5 * (v - b[i]!)), 1e-4, 1e-7, `${name} dW`);
    }
    expectClose([value], [want], 1e-5, 0, 'penalty');
    expect(inst.extraStateBytes()).toBe(4 * [...inst.trainable.values()].reduce((s, p) => s + p.size, 0));
    inst.merge();
    expect(inst.extraLoss!()).toBeNull();
    inst.remove();
    model.dispose();
  });

  it('EWC: diagonal Fisher = Σ_b g_b² / mean (float64), used in the penalty; flags and grads restored', async () => {
    const targets = ['multi_modal_projector.**', 'language_model.model.norm'];
    const model = new MultimodalModel(rt, small, { seed: SEED });
    const batches = [fixedBatch(model.config), secondBatch(model)];
    // reference gradients on an identical model, read back per batch
    const twin = new MultimodalModel(rt, small, { seed: SEED });
    const twinParams = new Map([...twin.namedParameters()].filter(([n]) => PROJ(n) || n === 'language_model.model.norm.weight'));
    const fRef = new Map([...twinParams].map(([n, p]) => [n, new Float64Array(p.size)]));
    for (const b of batches) {
      tidy(() => backward(answerLoss(twin, b)));
      for (const [n, p] of twinParams) (await read(p.grad!)).forEach((g, i) => (fRef.get(n)![i]! += g * g));
      twin.zeroGrad();
    }
    twin.dispose();
    const all = [...fRef.values()];
    const mean = all.reduce((s, f) => s + f.reduce((a, b) => a + b, 0), 0) / all.reduce((s, f) => s + f.length, 0);
    for (const f of all) f.forEach((v, i) => (f[i] = v / mean));

    const params = new Map([...model.namedParameters()].filter(([n]) => twinParams.has(n)));
    const frozen = model.namedParameters().get('language_model.model.layers.0.mlp.up_proj.weight')!;
    frozen.requiresGrad = false;
    const fisher = diagonalFisher(model, params, batches);
    for (const [n, f] of fisher) expectClose((await f.toArray()) as Float32Array, fRef.get(n)!, 1e-4, 1e-6, `F̂ ${n}`);
    expect(frozen.requiresGrad).toBe(false);
    expect(model.parameters().filter((p) => p !== frozen).every((p) => p.requiresGrad && p.grad === null)).toBe(true);
    for (const f of fisher.values()) f.dispose();
    frozen.requiresGrad = true;

    const config = parseStrategyConfig(ewcStrategy, { lambda: 2, targets });
    const inst = ewcStrategy.apply(model, config, { generalBatches: batches });
    const w0 = await snapshotOf(inst.trainable);
    expect(await tidy(() => inst.extraLoss!()!).item()).toBe(0);
    for (const [name, p] of inst.trainable) rt.write(p.buffer, Float32Array.from(w0.get(name)!, (v, i) => v + 0.02 * Math.cos(i * 0.9)));
    const w = await snapshotOf(inst.trainable);
    const value = await tidy(() => {
      const l = inst.extraLoss!()!;
      backward(l);
      return l;
    }).item();
    let want = 0;
    for (const [name, p] of inst.trainable) {
      const [a, b, f] = [w.get(name)!, w0.get(name)!, fRef.get(name)!];
      want += a.reduce((s, v, i) => s + f[i]! * (v - b[i]!) ** 2, 0);
      expectClose((await p.grad!.toArray()) as Float32Array, a.map((v, i) => 2 * f[i]! * (v - b[i]!)), 1e-3, 1e-6, `${name} dW`);
    }
    expectClose([value], [want], 1e-4, 0, 'EWC penalty'); // λ/2 = 1
    expect(inst.extraStateBytes()).toBe(8 * [...inst.trainable.values()].reduce((s, p) => s + p.size, 0));
    inst.remove();
    model.dispose();
  });

  it('EWC without general batches names generalBatches; a penalty step still lowers the loss', async () => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    expect(() => applyTuning(model, { strategy: 'ewc' })).toThrow(/ewc: context\.generalBatches is missing/);
    expect(() => applyTuning(model, { strategy: 'ewc' }, { generalBatches: [] })).toThrow(/ewc: context\.generalBatches is empty/);
    expect(model.parameters().every((p) => p.requiresGrad)).toBe(true);
    const handle = applyTuning(model, { strategy: 'l2sp', lambda: 100, targets: ['multi_modal_projector.**'] });
    const opt = handle.optimizer({ lr: 1e-2 });
    const batch = fixedBatch(model.config);
    await handle.trainStep(opt, batch);
    const l1 = await lossOf(model, batch);
    // the second step's reported loss carries the (positive) penalty on top of the answer loss
    expect(await handle.trainStep(opt, batch)).toBeGreaterThan(l1);
    handle.dispose();
    model.dispose();
  });
});

// ------------------------------------------------------------------ post-hoc transforms

describe('post-hoc transforms against float64', () => {
  it(
    'WiSE-FT: W0 + α·(W − W0); disabled = W0, enabled = finalized; finalize while disabled works',
    withTuning({ strategy: 'wise_ft', alpha: 0.3, targets: ['multi_modal_projector.**'] }, async (h) => {
      const { w0, w } = await trained(h);
      h.disable();
      h.finalize(); // transforms the stash; the model stays at W0
      for (const [name, p] of h.trainableParameters()) expect(same((await p.toArray()) as Float32Array, Float32Array.from(w0.get(name)!))).toBe(true);
      h.enable();
      for (const [name, p] of h.trainableParameters()) {
        const [a, b] = [w.get(name)!, w0.get(name)!];
        expectClose(await read(p), b.map((v, i) => v + 0.3 * (a[i]! - v)), 1e-6, 1e-7, `${name}`);
      }
    }),
  );

  it(
    'DARE: dropped entries return to W0 exactly, survivors are W0 + δ/(1 − p); the mask is the seeded stream, ≈ p dropped',
    withTuning({ strategy: 'dare', p: 0.7, seed: 5, targets: ['multi_modal_projector.**', 'language_model.**.mlp'] }, async (h) => {
      const { w0, w } = await trained(h);
      h.finalize();
      let dropped = 0;
      let total = 0;
      for (const [name, p] of h.trainableParameters()) {
        const u = seededRandom(streamSeed(5, name));
        const got = await read(p);
        const [a, b] = [w.get(name)!, w0.get(name)!];
        const want = b.map((v, i) => (u() < 0.7 ? (dropped++, v) : v + (a[i]! - v) / 0.3));
        total += b.length;
        expectClose(got, want, 1e-5, 1e-6, name);
        got.forEach((v, i) => want[i] === b[i] && a[i] !== b[i] && expect(v).toBe(b[i]));
      }
      const sd = Math.sqrt(total * 0.7 * 0.3);
      expect(Math.abs(dropped - 0.7 * total)).toBeLessThan(4 * sd);
    }),
  );

  it(
    'TIES (one task vector): the top ⌈ρn⌉ |δ| per tensor survive, scaled by λ; the rest return to W0 exactly',
    withTuning({ strategy: 'ties', density: 0.3, lambda: 1.5, targets: ['multi_modal_projector.**', 'language_model.model.layers.0.self_attn'] }, async (h) => {
      const { w0, w } = await trained(h);
      h.finalize();
      for (const [name, p] of h.trainableParameters()) {
        const [a, b] = [w.get(name)!, w0.get(name)!];
        const delta = a.map((v, i) => f32(v - b[i]!)); // the f32 task vector the device computes
        const k = Math.ceil(0.3 * delta.length);
        const kth = [...delta].map(Math.abs).sort((x, y) => y - x)[k - 1]!;
        const want = b.map((v, i) => (Math.abs(delta[i]!) >= kth ? v + 1.5 * delta[i]! : v));
        const got = await read(p);
        expectClose(got, want, 1e-5, 1e-6, name);
        expect(got.filter((v, i) => v !== b[i]).length, `${name} survivors`).toBe(delta.filter((d) => Math.abs(d) >= kth && d !== 0).length);
      }
    }),
  );

  it('tiesMerge (several task vectors): trim, elect the sign of the trimmed sum, disjoint mean, scale', async () => {
    const shapes: Record<string, number[]> = { a: [9, 7], b: [50] };
    const K = 3;
    const density = 0.5;
    const lambda = 0.8;
    const base = new Map(Object.entries(shapes).map(([n, s], t) => [n, tensor(rt, uniform(s.reduce((x, y) => x * y, 1), 40 + t), s)]));
    const raw = Array.from({ length: K }, (_, k) => new Map(Object.entries(shapes).map(([n, s], t) => [n, uniform(s.reduce((x, y) => x * y, 1), 100 * k + t, 0.5)])));
    const deltas = raw.map((m) => new Map([...m].map(([n, d]) => [n, tensor(rt, d, shapes[n]!)])));
    const merged = tiesMerge(base, deltas, { density, lambda });
    let conflicts = 0;
    for (const [name, s] of Object.entries(shapes)) {
      const w0 = await read(base.get(name)!);
      const trimmed = raw.map((m) => {
        const d = Float64Array.from(m.get(name)!);
        const kth = [...d].map(Math.abs).sort((x, y) => y - x)[Math.ceil(density * d.length) - 1]!;
        return d.map((v) => (Math.abs(v) >= kth ? v : 0));
      });
      const want = w0.map((v, i) => {
        const gamma = Math.sign(trimmed.reduce((acc, t) => acc + t[i]!, 0));
        const agree = trimmed.map((t) => t[i]!).filter((x) => x !== 0 && Math.sign(x) === gamma);
        if (trimmed.some((t) => t[i]! !== 0 && Math.sign(t[i]!) !== gamma)) conflicts++;
        return v + (agree.length ? (lambda * agree.reduce((x, y) => x + y, 0)) / agree.length : 0);
      });
      expect(merged.get(name)!.shape).toEqual(s);
      expectClose(await read(merged.get(name)!), want, 1e-5, 1e-6, name);
    }
    expect(conflicts, 'the data exercises sign election').toBeGreaterThan(10);
    // one task vector: the merge is trim and scale
    const single = tiesMerge(base, [deltas[0]!], { density, lambda });
    const d0 = Float64Array.from(raw[0]!.get('b')!);
    const kth = [...d0].map(Math.abs).sort((x, y) => y - x)[24]!;
    const w0b = await read(base.get('b')!);
    expectClose(await read(single.get('b')!), w0b.map((v, i) => (Math.abs(d0[i]!) >= kth ? v + lambda * d0[i]! : v)), 1e-6, 1e-7, 'single');
    expect(() => tiesMerge(base, [], {})).toThrow(/deltas is empty/);
    expect(() => tiesMerge(base, deltas, { density: 0 })).toThrow(/density: density must be in \(0, 1\]/);
    expect(() => tiesMerge(base, deltas, { lambda: -1 })).toThrow(/lambda: lambda must be > 0/);
    expect(() => tiesMerge(base, [new Map([['a', deltas[0]!.get('b')!]])])).toThrow(/deltas\[0\] does not fit the base: 'a' has shape \[50\], the base \[9,7\]; missing 'b'/);
    for (const m of [base, merged, single, ...deltas]) for (const t of m.values()) t.dispose();
  });
});

describe('post-hoc lifecycle', () => {
  it(
    'save and merge before finalize() throw; a load is final (finalize is then a no-op)',
    withTuning({ strategy: 'wise_ft', targets: ['multi_modal_projector.**'] }, async (h) => {
      const { w0 } = await trained(h, 2);
      await expect(h.toFiles()).rejects.toThrow(/wise_ft\.state: call finalize\(\) first/);
      expect(() => h.merge()).toThrow(/wise_ft\.merge: call finalize\(\) first/);
      h.finalize();
      expect(() => h.finalize()).toThrow(/already finalized/);
      const files = await h.toFiles();
      const fresh = new MultimodalModel(rt, small, { seed: SEED });
      const loaded = loadTuningFromFiles(fresh, files);
      const finalW = await snapshotOf(h.trainableParameters());
      loaded.finalize(); // the loaded weights already are final: nothing changes
      for (const [name, p] of loaded.trainableParameters()) expect(same((await p.toArray()) as Float32Array, Float32Array.from(finalW.get(name)!)), name).toBe(true);
      loaded.disable();
      for (const [name, p] of loaded.trainableParameters()) expect(same((await p.toArray()) as Float32Array, Float32Array.from(w0.get(name)!)), name).toBe(true);
      loaded.dispose();
      fresh.dispose();
    }),
  );
});

// ------------------------------------------------------------------ configs

describe('config validation', () => {
  it('defaults, and bad values named by field', () => {
    expect(parseStrategyConfig(l2spStrategy, {})).toEqual({ lambda: 0.01, targets: ['**'] });
    expect(parseStrategyConfig(wiseFtStrategy, {})).toEqual({ alpha: 0.5, targets: ['**'] });
    expect(parseStrategyConfig(dareStrategy, {})).toEqual({ p: 0.9, seed: 0, targets: ['**'] });
    expect(parseStrategyConfig(tiesStrategy, {})).toEqual({ density: 0.2, lambda: 1, targets: ['**'] });
    const model = new MultimodalModel(rt, small, { seed: SEED });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ strategy: 'l2sp', lambda: 0 }, /l2sp config is invalid: lambda: lambda must be > 0/],
      [{ strategy: 'ewc', lambda: -1 }, /ewc config is invalid: lambda: lambda must be > 0/],
      [{ strategy: 'wise_ft', alpha: 1.5 }, /alpha: alpha must be in \[0, 1\]/],
      [{ strategy: 'wise_ft', alpha: -0.1 }, /alpha: alpha must be in \[0, 1\]/],
      [{ strategy: 'dare', p: 1 }, /p: p must be in \[0, 1\)/],
      [{ strategy: 'dare', p: -0.5 }, /p: p must be in \[0, 1\)/],
      [{ strategy: 'dare', seed: 1.5 }, /seed: seed must be an integer/],
      [{ strategy: 'ties', density: 0 }, /density: density must be in \(0, 1\]/],
      [{ strategy: 'ties', density: 1.2 }, /density: density must be in \(0, 1\]/],
      [{ strategy: 'ties', lambda: 0 }, /lambda: lambda must be > 0/],
      [{ strategy: 'l2sp', targets: [] }, /targets: give at least one target pattern/],
      [{ strategy: 'ties', alpha: 0.5 }, /ties config is invalid: .*alpha/],
      [{ strategy: 'wise_ft', targets: ['vision.**'] }, /wise_ft: target pattern 'vision\.\*\*' matches no parameter/],
    ];
    for (const [config, message] of bad) expect(() => applyTuning(model, config as { strategy: string }), JSON.stringify(config)).toThrow(message);
    expect(parseStrategyConfig(dareStrategy, { p: 0 }).p).toBe(0);
    expect(parseStrategyConfig(tiesStrategy, { density: 1 }).density).toBe(1);
    expect(model.parameters().every((p) => p.requiresGrad && p.grad === null)).toBe(true);
    noGrad(() => model.dispose());
  });
});
