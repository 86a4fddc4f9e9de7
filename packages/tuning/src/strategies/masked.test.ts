/**
 * SPIDER, the top-k hard-mask family, MagnitudeMask and HFT: each driven on the small model with given
 * gradients and compared with a float64 CPU run of its algorithm (AdamW included), its maskDensity
 * recounted from that run, then the invariant table rows (invariant-harness.ts) and bad configs.
 */
import { tensor } from '@keel/autograd';
import { createSegmentTable, releaseSegments, Runtime, segmentLayout } from '@keel/kernels';
import { MultimodalModel } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectAllClose, randn } from '../../../kernels/src/testing/reference.js';
import { applyTuning } from './apply.js';
import { hftFrozen, hftStrategy, wholeTensorMask } from './hft.js';
import { importanceTopkStrategy } from './importance-topk.js';
import { checkInvariants, SEED, small, type Case } from './invariant-harness.js';
import { magnitudeMaskStrategy } from './magnitude-mask.js';
import { listStrategies, registerStrategy } from './registry.js';
import { SpiderAllocation, spiderStrategy } from './spider.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
  const known = new Set(listStrategies().map((d) => d.name));
  for (const def of [spiderStrategy, importanceTopkStrategy, magnitudeMaskStrategy, hftStrategy]) if (!known.has(def.name)) registerStrategy(def);
});
afterAll(() => rt.destroy());

// ------------------------------------------------------------------ float64 references
type Vec = Float64Array;
const LR = 0.01;
const WD = 0.05;
const TOL = { atol: 2e-6, rtol: 2e-5 };

/** rank(x) = sigmoid((|x| − mean|x|) / std|x|) (population std); std = 0: 0 if all zero, else 0.5. */
function rank64(x: Vec): Vec {
  const a = x.map(Math.abs);
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
  return a.map((v) => (std > 0 ? 1 / (1 + Math.exp(-(v - mean) / std)) : mean === 0 ? 0 : 0.5));
}

/** SPIDER's c of one tensor: G/(O+G) where G = rank(S) > O, else 0; divided by the mean of c ≠ 0, clamped at 1. */
function allocation64(o: Vec, s: Vec): Vec {
  const g = rank64(s);
  const raw = g.map((G, i) => (G > o[i]! ? G / (o[i]! + G) : 0));
  const nz = raw.filter((c) => c !== 0);
  const mean = nz.length ? nz.reduce((a, b) => a + b, 0) / nz.length : 1;
  return raw.map((c) => Math.min(c / mean, 1));
}

interface Adam64 { w: Vec[]; m: Vec[]; v: Vec[] }
const adamState = (w0: Vec[]): Adam64 => ({ w: w0.map((w) => w.slice()), m: w0.map((w) => new Float64Array(w.length)), v: w0.map((w) => new Float64Array(w.length)) });

/** One AdamW step (β 0.9 / 0.999, eps 1e-8, decoupled decay) on the entries `live` lets through. */
function adam64(st: Adam64, g: Vec[], t: number, live: (ti: number, i: number) => boolean = () => true): void {
  const bc1 = 1 - 0.9 ** t;
  const bc2 = 1 - 0.999 ** t;
  st.w.forEach((w, ti) => {
    const [m, v] = [st.m[ti]!, st.v[ti]!];
    for (let i = 0; i < w.length; i++) {
      if (!live(ti, i)) continue;
      const gi = g[ti]![i]!;
      m[i] = 0.9 * m[i]! + 0.1 * gi;
      v[i] = 0.999 * v[i]! + 0.001 * gi * gi;
      w[i] = w[i]! - LR * (m[i]! / bc1 / (Math.sqrt(v[i]! / bc2) + 1e-8) + WD * w[i]!);
    }
  });
}

/** g · min(1, maxNorm / (‖g‖ + 1e-6)), the norm over every tensor. */
function clipped(g: Vec[], maxNorm?: number): Vec[] {
  if (maxNorm === undefined) return g;
  const norm = Math.sqrt(g.reduce((s, x) => s + x.reduce((a, v) => a + v * v, 0), 0));
  const scale = Math.min(1, maxNorm / (norm + 1e-6));
  return g.map((x) => x.map((v) => v * scale));
}

/** The k indices of largest xs, ties to the lowest index. */
function topIndices(xs: ArrayLike<number>, k: number): Set<number> {
  const idx = Array.from({ length: xs.length }, (_, i) => i).sort((a, b) => xs[b]! - xs[a]! || a - b);
  return new Set(idx.slice(0, k));
}

/** SPIDER with AdamW; S sums the clipped gradient (or, with `sumRaw`, the raw one). */
function spider64(w0: Vec[], grads: Vec[][], maxNorm?: number, { sumRaw = false } = {}): Vec[] {
  const o = w0.map(rank64);
  const s = w0.map((w) => new Float64Array(w.length));
  const st = adamState(w0);
  grads.forEach((raw, k) => {
    const g = clipped(raw, maxNorm);
    (sumRaw ? raw : g).forEach((x, ti) => x.forEach((v, i) => (s[ti]![i]! += v)));
    const c = s.map((x, ti) => allocation64(o[ti]!, x));
    adam64(st, g, k + 1);
    st.w.forEach((w, ti) => w.forEach((v, i) => (w[i] = w0[ti]![i]! + c[ti]![i]! * (v - w0[ti]![i]!))));
  });
  return st.w;
}

interface TopkCfg { score: 'magnitude' | 'snip' | 'grad_sum' | 'fisher'; k: number; scope: 'tensor' | 'global'; refresh: number }

/** The float64 run's weights and its last mask (entry indices per tensor). */
function topk64(cfg: TopkCfg, w0: Vec[], grads: Vec[][], maxNorm?: number): { w: Vec[]; mask: Set<number>[] } {
  const st = adamState(w0);
  const acc = w0.map((w) => new Float64Array(w.length));
  const select = (scores: Vec[]): Set<number>[] => {
    if (cfg.scope === 'tensor') return scores.map((x) => topIndices(x, Math.ceil(cfg.k * x.length)));
    const flat = Float64Array.from(scores.flatMap((x) => Array.from(x)));
    const chosen = topIndices(flat, Math.ceil(cfg.k * flat.length));
    let at = 0;
    return scores.map((x) => {
      const set = new Set([...chosen].filter((i) => i >= at && i < at + x.length).map((i) => i - at));
      at += x.length;
      return set;
    });
  };
  let mask = cfg.score === 'magnitude' ? select(w0.map((w) => w.map(Math.abs))) : null;
  grads.forEach((raw, k) => {
    const t = k + 1;
    const g = clipped(raw, maxNorm);
    if (cfg.score === 'grad_sum') g.forEach((x, ti) => x.forEach((v, i) => (acc[ti]![i]! += v)));
    if (cfg.score === 'fisher') g.forEach((x, ti) => x.forEach((v, i) => (acc[ti]![i]! += v * v)));
    if (cfg.score !== 'magnitude' && (t - 1) % cfg.refresh === 0) {
      if (cfg.score === 'snip') mask = select(st.w.map((w, ti) => w.map((v, i) => Math.abs(v * g[ti]![i]!))));
      else mask = select(acc.map((x) => x.map(Math.abs)));
    }
    adam64(st, g, t, (ti, i) => mask![ti]!.has(i));
  });
  return { w: st.w, mask: mask! };
}

/** AdamW on every entry, then the top ceil(p·n) |W0| of each tensor back to W0 (ties: highest index reset). */
function magnitudeMask64(p: number, w0: Vec[], grads: Vec[][]): Vec[] {
  const reset = w0.map((w) => {
    const asc = Array.from({ length: w.length }, (_, i) => i).sort((a, b) => Math.abs(w[a]!) - Math.abs(w[b]!) || a - b);
    return new Set(asc.slice(w.length - Math.ceil(p * w.length)));
  });
  const st = adamState(w0);
  grads.forEach((g, k) => {
    adam64(st, g, k + 1);
    st.w.forEach((w, ti) => reset[ti]!.forEach((i) => (w[i] = w0[ti]![i]!)));
  });
  return st.w;
}

// ------------------------------------------------------------------ driving a strategy with given gradients
interface Run {
  names: string[];
  w0: Vec[];
  w: Vec[];
  grads: Vec[][]; // [step][tensor]
  density0: Map<string, number> | null; // maskDensity right after apply
  density: Map<string, number> | null; // maskDensity after the last step
}

const TARGETS = ['multi_modal_projector.**', 'vision_tower.vision_model.pre_layrnorm']; // 4 projector tensors, LN weight (all 1), LN bias (all 0)

async function drive(config: Record<string, unknown> & { strategy: string }, steps: number, opts: { maxNorm?: number; zeroGrad?: (name: string) => boolean } = {}): Promise<Run> {
  const model = new MultimodalModel(rt, small, { seed: SEED });
  const handle = applyTuning(model, config);
  const params = [...handle.trainableParameters()];
  const read = () => Promise.all(params.map(async ([, p]) => Float64Array.from((await p.toArray()) as Float32Array)));
  const w0 = await read();
  const density0 = await handle.maskDensity();
  const opt = handle.optimizer({ lr: LR, weightDecay: WD, ...(opts.maxNorm !== undefined ? { maxNorm: opts.maxNorm } : {}) });
  const grads: Vec[][] = [];
  for (let t = 1; t <= steps; t++) {
    const gs = params.map(([name, p], i) => (opts.zeroGrad?.(name) ? new Float32Array(p.size) : randn(p.size, 1000 * t + i, 0.5)));
    params.forEach(([, p], i) => {
      p.grad?.dispose();
      p.grad = tensor(rt, gs[i]!, p.shape);
    });
    handle.hooks.beforeOptimizerStep!();
    opt.step();
    handle.hooks.afterOptimizerStep!();
    grads.push(gs.map((g) => Float64Array.from(g)));
  }
  const [w, density] = [await read(), await handle.maskDensity()];
  for (const [, p] of params) {
    p.grad?.dispose();
    p.grad = null;
  }
  handle.merge(); // a merged instance has no mask left to report
  await expect(handle.maskDensity()!, `${config.strategy}.maskDensity after merge`).rejects.toThrow(/merged/);
  handle.dispose();
  model.dispose();
  return { names: params.map(([n]) => n), w0, w, grads, density0, density };
}

const expectWeights = (run: Run, want: Vec[], what: string) => run.w.forEach((w, ti) => expectAllClose(w, want[ti]!, TOL, `${what}: ${run.names[ti]}`));

describe('SPIDER', () => {
  it('SpiderAllocation: O = rank(W0) and c per step match the float64 reference (zero, constant and gradient-free tensors included)', async () => {
    const lengths = [15, 7, 1, 130, 700, 9, 6];
    const table = createSegmentTable(rt, lengths);
    const { offsets, arenaLength } = table;
    const toArena = (xs: Float32Array[]) => {
      const a = new Float32Array(arenaLength);
      xs.forEach((x, t) => a.set(x, offsets[t]!));
      return a;
    };
    const w0 = lengths.map((n, t) => (t === 5 ? new Float32Array(n) : t === 6 ? new Float32Array(n).fill(0.3) : randn(n, 10 + t, 0.2)));
    const w0Buf = rt.upload(toArena(w0));
    const alloc = new SpiderAllocation(rt, table, w0Buf);
    const o = lengths.map((_, t) => rank64(Float64Array.from(w0[t]!)));
    const oGpu = await rt.readF32(alloc.o);
    lengths.forEach((n, t) => expectAllClose(oGpu.subarray(offsets[t]!, offsets[t]! + n), o[t]!, { atol: 1e-6, rtol: 1e-5 }, `O of tensor ${t}`));
    const s = lengths.map((n) => new Float64Array(n));
    for (let step = 1; step <= 4; step++) {
      const g = lengths.map((n, t) => (t === 1 ? new Float32Array(n) : randn(n, 100 * step + t)));
      const gBuf = rt.upload(toArena(g));
      const c = alloc.step(gBuf);
      const cGpu = await rt.readF32(c);
      lengths.forEach((n, t) => {
        g[t]!.forEach((v, i) => (s[t]![i]! += v));
        const want = allocation64(o[t]!, s[t]!);
        expectAllClose(cGpu.subarray(offsets[t]!, offsets[t]! + n), want, { atol: 2e-6, rtol: 2e-5 }, `c of tensor ${t} at step ${step}`);
      });
      expect(Array.from(cGpu.subarray(offsets[1]!, offsets[1]! + 7)), 'no gradient: pinned to W0').toEqual(new Array(7).fill(0));
      expect(Array.from(cGpu.subarray(offsets[5]!, offsets[5]! + 9)), 'all-zero W0: O = 0, full update').toEqual(new Array(9).fill(1));
      for (const b of [c, gBuf]) rt.release(b);
    }
    alloc.dispose();
    rt.release(w0Buf);
    releaseSegments(rt, table);
  });

  it('the strategy trains W = W0 + c ⊙ (W_AdamW − W0) as the float64 run does', async () => {
    const run = await drive({ strategy: 'spider', targets: TARGETS }, 4, { zeroGrad: (n) => n === 'multi_modal_projector.linear_2.bias' });
    expectWeights(run, spider64(run.w0, run.grads), 'spider');
    const pinned = run.names.indexOf('multi_modal_projector.linear_2.bias');
    expect(Array.from(run.w[pinned]!)).toEqual(Array.from(run.w0[pinned]!));
  });

  it('accumulates the clipped gradient when the optimizer clips (maxNorm)', async () => {
    const run = await drive({ strategy: 'spider', targets: TARGETS }, 3, { maxNorm: 1 });
    expectWeights(run, spider64(run.w0, run.grads, 1), 'spider, clipped');
    // the raw sum would allocate differently: the clip scale changes from step to step
    const unclipped = spider64(run.w0, run.grads, 1, { sumRaw: true });
    expect(unclipped.some((w, ti) => w.some((v, i) => Math.abs(v - run.w[ti]![i]!) > 1e-5))).toBe(true);
  });
});

describe('top-k hard masks', () => {
  const variants: (TopkCfg & { maxNorm?: number })[] = [
    { score: 'magnitude', k: 0.3, scope: 'tensor', refresh: 1 },
    { score: 'snip', k: 0.25, scope: 'tensor', refresh: 2 },
    { score: 'snip', k: 0.2, scope: 'global', refresh: 1 },
    { score: 'grad_sum', k: 0.3, scope: 'tensor', refresh: 2 },
    { score: 'fisher', k: 0.15, scope: 'global', refresh: 2, maxNorm: 1 },
  ];
  for (const { maxNorm, ...cfg } of variants) {
    it(`${cfg.score}, ${cfg.scope}, k ${cfg.k}, refresh ${cfg.refresh}${maxNorm ? ', clipped' : ''}: matches the float64 run`, async () => {
      const run = await drive({ strategy: 'topk', targets: TARGETS, ...cfg }, 3, maxNorm !== undefined ? { maxNorm } : {});
      expectWeights(run, topk64(cfg, run.w0, run.grads, maxNorm).w, 'topk');
    });
  }

  it('updates exactly k entries per tensor (ties in the all-1 and all-0 norm tensors included)', async () => {
    const run = await drive({ strategy: 'topk', targets: TARGETS, score: 'magnitude', k: 0.3 }, 1);
    run.w.forEach((w, ti) => expect(w.filter((v, i) => v !== run.w0[ti]![i]).length, run.names[ti]).toBe(Math.ceil(0.3 * w.length)));
  });
});

describe('MagnitudeMask', () => {
  for (const p of [0.5, 0.8]) {
    it(`p ${p}: the complementary hard mask gives AdamW-then-reset's weights; exactly ceil(p·n) entries stay W0`, async () => {
      const run = await drive({ strategy: 'magnitude_mask', targets: TARGETS, p }, 3);
      expectWeights(run, magnitudeMask64(p, run.w0, run.grads), 'magnitude_mask');
      run.w.forEach((w, ti) => expect(w.filter((v, i) => v === run.w0[ti]![i]).length, run.names[ti]).toBe(Math.ceil(p * w.length)));
    });
  }
});

describe('Half Fine-Tuning', () => {
  it('freezes exactly floor(T/2) tensors per round, seeded, different across rounds', () => {
    for (const T of [1, 2, 5, 12]) expect(hftFrozen(T, 3, 0).filter(Boolean).length).toBe(Math.floor(T / 2));
    expect(hftFrozen(12, 3, 4)).toEqual(hftFrozen(12, 3, 4));
    const rounds = new Set(Array.from({ length: 8 }, (_, r) => hftFrozen(12, 3, r).map(Number).join('')));
    expect(rounds.size).toBeGreaterThan(4);
    expect(hftFrozen(12, 4, 0)).not.toEqual(hftFrozen(12, 3, 0));
  });

  it('the whole-tensor mask sets exactly the elements of the tensors that train', () => {
    const layout = segmentLayout([15, 64, 1, 130]);
    const words = wholeTensorMask(layout, [false, true, false, false]);
    const set = (e: number) => ((words[e >>> 5]! >>> (e & 31)) & 1) === 1;
    for (let e = 0; e < layout.arenaLength; e++) {
      const t = layout.offsets.filter((o) => o <= e).length - 1;
      expect(set(e), `element ${e}`).toBe(t !== 1 && e - layout.offsets[t]! < layout.lengths[t]!);
    }
  });

  it('round 2: the frozen half keeps W (and its moments) through the round; the float64 run agrees', async () => {
    const seed = 5;
    const run = await drive({ strategy: 'hft', targets: TARGETS, round: 2, seed }, 5);
    const st = adamState(run.w0);
    run.grads.forEach((g, k) => {
      const frozen = hftFrozen(run.names.length, seed, Math.floor(k / 2));
      adam64(st, g, k + 1, (ti) => !frozen[ti]);
    });
    expectWeights(run, st.w, 'hft');
  });
});

describe('maskDensity', () => {
  const byName = (run: Run, f: (w0: Vec, ti: number) => number) => new Map(run.names.map((n, ti) => [n, f(run.w0[ti]!, ti)]));
  const ONES = (run: Run) => byName(run, () => 1);

  it('SPIDER: per tensor the share of c > 0 at the last step, as the float64 allocation counts it; 1 before any step', async () => {
    const run = await drive({ strategy: 'spider', targets: TARGETS }, 3, { maxNorm: 1, zeroGrad: (n) => n === 'multi_modal_projector.linear_2.bias' });
    expect(run.density0).toEqual(ONES(run));
    const s = run.w0.map((w) => new Float64Array(w.length)); // S sums the clipped gradients
    run.grads.forEach((g) => clipped(g, 1).forEach((x, ti) => x.forEach((v, i) => (s[ti]![i]! += v))));
    const want = byName(run, (w0, ti) => allocation64(rank64(w0), s[ti]!).filter((c) => c > 0).length / w0.length);
    expect(run.density).toEqual(want);
    expect([...want.values()].map((d) => (d === 0 ? 0 : d === 1 ? 1 : 0.5)).sort(), 'no gradient: 0; all-zero LN bias (O = 0): 1; others between').toEqual([0, 0.5, 0.5, 0.5, 0.5, 1]);
  });

  it('top-k: per tensor the set bits of the current mask (ceil(k·n)/n per tensor, the float64 split globally); 1 before the first mask', async () => {
    for (const cfg of [{ score: 'snip', k: 0.1, scope: 'tensor', refresh: 2 }, { score: 'grad_sum', k: 0.2, scope: 'global', refresh: 2 }, { score: 'magnitude', k: 0.5, scope: 'global', refresh: 1 }] as TopkCfg[]) {
      const run = await drive({ strategy: 'topk', targets: TARGETS, ...cfg }, 3);
      expect(run.density0, 'before the optimizer').toEqual(ONES(run));
      const { mask } = topk64(cfg, run.w0, run.grads);
      expect(run.density, cfg.score).toEqual(byName(run, (w0, ti) => mask[ti]!.size / w0.length));
      if (cfg.scope === 'tensor') expect(run.density).toEqual(byName(run, (w0) => Math.ceil(cfg.k * w0.length) / w0.length));
    }
  });

  it('MagnitudeMask: exactly (n − ceil(p·n))/n per tensor, from apply on: the share of entries that moved', async () => {
    const run = await drive({ strategy: 'magnitude_mask', targets: TARGETS, p: 0.7 }, 2);
    const want = byName(run, (w0) => (w0.length - Math.ceil(0.7 * w0.length)) / w0.length);
    expect([run.density0, run.density]).toEqual([want, want]);
    expect(run.density).toEqual(byName(run, (w0, ti) => run.w[ti]!.filter((v, i) => v !== w0[i]).length / w0.length));
  });

  it('HFT: 0 for the tensors the round of the last step freezes, 1 for the others; 1 before any step', async () => {
    const run = await drive({ strategy: 'hft', targets: TARGETS, round: 2, seed: 5 }, 5);
    expect(run.density0).toEqual(ONES(run));
    const frozen = hftFrozen(run.names.length, 5, 2); // step 5 is in round 2
    expect(run.density).toEqual(byName(run, (_, ti) => (frozen[ti] ? 0 : 1)));
  });
});

// Rows for invariants.test.ts. HFT seeds are chosen so every selected tensor trains within the
// harness's 3 steps (checked below), as the table requires every trainable tensor to change.
const PROJECTOR = (n: string) => n.startsWith('multi_modal_projector.');
const HFT_TARGETS = ['multi_modal_projector.**', 'language_model.model.norm'];
const HFT_CHANGES = (n: string) => PROJECTOR(n) || n === 'language_model.model.norm.weight';
const MASKED_CASES: Case[] = [
  { label: 'spider (every parameter)', config: { strategy: 'spider' }, lr: 1e-2, changes: () => true, extraStateFactor: 3 },
  { label: 'spider (projector + last decoder layer)', config: { strategy: 'spider', targets: ['multi_modal_projector.**', 'language_model.model.layers.1'] }, lr: 1e-2, changes: (n) => PROJECTOR(n) || n.startsWith('language_model.model.layers.1.'), extraStateFactor: 3 },
  { label: 'topk (snip, per tensor, k 0.1)', config: { strategy: 'topk' }, lr: 1e-2, changes: () => true, extraStateFactor: 1 },
  { label: 'topk (magnitude, global, k 0.5, projector weights)', config: { strategy: 'topk', score: 'magnitude', scope: 'global', k: 0.5, targets: ['multi_modal_projector.*.weight'] }, lr: 1e-2, changes: (n) => PROJECTOR(n) && n.endsWith('.weight'), extraStateFactor: 1 },
  { label: 'topk (grad_sum, global, k 0.3, refresh 1, projector)', config: { strategy: 'topk', score: 'grad_sum', scope: 'global', k: 0.3, refresh: 1, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: PROJECTOR, extraStateFactor: 2 },
  { label: 'topk (fisher, per tensor, k 0.2, refresh 2)', config: { strategy: 'topk', score: 'fisher', k: 0.2, refresh: 2 }, lr: 1e-2, changes: () => true, extraStateFactor: 2 },
  { label: 'magnitude_mask (p 0.5, every parameter)', config: { strategy: 'magnitude_mask' }, lr: 1e-2, changes: () => true, extraStateFactor: 1 },
  { label: 'magnitude_mask (p 0.9, projector)', config: { strategy: 'magnitude_mask', p: 0.9, targets: ['multi_modal_projector.**'] }, lr: 1e-2, changes: PROJECTOR, extraStateFactor: 1 },
  { label: 'hft (round 1, seed 0, projector + final norm)', config: { strategy: 'hft', round: 1, seed: 0, targets: HFT_TARGETS }, lr: 1e-2, changes: HFT_CHANGES, extraStateFactor: 1 },
  { label: 'hft (round 2, seed 1, projector + final norm)', config: { strategy: 'hft', round: 2, seed: 1, targets: HFT_TARGETS }, lr: 1e-2, changes: HFT_CHANGES, extraStateFactor: 1 },
];

describe('invariant table (masked selective methods)', () => {
  it('the HFT rows train every selected tensor within 3 steps', () => {
    for (const c of MASKED_CASES.filter((r) => r.config.strategy === 'hft')) {
      const [round, seed] = [c.config.round as number, c.config.seed as number];
      const trains = new Set<number>();
      for (let t = 1; t <= 3; t++) hftFrozen(5, seed, Math.floor((t - 1) / round)).forEach((f, i) => f || trains.add(i));
      expect(trains.size, c.label).toBe(5);
    }
  });

  for (const c of MASKED_CASES) it(c.label, () => checkInvariants(rt, c));
});

describe('config validation', () => {
  const bad: [Record<string, unknown> & { strategy: string }, RegExp][] = [
    [{ strategy: 'topk', k: 0 }, /topk config is invalid: k: k must be a fraction in \(0, 1\]/],
    [{ strategy: 'topk', k: 1.5 }, /topk config is invalid: k: k must be a fraction in \(0, 1\]/],
    [{ strategy: 'topk', score: 'taylor' }, /score: score must be one of 'magnitude', 'snip', 'grad_sum', 'fisher'/],
    [{ strategy: 'topk', scope: 'layer' }, /scope: scope must be 'tensor' or 'global'/],
    [{ strategy: 'topk', refresh: 0 }, /refresh: refresh must be at least 1 step/],
    [{ strategy: 'topk', refresh: 2.5 }, /refresh: refresh must be a whole number of steps/],
    [{ strategy: 'topk', targets: ['projector.**'] }, /topk: target pattern 'projector\.\*\*' matches no parameter/],
    [{ strategy: 'spider', targets: ['language_model.**', 'vision.**'] }, /spider: target pattern 'vision\.\*\*' matches no parameter/],
    [{ strategy: 'spider', sparsity: 0.5 }, /spider config is invalid: .*sparsity/],
    [{ strategy: 'magnitude_mask', p: 0 }, /magnitude_mask config is invalid: p: p must be a fraction in \(0, 1\)/],
    [{ strategy: 'magnitude_mask', p: 1 }, /p: p must be a fraction in \(0, 1\)/],
    [{ strategy: 'magnitude_mask', targets: ['**.nope'] }, /magnitude_mask: target pattern '\*\*\.nope' matches no parameter/],
    [{ strategy: 'hft', round: 0 }, /hft config is invalid: round: round must be at least 1 step/],
    [{ strategy: 'hft', seed: -1 }, /seed: seed must be ≥ 0/],
  ];
  it('names the field, the pattern or the strategy', () => {
    const model = new MultimodalModel(rt, small, { seed: SEED });
    try {
      for (const [config, message] of bad) expect(() => applyTuning(model, config), JSON.stringify(config)).toThrow(message);
    } finally {
      model.dispose();
    }
  });
});
