/**
 * The reparameterization family beyond plain LoRA: DoRA (dora.ts), PiSSA init (pissa.ts, svd.ts) and
 * several named adapters on one model (adapter-set.ts). Invariant rows through checkInvariants, then
 * each math piece against a float64 CPU computation, PEFT's file layout, and bad configs.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '@keel/kernels';
import { Linear, Parameter, backward, noGrad, reshape, seededRandom, tensor, tidy, type Tensor } from '@keel/autograd';
import { MultimodalModel, collate, parseSafetensors } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdapterSet } from './adapter-set.js';
import { applyTuning } from './apply.js';
import { registerBuiltinStrategies } from './builtin.js';
import { DORA_MAGNITUDE, doraStrategy, doraWeight, rowNorm } from './dora.js';
import { checkInvariants, fixedBatch, image, logitsOf, maxDiff, same, small, SEED, tok, weightsOf, type Case } from './invariant-harness.js';
import { loraDelta, loraScale } from './lora.js';
import { pissaFactors } from './pissa.js';
import { getStrategy, listStrategies, registerStrategy } from './registry.js';
import { svd, topSingular, type Svd } from './svd.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
  registerBuiltinStrategies();
  if (!listStrategies().some((d) => d.name === 'dora')) registerStrategy(doraStrategy);
  expect(getStrategy('dora')).toBe(doraStrategy);
});
afterAll(() => rt.destroy());

// ---------------------------------------------------------------- float64 helpers

/** Deterministic uniform values in [−1, 1). */
const values = (n: number, seed: number) => {
  const next = seededRandom(seed);
  return Array.from({ length: n }, () => 2 * next() - 1);
};
/** (n, k)·(k, m) row-major. */
function mm(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let p = 0; p < k; p++) for (let j = 0; j < m; j++) out[i * m + j]! += a[i * k + p]! * b[p * m + j]!;
  return out;
}
const transposed = (a: ArrayLike<number>, n: number, m: number) => Float64Array.from({ length: n * m }, (_, idx) => a[(idx % n) * m + Math.floor(idx / n)]!);
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((mx, v, i) => Math.max(mx, Math.abs(v - b[i]!)), 0);
const read = async (t: Tensor) => Float64Array.from((await t.toArray()) as Float32Array);

/** DoRA's W' in float64: m ⊙ V / ‖V‖_row, V = W + s·B·A − s·B₀·A₀ (B₀A₀ optional). */
function doraRef(w: number[], a: number[], b: number[], m: number[], s: number, O: number, I: number, r: number, init?: { a: number[]; b: number[] }) {
  const ba = mm(b, a, O, r, I);
  const ba0 = init ? mm(init.b, init.a, O, r, I) : new Float64Array(O * I);
  const v = w.map((x, i) => x + s * ba[i]! - s * ba0[i]!);
  const n = Array.from({ length: O }, (_, o) => Math.sqrt(v.slice(o * I, (o + 1) * I).reduce((acc, x) => acc + x * x, 0)));
  return { v, n, out: v.map((x, i) => (m[Math.floor(i / I)]! * x) / n[Math.floor(i / I)]!) };
}

// ---------------------------------------------------------------- invariant rows

const CASES: Case[] = [
  { label: 'dora (default q/v targets)', config: { strategy: 'dora', r: 4, alpha: 8 }, lr: 1e-2, changes: null },
  { label: 'dora (rsLoRA, projector)', config: { strategy: 'dora', r: 2, alpha: 4, rslora: true, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: null },
  // B₀, A₀ are frozen copies of the trainable factors: 2× their bytes
  { label: 'lora (init pissa)', config: { strategy: 'lora', r: 4, alpha: 8, init: 'pissa' }, lr: 1e-2, changes: null, extraStateFactor: 2 },
  // v_proj (8×16), r = 5: trainable 5·24 + 8 = 128, plus B₀, A₀ 120 → 248 / 128
  { label: 'dora (init pissa, v_proj)', config: { strategy: 'dora', r: 5, alpha: 10, init: 'pissa', targets: ['language_model.**.v_proj'] }, lr: 1e-2, changes: null, extraStateFactor: 31 / 16 },
];

describe('invariant table (reparameterization)', () => {
  for (const c of CASES) it(c.label, () => checkInvariants(rt, c));
});

// ---------------------------------------------------------------- DoRA math

describe('DoRA weight against float64', () => {
  const [O, I, r, s] = [5, 4, 2, 1.5];
  const w = values(O * I, 1);
  const a = values(r * I, 2);
  const b = values(O * r, 3);
  const m = values(O, 4).map((x) => 1 + Math.abs(x));
  const g = values(O * I, 5); // ∂L/∂W'
  const init = { a: values(r * I, 6), b: values(O * r, 7) };

  for (const pissa of [false, true]) {
    it(`W' and its gradient (norm detached)${pissa ? ', PiSSA residual form' : ''}`, async () => {
      const ref = doraRef(w, a, b, m, s, O, I, r, pissa ? init : undefined);
      // hand-derived gradient with n a constant: ∂V = (m/n)·G, ∂m = Σ_i G·V / n, ∂B = s·∂V·Aᵀ, ∂A = s·Bᵀ·∂V
      const dV = g.map((x, i) => (x * m[Math.floor(i / I)]!) / ref.n[Math.floor(i / I)]!);
      const dm = Array.from({ length: O }, (_, o) => g.slice(o * I, (o + 1) * I).reduce((acc, x, i) => acc + x * ref.v[o * I + i]!, 0) / ref.n[o]!);
      const dB = mm(dV, transposed(a, r, I), O, I, r).map((x) => s * x);
      const dA = mm(transposed(b, O, r), dV, r, O, I).map((x) => s * x);
      // the hand derivation against central differences of L = Σ G ⊙ W' with n held at its value
      const lossWithFixedNorm = (mv: number[], av: number[], bv: number[]) => {
        const { v } = doraRef(w, av, bv, mv, s, O, I, r, pissa ? init : undefined);
        return v.reduce((acc, x, i) => acc + (g[i]! * mv[Math.floor(i / I)]! * x) / ref.n[Math.floor(i / I)]!, 0);
      };
      const nudged = (xs: number[], i: number, h: number) => xs.map((x, j) => (j === i ? x + h : x));
      const fd = (xs: number[], f: (x: number[]) => number) => xs.map((_, i) => (f(nudged(xs, i, 1e-6)) - f(nudged(xs, i, -1e-6))) / 2e-6);
      expect(maxAbs(fd(m, (x) => lossWithFixedNorm(x, a, b)), dm)).toBeLessThan(1e-7);
      expect(maxAbs(fd(a, (x) => lossWithFixedNorm(m, x, b)), dA)).toBeLessThan(1e-7);
      expect(maxAbs(fd(b, (x) => lossWithFixedNorm(m, a, x)), dB)).toBeLessThan(1e-7);

      const [tw, ta, tb, tm] = [tensor(rt, w, [O, I]), new Parameter(tensor(rt, a, [r, I])), new Parameter(tensor(rt, b, [O, r])), new Parameter(tensor(rt, m, [O]))];
      const t0 = pissa ? { a: tensor(rt, init.a, [r, I]), b: tensor(rt, init.b, [O, r]) } : null;
      const out = tidy(() => {
        const y = doraWeight(tw, ta, tb, tm, s, t0);
        backward(y, tensor(rt, g, [O, I]));
        return y;
      });
      expect(maxAbs(await read(out), ref.out)).toBeLessThan(1e-5);
      expect(maxAbs(await read(tm.grad!), dm)).toBeLessThan(1e-5);
      expect(maxAbs(await read(ta.grad!), dA)).toBeLessThan(1e-5);
      expect(maxAbs(await read(tb.grad!), dB)).toBeLessThan(1e-5);
      // the norm really is detached: the full derivative of A (norm varying) differs
      const full = fd(a, (x) => doraRef(w, x, b, m, s, O, I, r, pissa ? init : undefined).out.reduce((acc, y, i) => acc + g[i]! * y, 0));
      expect(maxAbs(full, dA)).toBeGreaterThan(1e-3);
      for (const t of [tw, ta, tb, tm, out, t0?.a, t0?.b]) t?.dispose();
    });
  }

  it('a fresh magnitude (m = ‖W‖_row) gives W bit for bit; the PiSSA bracket is exactly 0 at B = B₀, A = A₀', async () => {
    const [tw, ta, tb] = [tensor(rt, w, [O, I]), tensor(rt, a, [r, I]), tensor(rt, b, [O, r])];
    const zero = tensor(rt, new Float32Array(O * r), [O, r]);
    const y = tidy(() => noGrad(() => doraWeight(tw, ta, zero, reshape(rowNorm(tw), [O]), s)));
    expect(same((await y.toArray()) as Float32Array, (await tw.toArray()) as Float32Array)).toBe(true);
    const delta = tidy(() => noGrad(() => loraDelta(ta, tb, s, { a: ta, b: tb })));
    expect(((await delta.toArray()) as Float32Array).every((x) => x === 0)).toBe(true);
    for (const t of [tw, ta, tb, zero, y, delta]) t.dispose();
  });
});

// ---------------------------------------------------------------- SVD and PiSSA factors

/** An orthonormal (n, k) basis from Gram–Schmidt on deterministic values. */
function orthonormal(n: number, k: number, seed: number): Float64Array {
  const cols: number[][] = [];
  for (let j = 0; j < k; j++) {
    const c = values(n, seed + j);
    for (const q of cols) {
      const d = c.reduce((acc, x, i) => acc + x * q[i]!, 0);
      for (let i = 0; i < n; i++) c[i]! -= d * q[i]!;
    }
    const norm = Math.sqrt(c.reduce((acc, x) => acc + x * x, 0));
    cols.push(c.map((x) => x / norm));
  }
  return Float64Array.from({ length: n * k }, (_, idx) => cols[idx % k]![Math.floor(idx / k)]!);
}

/** M = Q₁·diag(σ)·Q₂ᵀ with known singular values. */
function withSpectrum(rows: number, cols: number, sigma: number[], seed: number): Float64Array {
  const k = sigma.length;
  const q1 = orthonormal(rows, k, seed);
  const q2 = orthonormal(cols, k, seed + 100);
  return mm(q1.map((x, idx) => x * sigma[idx % k]!), transposed(q2, cols, k), rows, k, cols);
}

/** U·diag(S)·Vᵀ of (possibly truncated) factors. */
const product = (f: Svd) => mm(f.u.map((x, idx) => x * f.s[idx % f.rank]!), transposed(f.v, f.cols, f.rank), f.rows, f.rank, f.cols);

function checkSvd(m: ArrayLike<number>, rows: number, cols: number): void {
  const f = svd(m, rows, cols);
  const k = Math.min(rows, cols);
  expect(f.rank).toBe(k);
  expect([...f.s].every((x, i) => x >= 0 && (i === 0 || x <= f.s[i - 1]!))).toBe(true);
  const scale = Math.max(1, f.s[0]!);
  expect(maxAbs(product(f), m)).toBeLessThan(1e-13 * scale);
  // orthonormal columns where σ > 0 (a zero σ leaves a zero vector on the normalized side)
  const live = [...f.s].filter((x) => x > 1e-12 * scale).length;
  const gram = (x: Float64Array, n: number) => mm(transposed(x, n, k), x, k, n, k);
  for (const g of [gram(f.u, rows), gram(f.v, cols)]) for (let i = 0; i < live; i++) for (let j = 0; j < live; j++) expect(Math.abs(g[i * k + j]! - (i === j ? 1 : 0))).toBeLessThan(1e-13);
  // sign convention: the largest-magnitude entry of each u_j is positive
  for (let j = 0; j < live; j++) {
    const col = Array.from({ length: rows }, (_, i) => f.u[i * k + j]!);
    const big = col.reduce((bi, x, i) => (Math.abs(x) > Math.abs(col[bi]!) ? i : bi), 0);
    expect(col[big]!).toBeGreaterThan(0);
  }
}

describe('svd (float64 one-sided Jacobi)', () => {
  it('reconstructs tall, wide, square and rank-deficient matrices with orthonormal factors', () => {
    checkSvd(values(7 * 5, 11), 7, 5);
    checkSvd(values(4 * 6, 12), 4, 6);
    checkSvd(values(1 * 3, 13), 1, 3);
    checkSvd(mm(values(6 * 2, 14), values(2 * 5, 15), 6, 2, 5), 6, 5); // rank 2
    checkSvd(new Float64Array(3 * 2), 3, 2);
  });

  it('finds known singular values, repeated ones included, and is deterministic', () => {
    const sigma = [5, 3, 3, 1e-3, 0];
    const m = withSpectrum(8, 6, sigma, 21);
    const f = svd(m, 8, 6);
    expect(maxAbs(f.s.slice(0, 5), sigma)).toBeLessThan(1e-13);
    expect(f.s[5]!).toBeLessThan(1e-13);
    const again = svd(m, 8, 6);
    for (const key of ['u', 's', 'v'] as const) expect(again[key].every((x, i) => Object.is(x, f[key][i]))).toBe(true);
    const wide = svd(transposed(m, 8, 6), 6, 8);
    expect(maxAbs(wide.s, f.s)).toBeLessThan(1e-13);
  });

  it('topSingular keeps the leading triplets (Eckart–Young: the residual holds the rest of the spectrum)', () => {
    const [rows, cols, r] = [9, 7, 3];
    const m = values(rows * cols, 31);
    const full = svd(m, rows, cols);
    const top = topSingular(m, rows, cols, r);
    expect([...top.s]).toEqual([...full.s.slice(0, r)]);
    const part = product(top);
    const residual = m.reduce((acc, x, i) => acc + (x - part[i]!) ** 2, 0);
    expect(Math.abs(residual - full.s.slice(r).reduce((acc, x) => acc + x * x, 0))).toBeLessThan(1e-12);
    expect(() => topSingular(m, rows, cols, 0)).toThrow(/r must be an integer in \[1, 7\].*got 0/);
    expect(() => topSingular(m, rows, cols, 8)).toThrow(/r must be an integer in \[1, 7\].*got 8/);
    expect(() => svd([1, NaN], 1, 2)).toThrow(/value \[0, 1\] is NaN/);
    expect(() => svd([1, 2, 3], 2, 2)).toThrow(/expected 2×2 = 4 values, got 3/);
  });

  it('pissaFactors: s·B₀·A₀ is W\'s rank-r principal part, split evenly (‖B₀[:, j]‖ = ‖A₀[j, :]‖ = √(σ_j / s))', () => {
    const [O, I, r, s] = [6, 4, 2, 2.5];
    const w = values(O * I, 41);
    const { a, b } = pissaFactors(Float32Array.from(w), O, I, r, s);
    const top = topSingular(Float32Array.from(w), O, I, r);
    expect(maxAbs(mm(b, a, O, r, I).map((x) => s * x), product(top))).toBeLessThan(1e-5);
    for (let j = 0; j < r; j++) {
      const colB = Math.hypot(...Array.from({ length: O }, (_, o) => b[o * r + j]!));
      const rowA = Math.hypot(...Array.from({ length: I }, (_, i) => a[j * I + i]!));
      expect(Math.abs(colB - Math.sqrt(top.s[j]! / s))).toBeLessThan(1e-6);
      expect(Math.abs(rowA - Math.sqrt(top.s[j]! / s))).toBeLessThan(1e-6);
    }
  });
});

// ---------------------------------------------------------------- on the model

const withModel = async (fn: (m: MultimodalModel) => Promise<void> | void) => {
  const model = new MultimodalModel(rt, small, { seed: SEED });
  try {
    await fn(model);
  } finally {
    model.dispose();
  }
};
const linearAt = (m: MultimodalModel, path: string) => [...m.namedModules()].find(([p]) => p === path)![1] as Linear;
const safetensorsOf = (files: { safetensors: Uint8Array }) => parseSafetensors(files.safetensors, 'adapter').tensors;
const Q0 = 'language_model.model.layers.0.self_attn.q_proj';

describe('PiSSA init on the model', () => {
  it('starts from the top-r triplets once ready; the function is the base exactly before and after', () =>
    withModel(async (model) => {
      const batch = fixedBatch(model.config);
      const base = await logitsOf(model, batch);
      const handle = applyTuning(model, { strategy: 'lora', r: 4, alpha: 8, init: 'pissa' });
      expect(() => handle.hooks.beforeOptimizerStep!()).toThrow(/PiSSA's initialization .* has not finished; await handle.ready\(\)/);
      await handle.ready();
      handle.hooks.beforeOptimizerStep!();
      expect(same(await logitsOf(model, batch), base), 'initialized = base').toBe(true);
      const lin = linearAt(model, Q0);
      const [O, I] = [lin.outFeatures, lin.inFeatures];
      const params = handle.trainableParameters();
      const [a, b, w] = await Promise.all([read(params.get(`${Q0}.lora_A`)!), read(params.get(`${Q0}.lora_B`)!), read(lin.weight)]);
      const s = loraScale({ r: 4, alpha: 8, rslora: false });
      expect(maxAbs(mm(b, a, O, 4, I).map((x) => s * x), product(topSingular(w, O, I, 4)))).toBeLessThan(1e-5);
      handle.dispose();
    }));

  it('saves a rank-2r plain LoRA (PEFT can load it on the original base); load cancels a pending init and round-trips bit for bit', () =>
    withModel(async (model) => {
      const batch = fixedBatch(model.config);
      const before = await weightsOf(model);
      const handle = applyTuning(model, { strategy: 'lora', r: 3, alpha: 6, init: 'pissa', targets: [Q0] });
      const opt = handle.optimizer({ lr: 1e-2 });
      for (let i = 0; i < 2; i++) await handle.trainStep(opt, batch);
      const files = await handle.toFiles();
      const json = JSON.parse(files.configJson);
      expect(json).toMatchObject({ peft_type: 'LORA', r: 6, lora_alpha: 12, init_lora_weights: true, config: { r: 3, alpha: 6, init: 'pissa' } });
      const peftA = safetensorsOf(files).get(`base_model.model.${Q0}.lora_A.weight`)!;
      const peftB = safetensorsOf(files).get(`base_model.model.${Q0}.lora_B.weight`)!;
      expect([peftA.shape, peftB.shape]).toEqual([[6, 16], [16, 6]]);
      // the files' plain LoRA (s' = 12 / 6 = s) is exactly what merging adds to the base weight
      handle.merge();
      const merged = await read(linearAt(model, Q0).weight);
      const delta = mm(peftB.data as Float32Array, peftA.data as Float32Array, 16, 6, 16).map((x) => 2 * x);
      expect(maxAbs(merged.map((x, i) => x - before.get(`${Q0}.weight`)![i]!), delta)).toBeLessThan(1e-5);
      handle.dispose();
      // a fresh handle loads while its SVD is still pending: the SVD result must not overwrite the load
      const fresh = new MultimodalModel(rt, small, { seed: SEED });
      const loaded = applyTuning(fresh, { strategy: 'lora', r: 3, alpha: 6, init: 'pissa', targets: [Q0] });
      loaded.loadFiles(files);
      await loaded.ready();
      expect(Buffer.from((await loaded.toFiles()).safetensors).equals(Buffer.from(files.safetensors))).toBe(true);
      loaded.dispose();
      fresh.dispose();
    }));

  it('rsLoRA keeps the scale when saved at rank 2r: lora_alpha → √2·alpha', () => {
    const def = getStrategy('lora');
    const json = def.peft!.config(def.schema.parse({ r: 4, alpha: 8, rslora: true, init: 'pissa' }), []);
    expect(json.r).toBe(8);
    expect((json.lora_alpha as number) / Math.sqrt(8)).toBeCloseTo(8 / Math.sqrt(4), 12);
  });
});

describe('DoRA files in PEFT layout', () => {
  it('writes use_dora and base_model.model.<path>.lora_magnitude_vector = ‖W‖_row (no .weight suffix)', () =>
    withModel(async (model) => {
      const handle = applyTuning(model, { strategy: 'dora', r: 4, alpha: 16 });
      const files = await handle.toFiles({ baseModel: 'keel/base' });
      expect(JSON.parse(files.configJson)).toMatchObject({ strategy: 'dora', peft_type: 'LORA', use_dora: true, r: 4, lora_alpha: 16, init_lora_weights: true, base_model_name_or_path: 'keel/base' });
      const tensors = safetensorsOf(files);
      const mag = tensors.get(`base_model.model.${Q0}.${DORA_MAGNITUDE}`)!;
      expect(mag.shape).toEqual([16]);
      expect(tensors.get(`base_model.model.${Q0}.lora_A.weight`)!.shape).toEqual([4, 16]);
      expect([...tensors.keys()].filter((k) => k.endsWith(`${DORA_MAGNITUDE}.weight`))).toEqual([]);
      expect(tensors.size).toBe(12); // 4 targets × (A, B, m)
      const w = await read(linearAt(model, Q0).weight);
      const norms = Array.from({ length: 16 }, (_, o) => Math.hypot(...w.slice(o * 16, (o + 1) * 16)));
      expect(maxAbs(mag.data as Float32Array, norms)).toBeLessThan(1e-5);
      expect(getStrategy('lora').peft!.stateName(`base_model.model.${Q0}.${DORA_MAGNITUDE}`)).toBeNull();
      expect(getStrategy('dora').peft!.stateName(`base_model.model.${Q0}.${DORA_MAGNITUDE}`)).toBe(`${Q0}.${DORA_MAGNITUDE}`);
      handle.dispose();
      const lora = applyTuning(model, { strategy: 'lora', r: 4, alpha: 16 });
      expect(() => lora.loadFiles(files, 'dir')).toThrow(/saved by strategy 'dora', this handle is 'lora'/);
      lora.dispose();
    }));
});

// ---------------------------------------------------------------- named adapters

describe('named adapters (AdapterSet)', () => {
  it('two LoRA adapters trained on different batches: use() gives each one exactly, useNone() the base; save → load', () =>
    withModel(async (model) => {
      const batchA = fixedBatch(model.config);
      const exB = [{ image: image(model.config, 5), prompt: 'what color is the square ?', answer: 'blue' }, { image: null, prompt: 'is the circle big ?', answer: 'no' }];
      const batchB = collate(exB, tok, model.config);
      const base = await logitsOf(model, batchA);
      const set = new AdapterSet(model);
      const train = async (name: string, batch: typeof batchA, seed: number) => {
        const h = applyTuning(model, { strategy: 'lora', r: 2, alpha: 4, name, seed });
        set.add(name, h);
        set.use(name);
        const opt = h.optimizer({ lr: 2e-2 });
        for (let i = 0; i < 3; i++) await h.trainStep(opt, batch);
        return logitsOf(model, batchA);
      };
      const tunedA = await train('default', batchA, 0);
      const tunedB = await train('b', batchB, 1);
      expect(maxDiff(tunedA, tunedB)).toBeGreaterThan(1e-4);
      expect(linearAt(model, Q0).hooks.map((h) => h.owner)).toEqual(['lora:default', 'lora:b']);
      for (const [name, tuned] of [['default', tunedA], ['b', tunedB], ['b', tunedB], ['default', tunedA]] as const) {
        set.use(name);
        expect(same(await logitsOf(model, batchA), tuned), `${name} = its own logits`).toBe(true);
      }
      set.useNone();
      expect(same(await logitsOf(model, batchA), base), 'none = base').toBe(true);
      expect([set.names(), set.active]).toEqual([['default', 'b'], null]);

      expect(() => applyTuning(model, { strategy: 'lora', r: 2, name: 'b' })).toThrow(/'language_model\..*' already carries the lora adapter 'b'.*config field 'name'/);
      expect(() => set.use('c')).toThrow(/no adapter named 'c'; the set holds 'default', 'b'/);
      const other = applyTuning(model, { strategy: 'lora', r: 2, name: 'x' });
      expect(() => set.add('c', other)).toThrow(/named 'x' \(config field 'name'\), not 'c'/);
      other.dispose();

      const dir = await mkdtemp(join(tmpdir(), 'keel-adapter-set-'));
      try {
        await set.save(dir);
        expect((await readdir(dir)).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'b']);
        const fresh = new MultimodalModel(rt, small, { seed: SEED });
        const loaded = await AdapterSet.load(fresh, dir);
        expect(loaded.names()).toEqual(['default', 'b']);
        expect(same(await logitsOf(fresh, batchA), base), 'loaded set starts disabled').toBe(true);
        for (const [name, tuned] of [['b', tunedB], ['default', tunedA]] as const) {
          loaded.use(name);
          expect(same(await logitsOf(fresh, batchA), tuned), `loaded ${name}`).toBe(true);
        }
        loaded.dispose();
        fresh.dispose();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      set.dispose();
      for (const [, m] of model.namedModules()) if (m instanceof Linear) expect(m.hooks).toEqual([]);
      expect(model.parameters().every((p) => p.requiresGrad)).toBe(true);
    }));
});

// ---------------------------------------------------------------- bad configs

describe('config validation (reparameterization)', () => {
  it('names the field: rank 0, unknown init, bad name, PiSSA rank above min(O, I), a nameless method in a set', () =>
    withModel((m) => {
      expect(() => applyTuning(m, { strategy: 'dora', r: 0 })).toThrow(/dora config is invalid: r: rank r must be > 0/);
      expect(() => applyTuning(m, { strategy: 'lora', init: 'gaussian' })).toThrow(/lora config is invalid: init: init must be 'default' or 'pissa'/);
      expect(() => applyTuning(m, { strategy: 'dora', init: 'olora' })).toThrow(/dora config is invalid: init: init must be 'default' or 'pissa'/);
      expect(() => applyTuning(m, { strategy: 'lora', name: 'my adapter' })).toThrow(/lora config is invalid: name: name must start with a letter or digit/);
      expect(() => applyTuning(m, { strategy: 'dora', r: 9, init: 'pissa', targets: ['language_model.**.v_proj'] })).toThrow(/dora: r = 9 exceeds min\(O, I\) = 8 of 'language_model\.model\.layers\.0\.self_attn\.v_proj' \(8×16\)/);
      for (const [, mod] of m.namedModules()) if (mod instanceof Linear) expect(mod.hooks).toEqual([]);
      expect(() => applyTuning(m, { strategy: 'full', name: 'x' })).toThrow(/full config is invalid: .*name/);
      const bitfit = applyTuning(m, { strategy: 'bitfit' });
      expect(() => new AdapterSet(m).add('default', bitfit)).toThrow(/'bitfit' adapters have no name \(config field 'name'\)/);
      bitfit.dispose();
    }));
});
