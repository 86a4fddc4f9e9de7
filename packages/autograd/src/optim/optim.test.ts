import { Runtime, segmentLayout } from '@keel/kernels';
import { adamwReference } from '../../../kernels/src/ops/adamw.reference.js';
import { expectAllClose, randn, randu } from '../../../kernels/src/testing/reference.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensor } from '../creation.js';
import { Parameter } from '../module.js';
import { AdamW, MaskedAdamW } from './adamw.js';
import { groupParameters, type Optimizer } from './optimizer.js';
import { mlp } from '../layers.js';
import { linearWarmup } from './schedule.js';
import { SGD } from './sgd.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

// shapes not multiples of 4 or of the 64-element segment alignment; one spans several chunks of 64
const SHAPES = [[3, 5], [7], [1], [130]];
const STEPS = 4;

interface Setup {
  ps: Parameter[];
  w: Float64Array[]; // float64 reference copies
  grads: Float32Array[][]; // [step][param]
}

function setup(seed: number, shapes = SHAPES, gradScale = 1): Setup {
  const ps: Parameter[] = [];
  const w: Float64Array[] = [];
  shapes.forEach((shape, i) => {
    const data = randn(shape.reduce((a, b) => a * b, 1), seed + i);
    const t = tensor(rt, data, shape);
    ps.push(new Parameter(t));
    t.dispose();
    w.push(Float64Array.from(data));
  });
  const grads = Array.from({ length: STEPS + 4 }, (_, s) => ps.map((p, i) => randn(p.size, 1000 * seed + 10 * s + i, gradScale)));
  return { ps, w, grads };
}

function setGrads(ps: readonly Parameter[], gs: readonly (Float32Array | null)[]): void {
  ps.forEach((p, i) => {
    p.grad?.dispose();
    const g = gs[i];
    p.grad = g ? tensor(rt, g, p.shape) : null;
  });
}

async function expectParams(ps: readonly Parameter[], w: readonly Float64Array[], what: string, tol = { atol: 2e-6, rtol: 2e-5 }): Promise<void> {
  for (const [i, p] of ps.entries()) expectAllClose(await p.toArray(), w[i]!, tol, `${what}: param ${i} [${p.shape}]`);
}

const globalScale = (gs: readonly Float32Array[], maxNorm: number | undefined): number => {
  if (maxNorm === undefined) return 1;
  const norm = Math.sqrt(gs.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  return Math.min(1, maxNorm / (norm + 1e-6));
};

interface SgdRef {
  lr: number[];
  wd: number[];
  momentum: number;
  dampening: number;
  nesterov: boolean;
  maxNorm?: number;
}
function sgdReference(w: Float64Array[], bufs: Float64Array[], gs: Float32Array[], t: number, o: SgdRef): void {
  const scale = globalScale(gs, o.maxNorm);
  w.forEach((wi, i) => {
    for (let k = 0; k < wi.length; k++) {
      const g = gs[i]![k]! * scale + o.wd[i]! * wi[k]!;
      bufs[i]![k] = t === 1 ? g : o.momentum * bufs[i]![k]! + (1 - o.dampening) * g;
      wi[k]! -= o.lr[i]! * (o.nesterov ? g + o.momentum * bufs[i]![k]! : bufs[i]![k]!);
    }
  });
}

function adamReference(w: Float64Array[], m: Float64Array[], v: Float64Array[], gs: Float32Array[], t: number, lr: number[], wd: number[], maxNorm?: number): void {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const scale = globalScale(gs, maxNorm);
  w.forEach((wi, i) => {
    for (let k = 0; k < wi.length; k++) {
      const g = gs[i]![k]! * scale;
      m[i]![k] = b1 * m[i]![k]! + (1 - b1) * g;
      v[i]![k] = b2 * v[i]![k]! + (1 - b2) * g * g;
      wi[k]! -= lr[i]! * (m[i]![k]! / (1 - b1 ** t) / (Math.sqrt(v[i]![k]! / (1 - b2 ** t)) + eps) + wd[i]! * wi[k]!);
    }
  });
}

const zerosLike = (w: Float64Array[]) => w.map((x) => new Float64Array(x.length));

describe('SGD', () => {
  for (const [label, momentum, nesterov, wd, dampening] of [
    ['plain', 0, false, 0, 0],
    ['heavy-ball + weight decay + dampening', 0.9, false, 0.01, 0.1],
    ['Nesterov', 0.8, true, 0.05, 0],
  ] as const) {
    it(`${label} matches the float64 reference over ${STEPS} steps`, async () => {
      const s = setup(1);
      const opt = new SGD(rt, s.ps, { lr: 0.1, momentum, nesterov, weightDecay: wd, dampening });
      const bufs = zerosLike(s.w);
      for (let t = 1; t <= STEPS; t++) {
        setGrads(s.ps, s.grads[t]!);
        opt.step();
        sgdReference(s.w, bufs, s.grads[t]!, t, { lr: SHAPES.map(() => 0.1), wd: SHAPES.map(() => wd), momentum, dampening, nesterov });
      }
      expect(opt.steps).toBe(STEPS);
      await expectParams(s.ps, s.w, `SGD ${label}`);
      opt.dispose();
      s.ps.forEach((p) => p.dispose());
    });
  }
});

describe('AdamW', () => {
  it('parameter groups with their own lr and weight decay match the reference', async () => {
    const s = setup(2);
    const opt = new AdamW(rt, [{ params: s.ps.slice(0, 2), lr: 0.01 }, { params: s.ps.slice(2), lr: 0.003, weightDecay: 0 }], { lr: 1, weightDecay: 0.1 });
    const [m, v] = [zerosLike(s.w), zerosLike(s.w)];
    const lr = [0.01, 0.01, 0.003, 0.003];
    const wd = [0.1, 0.1, 0, 0];
    for (let t = 1; t <= STEPS; t++) {
      setGrads(s.ps, s.grads[t]!);
      opt.step();
      adamReference(s.w, m, v, s.grads[t]!, t, lr, wd);
    }
    await expectParams(s.ps, s.w, 'AdamW groups');
    // editing a group's lr between steps takes effect on the next step
    opt.groups[1]!.lr = 0.05;
    setGrads(s.ps, s.grads[5]!);
    opt.step();
    adamReference(s.w, m, v, s.grads[5]!, 5, [0.01, 0.01, 0.05, 0.05], wd);
    await expectParams(s.ps, s.w, 'AdamW after lr edit');
    opt.dispose();
  });

  it('global grad-norm clipping scales every gradient; lastGradNorm reads the unclipped norm', async () => {
    const s = setup(3, SHAPES, 2);
    const maxNorm = 1.5;
    const opt = new AdamW(rt, s.ps, { lr: 0.01, weightDecay: 0, maxNorm });
    const [m, v] = [zerosLike(s.w), zerosLike(s.w)];
    await expect(opt.lastGradNorm()).rejects.toThrow(/no gradient norm was computed/);
    for (let t = 1; t <= STEPS; t++) {
      setGrads(s.ps, s.grads[t]!);
      opt.step();
      adamReference(s.w, m, v, s.grads[t]!, t, SHAPES.map(() => 0.01), SHAPES.map(() => 0), maxNorm);
    }
    const norm = Math.sqrt(s.grads[STEPS]!.reduce((a, g) => a + g.reduce((b, x) => b + x * x, 0), 0));
    expect(norm).toBeGreaterThan(maxNorm * 4); // the clip is active
    expect(await opt.lastGradNorm()).toBeCloseTo(norm, 3);
    expect(await opt.lastStepSkipped()).toBe(false);
    await expectParams(s.ps, s.w, 'AdamW clipped');
    // a non-finite gradient: the GPU skips the whole step
    const before = await Promise.all(s.ps.map((p) => p.toArray()));
    setGrads(s.ps, s.grads[1]!.map((g, i) => (i === 1 ? Float32Array.from(g, (x, k) => (k === 0 ? NaN : x)) : g)));
    opt.step();
    expect(await opt.lastStepSkipped()).toBe(true);
    expect(await Promise.all(s.ps.map((p) => p.toArray()))).toEqual(before);
    opt.dispose();
  });

  it('a missing gradient is a zero gradient; a frozen parameter stays bit-identical', async () => {
    const s = setup(4);
    const opt = new AdamW(rt, s.ps, { lr: 0.02, weightDecay: 0.1 });
    const [m, v] = [zerosLike(s.w), zerosLike(s.w)];
    s.ps[3]!.requiresGrad = false;
    const frozen = await s.ps[3]!.toArray();
    for (let t = 1; t <= 3; t++) {
      const gs = s.grads[t]!.map((g, i) => (i === 0 && t >= 2 ? null : g));
      setGrads(s.ps, gs);
      if (t === 3) s.ps[3]!.grad = null;
      opt.step();
      const ref = gs.map((g, i) => g ?? new Float32Array(s.ps[i]!.size));
      const refW = s.w.slice(0, 3);
      adamReference(refW, m.slice(0, 3), v.slice(0, 3), ref.slice(0, 3), t, [0.02, 0.02, 0.02], [0.1, 0.1, 0.1]);
    }
    await expectParams(s.ps.slice(0, 3), s.w.slice(0, 3), 'AdamW missing grad');
    expect(await s.ps[3]!.toArray()).toEqual(frozen);
    opt.dispose();
  });

  it('a linear-warmup schedule scales lr per step (currentLr and the updates agree)', async () => {
    const s = setup(5);
    const opt = new SGD(rt, s.ps, { lr: 0.2, schedule: linearWarmup(3) });
    const bufs = zerosLike(s.w);
    const seen: number[] = [];
    for (let t = 1; t <= 4; t++) {
      seen.push(opt.currentLr());
      setGrads(s.ps, s.grads[t]!);
      opt.step();
      const lr = 0.2 * Math.min(1, t / 3);
      sgdReference(s.w, bufs, s.grads[t]!, t, { lr: SHAPES.map(() => lr), wd: SHAPES.map(() => 0), momentum: 0, dampening: 0, nesterov: false });
    }
    expectAllClose(seen, [0.2 / 3, 0.4 / 3, 0.2, 0.2], { atol: 1e-12, rtol: 0 }, 'currentLr');
    await expectParams(s.ps, s.w, 'SGD warmup');
    opt.dispose();
  });
});

describe('groupParameters', () => {
  it('splits a module by name rules, first rule wins, the rest keep the defaults', () => {
    const net = mlp(rt, [2, 3, 3, 1], { seed: 1 });
    const groups = groupParameters(net, [{ match: '**.bias', weightDecay: 0 }, { match: ['4', '2.weight'], lr: 0.5 }]);
    const names = new Map([...net.namedParameters()].map(([n, p]) => [p, n] as const));
    expect(groups.map((g) => [...g.params].map((p) => names.get(p as Parameter)))).toEqual([
      ['0.bias', '2.bias', '4.bias'],
      ['2.weight', '4.weight'],
      ['0.weight'],
    ]);
    const opt = new AdamW(rt, groups, { lr: 0.1, weightDecay: 0.2 });
    expect(opt.groups.map((g) => [g.lr, g.weightDecay])).toEqual([[0.1, 0], [0.5, 0.2], [0.1, 0.2]]);
    opt.dispose();
    net.dispose();
  });
});

describe('MaskedAdamW', () => {
  const lengths = SHAPES.map((sh) => sh.reduce((a, b) => a * b, 1));
  const layout = segmentLayout(lengths);
  const toArena = (xs: ArrayLike<number>[]) => {
    const a = new Float64Array(layout.arenaLength);
    xs.forEach((x, i) => a.set(Array.from(x), layout.offsets[i]!));
    return a;
  };
  const fromArena = (a: Float64Array) => lengths.map((n, i) => a.slice(layout.offsets[i]!, layout.offsets[i]! + n));
  const hyper = lengths.flatMap(() => [0.01, 0.05]);

  it('bit mask: masked elements keep their value, the rest follow AdamW (adamwReference)', async () => {
    const s = setup(6);
    const opt = new MaskedAdamW(rt, s.ps, { lr: 0.01, weightDecay: 0.05 });
    const masks = new Map(s.ps.slice(0, 3).map((p, i) => [p, Array.from({ length: p.size }, (_, k) => (k + i) % 3 !== 0)] as const));
    opt.setBitMask(masks);
    expect(opt.maskMode).toBe('bits');
    const bits = new Uint32Array(Math.ceil(layout.arenaLength / 32));
    lengths.forEach((n, i) => {
      for (let k = 0; k < n; k++) if (i === 3 || (k + i) % 3 !== 0) bits[(layout.offsets[i]! + k) >>> 5]! |= 1 << ((layout.offsets[i]! + k) & 31);
    });
    const state = { w: toArena(s.w), m: new Float64Array(layout.arenaLength), v: new Float64Array(layout.arenaLength) };
    for (let t = 1; t <= STEPS; t++) {
      setGrads(s.ps, s.grads[t]!);
      opt.step();
      adamwReference(state, toArena(s.grads[t]!), layout, hyper, { step: t, mask: { mode: 'bits', bits } });
    }
    await expectParams(s.ps, fromArena(state.w), 'bit mask');
    expect(() => opt.setBitMask(new Map([[s.ps[0]!, [1, 0]]]))).toThrow(/mask of 2 values for parameter \[3,5\]/);
    opt.dispose();
  });

  it('SPIDER: W ← W0 + c ⊙ (W_new − W0) with W0 snapshotted at setSpider, c = 1 where not given', async () => {
    const s = setup(7);
    const opt = new MaskedAdamW(rt, s.ps, { lr: 0.01, weightDecay: 0.05 });
    const cs = s.ps.slice(0, 2).map((p, i) => randu(p.size, 70 + i, 0, 1));
    const cTensors = new Map(s.ps.slice(0, 2).map((p, i) => [p, tensor(rt, cs[i]!, p.shape)] as const));
    opt.setSpider(cTensors);
    const w0 = toArena(s.w);
    const c = toArena([...cs, ...lengths.slice(2).map((n) => new Float32Array(n).fill(1))]);
    const state = { w: toArena(s.w), m: new Float64Array(layout.arenaLength), v: new Float64Array(layout.arenaLength) };
    for (let t = 1; t <= STEPS; t++) {
      setGrads(s.ps, s.grads[t]!);
      opt.step();
      adamwReference(state, toArena(s.grads[t]!), layout, hyper, { step: t, mask: { mode: 'spider', w0, c } });
    }
    await expectParams(s.ps, fromArena(state.w), 'SPIDER');
    for (const t of cTensors.values()) t.dispose();
    opt.dispose();
  });
});

describe('optimizer state', () => {
  async function continuation(make: (ps: Parameter[]) => Optimizer, prepare?: (o: Optimizer, ps: Parameter[]) => void) {
    // run 2 steps, save params + optimizer state, run 3 more; then restore into a fresh copy and rerun
    const a = setup(8);
    const optA = make(a.ps);
    prepare?.(optA, a.ps);
    for (let t = 1; t <= 2; t++) {
      setGrads(a.ps, a.grads[t]!);
      optA.step();
    }
    const savedParams = await Promise.all(a.ps.map((p) => p.toArray()));
    const saved = await optA.stateDict();
    for (let t = 3; t <= 5; t++) {
      setGrads(a.ps, a.grads[t]!);
      optA.step();
    }
    const b = setup(9);
    b.ps.forEach((p, i) => rt.write(p.buffer, savedParams[i]!));
    const optB = make(b.ps);
    optB.loadStateDict(saved);
    expect(optB.steps).toBe(2);
    for (let t = 3; t <= 5; t++) {
      setGrads(b.ps, a.grads[t]!);
      optB.step();
    }
    for (const [i, p] of b.ps.entries()) expect(await p.toArray(), `param ${i}`).toEqual(await a.ps[i]!.toArray());
    optA.dispose();
    optB.dispose();
  }

  it('AdamW with a schedule, groups and clipping resumes exactly', () =>
    continuation((ps) => new AdamW(rt, [{ params: ps.slice(0, 1), lr: 0.03 }, { params: ps.slice(1) }], { lr: 0.01, maxNorm: 3, schedule: linearWarmup(4) })));

  it('Nesterov SGD resumes exactly', () => continuation((ps) => new SGD(rt, ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 })));

  it('MaskedAdamW (SPIDER) resumes exactly, masks included', () =>
    continuation(
      (ps) => new MaskedAdamW(rt, ps, { lr: 0.01 }),
      (o, ps) => {
        const c = tensor(rt, randu(ps[3]!.size, 5, 0, 1), ps[3]!.shape);
        (o as MaskedAdamW).setSpider(new Map([[ps[3]!, c]]));
        c.dispose();
      },
    ));

  it('rejects a state from another kind or other parameter sizes', async () => {
    const s = setup(10);
    const sgd = new SGD(rt, s.ps, { lr: 0.1 });
    const adam = new AdamW(rt, s.ps, { lr: 0.1 });
    const adam2 = new AdamW(rt, s.ps.slice(1), { lr: 0.1 });
    const sgdState = await sgd.stateDict();
    expect(() => adam.loadStateDict(sgdState)).toThrow('AdamW.loadStateDict: state is from a SGD');
    const adamState = await adam.stateDict();
    expect(() => adam2.loadStateDict(adamState)).toThrow(/parameter sizes differ \(state \[15,7,1,130\], optimizer \[7,1,130\]\)/);
    for (const o of [sgd, adam, adam2]) o.dispose();
  });
});

describe('optimizer errors', () => {
  it('names the problem', () => {
    const s = setup(11);
    expect(() => new AdamW(rt, [s.ps[0]!, s.ps[0]!], { lr: 0.1 })).toThrow(/appears twice/);
    expect(() => new SGD(rt, s.ps, { lr: -1 })).toThrow(/lr must be finite and ≥ 0, got -1/);
    expect(() => new SGD(rt, s.ps, { lr: 0.1, nesterov: true })).toThrow(/Nesterov needs momentum > 0/);
    expect(() => new AdamW(rt, s.ps, { lr: 0.1, beta2: 1 })).toThrow(/beta2 must be in \[0, 1\)/);
    expect(() => new AdamW(rt, s.ps, { lr: 0.1, maxNorm: 0 })).toThrow(/maxNorm must be a positive finite number/);
    const opt = new SGD(rt, s.ps, { lr: 0.1 });
    s.ps[0]!.grad = tensor(rt, new Float32Array(4), [4]);
    expect(() => opt.step()).toThrow('SGD.step: gradient [4] does not match parameter [3,5]');
    opt.dispose();
    expect(() => opt.step()).toThrow(/was disposed/);
  });
});
