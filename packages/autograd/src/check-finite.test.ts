/**
 * NaN/Inf checking (check-finite.ts): with it on, the first op fed a non-finite value in program
 * order is named at the next read, with the input, its shape, the value and the index; with it off
 * the same program runs silently and adds no work; a small transformer trains on finite data with
 * checking on without a false alarm.
 *
 * Dimension legend: B batch, T tokens, V vocabulary, C width, H heads, D head dim.
 */
import { Runtime } from '@keel/kernels';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { backward } from './backward.js';
import { isCheckFiniteOn, setCheckFinite } from './check-finite.js';
import { ones, randn, tensor } from './creation.js';
import { Linear, RMSNorm } from './layers.js';
import { Module, type Parameter } from './module.js';
import { attention, rope } from './ops/attention.js';
import { add, gelu, gt, mul, sqrt } from './ops/elementwise.js';
import { permute } from './ops/layout.js';
import { matmul } from './ops/linalg.js';
import { crossEntropy, embedding, layerNorm, softmax } from './ops/nn.js';
import { max, sum } from './ops/reduce.js';
import { reshape } from './ops/shape.js';
import { AdamW } from './optim/adamw.js';
import { noGrad } from './tape.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());
afterEach(() => {
  setCheckFinite(false);
});

const NOTE = '; NaN/Inf checking is on \\(setCheckFinite\\)$';

/** A (4, 8) matrix of 0.1·i with `value` at `index`. */
function withValue(index: number, value: number): Tensor {
  const data = Float32Array.from({ length: 32 }, (_, i) => 0.1 * i);
  data[index] = value;
  return tensor(rt, data, [4, 8]);
}

describe('an op fed a non-finite value', () => {
  it('is named at the next read, with the input, its shape, the value and the index', async () => {
    setCheckFinite(true);
    const a = withValue(13, NaN);
    const b = ones(rt, [8, 2]);
    const y = matmul(a, b);
    await expect(y.toArray()).rejects.toThrow(new RegExp(`^matmul: input 0 \\(shape \\[4,8\\]\\) holds NaN at index 13${NOTE}`));
    for (const t of [a, b, y]) t.dispose();
  });

  it('stays silent with checking off, and the NaN flows through', async () => {
    expect(isCheckFiniteOn()).toBe(false);
    const a = withValue(13, NaN);
    const b = ones(rt, [8, 2]);
    const y = matmul(a, b);
    const out = (await y.toArray()) as Float32Array;
    expect(Number.isNaN(out[2])).toBe(true); // row 1 (index 13 is row 1, column 5)
    expect(Number.isNaN(out[0])).toBe(false);
    for (const t of [a, b, y]) t.dispose();
  });

  it('the first op in program order is reported, naming ±Infinity and the input index', async () => {
    setCheckFinite(true);
    const fine = ones(rt, [4, 8]);
    const inf = withValue(30, -Infinity);
    const nan = withValue(2, NaN);
    const first = add(fine, inf); // consumes -Infinity as input 1
    const second = mul(nan, fine); // consumes NaN later
    await expect(second.toArray()).rejects.toThrow(new RegExp(`^add: input 1 \\(shape \\[4,8\\]\\) holds -Infinity at index 30${NOTE}`));
    // reported once: the log was taken, and its buffers are back in the pool
    const live = rt.stats().liveBuffers;
    await expect(second.toArray()).resolves.toHaveLength(32);
    expect(rt.stats().liveBuffers).toBe(live);
    for (const t of [fine, inf, nan, first, second]) t.dispose();
  });

  it('ops that record nothing are checked too: comparisons, max, a forward under noGrad; reshape is left to its consumer', async () => {
    setCheckFinite(true);
    const x = withValue(7, Infinity);
    const zero = ones(rt, [4, 8]);
    const cases: [() => Tensor, RegExp][] = [
      [() => gt(x, zero), /^gt: input 0 \(shape \[4,8\]\) holds Infinity at index 7;/],
      [() => max(x), /^max: input 0 \(shape \[4,8\]\) holds Infinity at index 7;/],
      [() => noGrad(() => layerNorm(x)), /^layerNorm: input 0 \(shape \[4,8\]\) holds Infinity at index 7;/],
      [() => softmax(reshape(x, [2, 16])), /^softmax: input 0 \(shape \[2,16\]\) holds Infinity at index 7;/],
    ];
    for (const [op, message] of cases) {
      const y = tidy(op);
      await expect(y.toArray()).rejects.toThrow(message);
      y.dispose();
    }
    x.dispose();
    zero.dispose();
  });

  it('a gradient that turns infinite in backward is named at the op that receives it', async () => {
    setCheckFinite(true);
    const p = tensor(rt, [0, 1, 4], [3]);
    p.requiresGrad = true;
    // d sqrt(u)/du = 1 / (2 sqrt u) is +Infinity at u = 0; the forward stays finite
    const loss = sum(sqrt(mul(p, 2)));
    backward(loss);
    await expect(loss.item()).rejects.toThrow(new RegExp(`^mul_scalar backward: the incoming gradient \\(shape \\[3\\]\\) holds Infinity at index 0${NOTE}`));
    loss.dispose();
    p.dispose();
  });
});

describe('cost', () => {
  it('on: one dispatch and one 4-byte slot per f32 input; off: none', async () => {
    const a = withValue(0, 1);
    const b = ones(rt, [8, 2]);
    const run = () => {
      const d = rt.stats().dispatches;
      const live = rt.stats().liveBuffers;
      const y = matmul(a, b);
      const cost = { dispatches: rt.stats().dispatches - d, buffers: rt.stats().liveBuffers - live };
      return { y, cost };
    };
    const off = run();
    setCheckFinite(true);
    const on = run();
    expect(on.cost.dispatches - off.cost.dispatches).toBe(2);
    expect(off.cost.buffers).toBe(1); // the output only
    expect(on.cost.buffers).toBe(2); // the output and the log
    await on.y.toArray();
    for (const t of [a, b, off.y, on.y]) t.dispose();
  });
});

describe('setCheckFinite', () => {
  it('returns the previous setting and refuses anything but a boolean', () => {
    expect(setCheckFinite(true)).toBe(false);
    expect(setCheckFinite(true)).toBe(true);
    expect(() => setCheckFinite('yes' as unknown as boolean)).toThrow(/^setCheckFinite: expected true or false, got yes$/);
  });

  it('KEEL_CHECK_FINITE=1 turns it on when the module loads', async () => {
    vi.stubEnv('KEEL_CHECK_FINITE', '1');
    vi.resetModules();
    try {
      expect((await import('./check-finite.js')).isCheckFiniteOn()).toBe(true);
      vi.stubEnv('KEEL_CHECK_FINITE', '0');
      vi.resetModules();
      expect((await import('./check-finite.js')).isCheckFiniteOn()).toBe(false);
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

// ---------------------------------------------------------------- a small model, finite data

const V = 11;
const C = 16;
const H = 2;
const D = C / H;

/** embedding → rmsNorm → rope + causal attention → layerNorm → GELU MLP → LM head. */
class Tiny extends Module {
  readonly emb: Parameter; // (V, C)
  readonly norm: RMSNorm;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly up: Linear; // C → 2C
  readonly down: Linear; // 2C → C
  readonly head: Linear; // C → V

  constructor(seed: number) {
    super();
    this.emb = this.param('emb', randn(rt, [V, C], seed));
    this.norm = this.module('norm', new RMSNorm(rt, C));
    this.q = this.module('q', new Linear(rt, C, C, { seed: seed + 1 }));
    this.k = this.module('k', new Linear(rt, C, C, { seed: seed + 2 }));
    this.v = this.module('v', new Linear(rt, C, C, { seed: seed + 3 }));
    this.up = this.module('up', new Linear(rt, C, 2 * C, { seed: seed + 4 }));
    this.down = this.module('down', new Linear(rt, 2 * C, C, { seed: seed + 5 }));
    this.head = this.module('head', new Linear(rt, C, V, { seed: seed + 6 }));
  }

  /** ids (B, T) → logits (B, T, V). */
  forward(ids: Tensor): Tensor {
    const [B, T] = ids.shape as [number, number];
    const heads = (x: Tensor) => permute(reshape(x, [B, T, H, D]), [0, 2, 1, 3]); // (B, T, C) → (B, H, T, D)
    let x = embedding(this.emb, ids); // (B, T, C)
    const h = this.norm.forward(x);
    const q = rope(heads(this.q.forward(h)), { layout: 'BHTD' });
    const k = rope(heads(this.k.forward(h)), { layout: 'BHTD' });
    const a = attention(q, k, heads(this.v.forward(h)), { causal: true }); // (B, H, T, D)
    x = add(x, reshape(permute(a, [0, 2, 1, 3]), [B, T, C]));
    x = add(x, this.down.forward(gelu(this.up.forward(layerNorm(x)))));
    return this.head.forward(x);
  }
}

describe('a small model on finite data', () => {
  it('trains with checking on and raises nothing, while the checks do run', async () => {
    const model = new Tiny(7);
    const opt = new AdamW(rt, model, { lr: 1e-2 });
    const B = 2;
    const T = 6;
    const ids = tensor(rt, Int32Array.from({ length: B * T }, (_, i) => (i * 5) % V), [B, T], { dtype: 'i32' });
    const targets = tensor(rt, Int32Array.from({ length: B * T }, (_, i) => (i % T === 0 ? -100 : (i * 3) % V)), [B, T], { dtype: 'i32' });
    /** forward → backward → AdamW step; returns the loss and the dispatches it took. */
    const step = async (): Promise<{ loss: number; dispatches: number }> => {
      const start = rt.stats().dispatches;
      const l = tidy(() => {
        const loss = crossEntropy(model.forward(ids), targets);
        backward(loss);
        return loss;
      });
      opt.step();
      model.zeroGrad();
      const loss = await l.item();
      l.dispose();
      return { loss, dispatches: rt.stats().dispatches - start };
    };
    const plain = await step();
    setCheckFinite(true);
    const checked = [await step(), await step()];
    expect([plain, ...checked].every((s) => Number.isFinite(s.loss))).toBe(true);
    // every parameter feeds at least one op, so each step checks at least that many tensors
    for (const s of checked) expect(s.dispatches - plain.dispatches).toBeGreaterThanOrEqual(model.parameters().length);
    for (const t of [ids, targets]) t.dispose();
    opt.dispose();
    model.dispose();
  });
});
