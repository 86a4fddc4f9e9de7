import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backward, zeroGrad } from '../backward.js';
import { tensor } from '../creation.js';
import { gradcheck } from '../gradcheck.js';
import { tidy } from '../scope.js';
import { noGrad } from '../tape.js';
import type { Tensor } from '../tensor.js';
import { attention } from './attention.js';
import { crossEntropy, embedding, layerNorm, linear, logSoftmax, rmsNorm, softmax } from './nn.js';
import { sum } from './reduce.js';
import { reshape } from './shape.js';
import { checkOp, randomF32 } from './test-helpers.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const f32 = (shape: number[], seed: number, scale = 1) => ({ data: randomF32(size(shape), seed, scale), shape });
const dispose = (ts: Tensor[]) => ts.forEach((t) => t.dispose());

// ---- float64 references (row-major, last axis of length C)
function refSoftmax(x: Float64Array, C: number, log: boolean, T = 0): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    const vis = (c: number) => !T || c <= r % T;
    let m = -Infinity;
    for (let c = 0; c < C; c++) if (vis(c)) m = Math.max(m, x[r * C + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) if (vis(c)) s += Math.exp(x[r * C + c]! - m);
    for (let c = 0; c < C; c++) {
      const z = x[r * C + c]! - m;
      y[r * C + c] = !vis(c) ? (log ? -Infinity : 0) : log ? z - Math.log(s) : Math.exp(z) / s;
    }
  }
  return y;
}
function refNorm(x: Float64Array, C: number, kind: 'layer' | 'rms', eps: number, w?: Float64Array, b?: Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    const row = x.subarray(r * C, (r + 1) * C);
    const mean = kind === 'layer' ? row.reduce((a, v) => a + v, 0) / C : 0;
    const v = row.reduce((a, e) => a + (e - mean) ** 2, 0) / C;
    for (let c = 0; c < C; c++) y[r * C + c] = ((row[c]! - mean) / Math.sqrt(v + eps)) * (w ? w[c]! : 1) + (b ? b[c]! : 0);
  }
  return y;
}

describe('softmax / logSoftmax', () => {
  it('match float64 values and gradients, plain and causal', async () => {
    for (const log of [false, true]) {
      const op = log ? logSoftmax : softmax;
      let ts = await checkOp(rt, { what: `softmax log=${log}`, inputs: [f32([2, 3, 7], 1, 2)], op: (x) => op(x!), ref: (x) => refSoftmax(x, 7, log) });
      await gradcheck((x) => op(x!), ts);
      dispose(ts);
      ts = await checkOp(rt, {
        what: `causal softmax log=${log}`,
        inputs: [f32([2, 5, 5], 2, 2)],
        op: (x) => op(x!, { causal: true }),
        ref: (x) => refSoftmax(x, 5, log, 5),
      });
      dispose(ts);
    }
  });

  it('rejects i32 and rank-0 input, naming the op and shape', () => {
    expect(() => softmax(tensor(rt, new Int32Array([1, 2]), [2]))).toThrow(/softmax: x must be f32, got i32 \(shapes x \[2\]\)/);
    expect(() => logSoftmax(tensor(rt, [1], []))).toThrow(/logSoftmax: needs rank ≥ 1/);
    expect(() => softmax(tensor(rt, [1, 2, 3, 4, 5, 6], [2, 3]), { causal: true })).toThrow(/causal mask needs a \(\.\.\., T, T\) shape/);
  });
});

describe('crossEntropy', () => {
  const V = 11;
  const targets = [3, -100, 0, 10, 7, 3];
  const ref = (x: Float64Array, t: Float64Array) => {
    let s = 0;
    let n = 0;
    for (let r = 0; r < t.length; r++) {
      if (t[r] === -100) continue;
      const row = x.subarray(r * V, (r + 1) * V);
      const m = Math.max(...row);
      s += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[t[r]!]!;
      n++;
    }
    return [s / n];
  };

  it('mean loss over non-ignored rows; gradient vs float64 finite differences and gradcheck', async () => {
    const inputs = [f32([2, 3, V], 3, 2), { data: targets, shape: [2, 3], dtype: 'i32' as const }];
    const ts = await checkOp(rt, { what: 'crossEntropy', inputs, op: (x, t) => crossEntropy(x!, t!), ref });
    expect(crossEntropy(ts[0]!, ts[1]!).shape).toEqual([]);
    await gradcheck((x, t) => crossEntropy(x!, t!), ts, { names: ['logits', 'targets'] });
    dispose(ts);
  });

  it('honours a custom ignoreIndex', async () => {
    const t2 = targets.map((t) => (t === -100 ? 5 : t === 7 ? -1 : t));
    const ref2 = (x: Float64Array, t: Float64Array) => ref(x, t.map((v) => (v === -1 ? -100 : v)));
    const inputs = [f32([6, V], 4), { data: t2, shape: [6], dtype: 'i32' as const }];
    dispose(await checkOp(rt, { what: 'crossEntropy ignore -1', inputs, op: (x, t) => crossEntropy(x!, t!, { ignoreIndex: -1 }), ref: ref2 }));
  });

  it('rejects f32 targets and mismatched shapes', () => {
    const logits = tensor(rt, new Float32Array(12), [3, 4]);
    expect(() => crossEntropy(logits, tensor(rt, [0, 1, 2], [3]))).toThrow(/crossEntropy: targets must be i32, got f32 \(shapes logits \[3,4\], targets \[3\]\)/);
    expect(() => crossEntropy(logits, tensor(rt, new Int32Array([0, 1]), [2]))).toThrow(/crossEntropy: logits must be \(…, V\).*\[3,4\].*\[2\]/);
  });
});

describe('layerNorm / rmsNorm', () => {
  it('layerNorm with weight and bias over leading dims (2,3), C = 13', async () => {
    const C = 13;
    const inputs = [f32([2, 3, C], 5, 2), f32([C], 6), f32([C], 7)];
    const ts = await checkOp(rt, {
      what: 'layerNorm',
      inputs,
      op: (x, w, b) => layerNorm(x!, w!, b!, { eps: 1e-5 }),
      ref: (x, w, b) => refNorm(x, C, 'layer', 1e-5, w, b),
      gradTol: 1e-3,
    });
    dispose(ts);
    const small = await checkOp(rt, { what: 'layerNorm small', inputs: [f32([3, 5], 8), f32([5], 9), f32([5], 10)], op: (x, w, b) => layerNorm(x!, w!, b!), ref: (x, w, b) => refNorm(x, 5, 'layer', 1e-5, w, b), gradTol: 1e-3 });
    await gradcheck((x, w, b) => layerNorm(x!, w!, b!), small, { names: ['x', 'weight', 'bias'] });
    dispose(small);
  });

  it('layerNorm without affine parameters, and with weight only', async () => {
    dispose(await checkOp(rt, { what: 'layerNorm plain', inputs: [f32([5, 6], 11)], op: (x) => layerNorm(x!), ref: (x) => refNorm(x, 6, 'layer', 1e-5), gradTol: 1e-3 }));
    dispose(await checkOp(rt, { what: 'layerNorm w', inputs: [f32([4, 7], 12), f32([7], 13)], op: (x, w) => layerNorm(x!, w!, null, { eps: 1e-3 }), ref: (x, w) => refNorm(x, 7, 'layer', 1e-3, w), gradTol: 1e-3 }));
  });

  it('rmsNorm with and without weight', async () => {
    const C = 9;
    const ts = await checkOp(rt, { what: 'rmsNorm', inputs: [f32([3, 2, C], 14, 2), f32([C], 15)], op: (x, w) => rmsNorm(x!, w!, { eps: 1e-6 }), ref: (x, w) => refNorm(x, C, 'rms', 1e-6, w), gradTol: 1e-3 });
    await gradcheck((x, w) => rmsNorm(x!, w!), ts, { names: ['x', 'weight'] });
    dispose(ts);
    dispose(await checkOp(rt, { what: 'rmsNorm plain', inputs: [f32([5, 4], 16)], op: (x) => rmsNorm(x!), ref: (x) => refNorm(x, 4, 'rms', 1e-6), gradTol: 1e-3 }));
  });

  it('rejects a weight of the wrong size and i32 input', () => {
    const x = tensor(rt, new Float32Array(6), [2, 3]);
    expect(() => layerNorm(x, tensor(rt, [1, 1], [2]))).toThrow(/layerNorm: weight must have shape \[3\] \(shapes x \[2,3\], weight \[2\]\)/);
    expect(() => rmsNorm(tensor(rt, new Int32Array(6), [2, 3]))).toThrow(/rmsNorm: x must be f32, got i32/);
  });
});

describe('embedding', () => {
  it('gathers rows for (2,3) ids with repeats; the table gradient scatter-adds', async () => {
    const [V, C] = [7, 5];
    const ids = [4, 0, 4, 6, 2, 4];
    const ref = (t: Float64Array, i: Float64Array) => Float64Array.from({ length: i.length * C }, (_, e) => t[i[Math.floor(e / C)]! * C + (e % C)]!);
    const ts = await checkOp(rt, { what: 'embedding', inputs: [f32([V, C], 17), { data: ids, shape: [2, 3], dtype: 'i32' }], op: (t, i) => embedding(t!, i!), ref });
    expect(embedding(ts[0]!, ts[1]!).shape).toEqual([2, 3, C]);
    await gradcheck((t, i) => embedding(t!, i!), ts);
    dispose(ts);
  });

  it('rejects f32 ids and a non-2-D table', () => {
    const table = tensor(rt, new Float32Array(6), [3, 2]);
    expect(() => embedding(table, tensor(rt, [0, 1], [2]))).toThrow(/embedding: ids must be i32, got f32 \(shapes table \[3,2\], ids \[2\]\)/);
    expect(() => embedding(tensor(rt, new Float32Array(6), [6]), tensor(rt, new Int32Array([0]), [1]))).toThrow(/embedding: table must be \(V, C\)/);
  });
});

describe('linear', () => {
  const ref = (M: number, K: number, N: number) => (x: Float64Array, w: Float64Array, b?: Float64Array) =>
    Float64Array.from({ length: M * N }, (_, e) => {
      const [m, n] = [Math.floor(e / N), e % N];
      let s = b ? b[n]! : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      return s;
    });

  it('x (2,3,5) · Wᵀ (6,5) + b with all gradients', async () => {
    const ts = await checkOp(rt, { what: 'linear', inputs: [f32([2, 3, 5], 18), f32([6, 5], 19), f32([6], 20)], op: (x, w, b) => linear(x!, w!, b!), ref: ref(6, 5, 6) });
    await gradcheck((x, w, b) => linear(x!, w!, b!), ts, { names: ['x', 'weight', 'bias'] });
    dispose(ts);
  });

  it('without bias, 1-D input, and a frozen weight', async () => {
    dispose(await checkOp(rt, { what: 'linear no bias', inputs: [f32([7, 9], 21), f32([3, 9], 22)], op: (x, w) => linear(x!, w!), ref: ref(7, 9, 3) }));
    dispose(await checkOp(rt, { what: 'linear 1-D', inputs: [f32([5], 23), f32([4, 5], 24), f32([4], 25)], op: (x, w, b) => linear(x!, w!, b!), ref: ref(1, 5, 4) }));
    const ts = await checkOp(rt, { what: 'linear frozen W', inputs: [f32([3, 4], 26), { ...f32([2, 4], 27), grad: false }], op: (x, w) => linear(x!, w!), ref: ref(3, 4, 2) });
    expect(ts[1]!.grad).toBeNull();
    dispose(ts);
  });

  it('rejects mismatched in-features and bias size', () => {
    const x = tensor(rt, new Float32Array(6), [2, 3]);
    expect(() => linear(x, tensor(rt, new Float32Array(8), [2, 4]))).toThrow(/linear: x must be \(…, in\) and weight \(out, in\).*x \[2,3\], weight \[2,4\]/);
    expect(() => linear(x, tensor(rt, new Float32Array(6), [2, 3]), tensor(rt, [1, 2, 3], [3]))).toThrow(/linear: bias must have shape \[2\]/);
  });
});

describe('lifetimes of saved tensors', () => {
  it('a transformer-ish step in tidy keeps live buffers flat; noGrad forwards save nothing', async () => {
    const emb = tensor(rt, randomF32(10 * 8, 30), [10, 8], { requiresGrad: true });
    const w = tensor(rt, randomF32(8, 31), [8], { requiresGrad: true });
    const wq = tensor(rt, randomF32(8 * 8, 32, 0.3), [8, 8], { requiresGrad: true });
    const ids = tensor(rt, new Int32Array([1, 4, 4, 9, 0, 2]), [6], { dtype: 'i32' });
    const targets = tensor(rt, new Int32Array([4, 4, 9, 0, 2, -100]), [6], { dtype: 'i32' });
    const step = () =>
      tidy(() => {
        const h = rmsNorm(embedding(emb, ids), w);
        const q = reshape(linear(h, wq), [1, 1, 6, 8]);
        const a = reshape(attention(q, q, q, { causal: true }), [6, 8]);
        const loss = crossEntropy(linear(layerNorm(a), emb), targets);
        backward(loss);
        return loss;
      });
    const params = [emb, w, wq];
    step().dispose();
    zeroGrad(params);
    await rt.sync();
    const before = rt.stats();
    for (let i = 0; i < 20; i++) {
      step().dispose();
      zeroGrad(params);
    }
    // Outside any tidy: with recording off, the forwards release their auxiliary results at once.
    const parts = noGrad(() => {
      const e = embedding(emb, ids);
      const n = layerNorm(e);
      return [e, n, crossEntropy(n, targets)];
    });
    dispose(parts);
    await rt.sync();
    expect(rt.stats().liveBuffers).toBe(before.liveBuffers);
  });

  it('backward after the saved statistics were disposed names the op', () => {
    const x = tensor(rt, randomF32(6, 40), [2, 3], { requiresGrad: true });
    const y = layerNorm(x);
    (y.node!.ctx as { rstd: Tensor }).rstd.dispose();
    expect(() => tidy(() => backward(sum(y)))).toThrow(/backward of 'layerNorm': the saved rstd .* was disposed/);
  });
});
