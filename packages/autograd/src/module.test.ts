import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensor, zeros } from './creation.js';
import { Activation, Linear, Sequential, UnaryModule, mlp } from './layers.js';
import { Module, Parameter, globToRegExp, matchesName } from './module.js';
import { backward } from './backward.js';
import { mean } from './ops/reduce.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

// A small HF-shaped tree: layers.{0,1}.{attn.{q_proj,k_proj}, mlp.{fc,proj}}, norm.weight, lm_head (tied)
class Attn extends Module {
  constructor(seed: number) {
    super();
    this.module('q_proj', new Linear(rt, 4, 4, { seed }));
    this.module('k_proj', new Linear(rt, 4, 4, { seed: seed + 1, bias: false }));
  }
}
class Block extends Module {
  constructor(seed: number) {
    super();
    this.module('attn', new Attn(seed));
    this.module('mlp', mlp(rt, [4, 8, 4], { seed: seed + 10 }));
  }
}
class Model extends Module {
  readonly embed: Parameter;
  constructor(seed = 1) {
    super();
    this.embed = this.param('embed', zeros(rt, [5, 4]));
    this.module('layers', new (class extends Module {
      constructor() {
        super();
        this.module('0', new Block(seed));
        this.module('1', new Block(seed + 100));
      }
    })());
    this.param('norm_weight', tensor(rt, [1, 1, 1, 1]));
    this.param('lm_head', this.embed); // tied: the same Parameter
  }
}

const modelNames = [
  'embed',
  'norm_weight',
  ...[0, 1].flatMap((l) => [
    `layers.${l}.attn.q_proj.weight`,
    `layers.${l}.attn.q_proj.bias`,
    `layers.${l}.attn.k_proj.weight`,
    `layers.${l}.mlp.0.weight`,
    `layers.${l}.mlp.0.bias`,
    `layers.${l}.mlp.2.weight`,
    `layers.${l}.mlp.2.bias`,
  ]),
];

describe('Module tree', () => {
  it('namedParameters gives dotted HF-style paths in registration order, tied weights once', () => {
    const m = new Model();
    expect([...m.namedParameters().keys()]).toEqual(modelNames);
    expect(m.parameters()).toHaveLength(modelNames.length);
    expect(m.namedParameters().get('layers.1.mlp.2.weight')!.shape).toEqual([4, 8]);
    // stateDict lists every path, the tied one included
    expect([...m.stateDict().keys()]).toEqual([...modelNames.slice(0, 2), 'lm_head', ...modelNames.slice(2)]);
    expect(m.stateDict().get('lm_head')).toBe(m.embed);
    expect([...m.namedModules()].map(([n]) => n)).toContain('layers.0.attn.k_proj');
    expect(m.numParameters()).toBe(20 + 4 + 2 * (16 + 4 + 16 + 32 + 8 + 32 + 4));
    m.dispose();
  });

  it('rejects duplicate and dotted names', () => {
    class Bad extends Module {
      constructor(name: string, twice: boolean) {
        super();
        this.param(name, zeros(rt, [1]));
        if (twice) this.module(name, new Activation('relu'));
      }
    }
    expect(() => new Bad('a.b', false)).toThrow(/invalid name 'a.b'/);
    expect(() => new Bad('w', true)).toThrow(/'w' is already registered/);
  });

  it('parameters survive tidy and Parameter requires gradients', () => {
    let lin: Linear | null = null;
    tidy(() => {
      lin = new Linear(rt, 3, 2, { seed: 3 });
    });
    expect(lin!.weight.isDisposed).toBe(false); // created in a scope that returned nothing
    expect(lin!.bias!.isDisposed).toBe(false);
    const kept = tidy(() => {
      const l = new Linear(rt, 3, 2, { seed: 3 });
      return l.weight;
    });
    expect(kept.isDisposed).toBe(false);
    expect(kept.requiresGrad).toBe(true);
    expect(kept).toBeInstanceOf(Parameter);
  });

  it('train/eval propagate to every submodule', () => {
    const m = new Model();
    m.eval();
    expect([...m.namedModules()].every(([, x]) => !x.training)).toBe(true);
    m.train();
    expect([...m.namedModules()].every(([, x]) => x.training)).toBe(true);
    m.dispose();
  });
});

describe('name patterns', () => {
  it('glob: * within a segment, ** across, module prefixes match their parameters', () => {
    expect(matchesName('layers.*.mlp.*', 'layers.0.mlp.fc.weight')).toBe(true);
    expect(matchesName('layers.*.mlp', 'layers.10.mlp.fc.weight')).toBe(true);
    expect(matchesName('layers.*.mlp', 'layers.0.mlpx.weight')).toBe(false);
    expect(matchesName('*.bias', 'layers.0.bias')).toBe(false);
    expect(matchesName('**.bias', 'layers.0.mlp.bias')).toBe(true);
    expect(matchesName('**.bias', 'bias')).toBe(true);
    expect(matchesName('**.bias', 'layers.0.bias_x')).toBe(false);
    expect(matchesName('layers.?.attn', 'layers.1.attn.q')).toBe(true);
    expect(matchesName('layers.?.attn', 'layers.12.attn.q')).toBe(false);
    expect(matchesName(/^layers\.1\./, 'layers.1.attn.q')).toBe(true);
    expect(matchesName(/^layers\.1\./, 'layers.10.attn.q')).toBe(false);
    expect(matchesName((n) => n.endsWith('weight'), 'a.weight')).toBe(true);
    expect(globToRegExp('a+b').test('a+b')).toBe(true); // regex metacharacters are literal
  });

  it('freeze/unfreeze by pattern set requiresGrad and drop gradients', () => {
    const m = new Model();
    const frozen = m.freeze('layers.*.mlp.*');
    expect(frozen).toEqual(modelNames.filter((n) => n.includes('.mlp.')));
    const trainable = new Set(m.parameters({ trainable: true }));
    for (const [n, p] of m.namedParameters()) expect(trainable.has(p)).toBe(!n.includes('.mlp.'));
    expect(m.unfreeze(['layers.1.mlp.0', /mlp\.2\.bias$/])).toEqual(['layers.0.mlp.2.bias', 'layers.1.mlp.0.weight', 'layers.1.mlp.0.bias', 'layers.1.mlp.2.bias']);
    expect(m.freeze()).toHaveLength(modelNames.length);
    expect(m.numParameters({ trainable: true })).toBe(0);
    m.dispose();
  });

  it('a frozen Linear gets no gradient in backward, the others do', () => {
    const net = mlp(rt, [3, 4, 2], { seed: 9, activation: 'tanh' });
    net.freeze('0');
    tidy(() => {
      const loss = mean(net.forward(tensor(rt, [0.1, -0.2, 0.3, 0.5, 0.4, -0.6], [2, 3])));
      backward(loss);
    });
    const ps = net.namedParameters();
    expect(ps.get('0.weight')!.grad).toBeNull();
    expect(ps.get('2.weight')!.grad?.shape).toEqual([2, 4]);
    net.dispose();
  });
});

describe('stateDict', () => {
  it('round trip: load another model state → identical values, parameter identity kept', async () => {
    const a = new Model(1);
    const b = new Model(2);
    const wa = await a.namedParameters().get('layers.0.attn.q_proj.weight')!.toArray();
    const pb = b.namedParameters().get('layers.0.attn.q_proj.weight')!;
    expect(Array.from(await pb.toArray())).not.toEqual(Array.from(wa));
    const res = b.loadStateDict(a.stateDict());
    expect(res).toEqual({ missing: [], unexpected: [] });
    expect(b.namedParameters().get('layers.0.attn.q_proj.weight')).toBe(pb);
    for (const [n, p] of a.namedParameters()) expect(await b.namedParameters().get(n)!.toArray()).toEqual(await p.toArray());
    // Float32Array values (e.g. a checkpoint read from disk)
    const arrays: Record<string, Float32Array> = {};
    for (const [n, p] of a.stateDict()) arrays[n] = (await p.toArray()) as Float32Array;
    arrays['norm_weight'] = new Float32Array([7, 8, 9, 10]);
    b.loadStateDict(arrays);
    expect(Array.from(await b.namedParameters().get('norm_weight')!.toArray())).toEqual([7, 8, 9, 10]);
    a.dispose();
    b.dispose();
  });

  it('strict mode lists missing and unexpected keys; shape mismatches name the parameter and both shapes', () => {
    const m = new Model();
    const dict = new Map<string, Tensor>(m.stateDict());
    dict.delete('layers.1.mlp.0.bias');
    dict.delete('embed');
    const extra = zeros(rt, [2]);
    dict.set('layers.9.foo', extra);
    expect(() => m.loadStateDict(dict)).toThrow('missing keys: embed, layers.1.mlp.0.bias; unexpected keys: layers.9.foo');
    expect(m.loadStateDict(dict, { strict: false })).toEqual({ missing: ['embed', 'layers.1.mlp.0.bias'], unexpected: ['layers.9.foo'] });
    const wrong = zeros(rt, [4, 3]);
    const dict2 = new Map<string, Tensor>(m.stateDict());
    dict2.set('layers.0.attn.q_proj.weight', wrong);
    expect(() => m.loadStateDict(dict2)).toThrow("'layers.0.attn.q_proj.weight': parameter has shape [4, 4] f32, got [4, 3] f32");
    expect(() => m.loadStateDict({ ...Object.fromEntries(m.stateDict()), norm_weight: new Float32Array(3) })).toThrow(
      "'norm_weight': parameter has shape [4] (4 elements), got 3 values",
    );
    extra.dispose();
    wrong.dispose();
    m.dispose();
  });
});

describe('layers', () => {
  it('Linear: weight (out, in), y = x·Wᵀ + b, same seed → same parameters', async () => {
    const l = new Linear(rt, 3, 2, { seed: 42 });
    const l2 = new Linear(rt, 3, 2, { seed: 42 });
    const l3 = new Linear(rt, 3, 2, { seed: 43 });
    expect(l.weight.shape).toEqual([2, 3]);
    expect(l.bias!.shape).toEqual([2]);
    const w = Array.from(await l.weight.toArray());
    const b = Array.from(await l.bias!.toArray());
    expect(Array.from(await l2.weight.toArray())).toEqual(w);
    expect(Array.from(await l3.weight.toArray())).not.toEqual(w);
    expect(w.every((v) => Math.abs(v) <= 1 / Math.sqrt(3))).toBe(true);
    const x = [1, 2, -1, 0.5, -0.25, 3];
    const y = await tidy(() => l.forward(tensor(rt, x, [2, 3]))).toArray();
    for (let i = 0; i < 2; i++) {
      for (let o = 0; o < 2; o++) {
        const ref = b[o]! + x[3 * i]! * w[3 * o]! + x[3 * i + 1]! * w[3 * o + 1]! + x[3 * i + 2]! * w[3 * o + 2]!;
        expect(y[2 * i + o]).toBeCloseTo(ref, 5);
      }
    }
    expect(() => l.forward(tensor(rt, [1, 2], [1, 2]))).toThrow(/Linear.forward: expected input \(…, 3\).*\[1,2\]/);
    expect(new Linear(rt, 3, 2, { bias: false }).bias).toBeNull();
  });

  it('Sequential chains children named 0, 1, … and Activation applies its function', async () => {
    class Double extends UnaryModule {
      forward(x: Tensor): Tensor {
        return tidy(() => x) as Tensor;
      }
    }
    const seq = new Sequential(new Activation('relu'), new Double(), new Activation((x) => x));
    expect(seq.namedChildren().map(([n]) => n)).toEqual(['0', '1', '2']);
    const y = await tidy(() => seq.forward(tensor(rt, [-1, 2, -3, 4], [2, 2]))).toArray();
    expect(Array.from(y)).toEqual([0, 2, 0, 4]);
    expect(() => new Activation('nope' as 'relu')).toThrow(/unknown activation 'nope'/);
  });
});
