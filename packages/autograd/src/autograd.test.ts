import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  add,
  backward,
  div,
  exp,
  expand,
  gelu,
  keep,
  log,
  matmul,
  mean,
  mul,
  noGrad,
  randn,
  reshape,
  sigmoid,
  sub,
  sum,
  tanh,
  tensor,
  tidy,
  zeroGrad,
  type Tensor,
} from './index.js';

// float64 central differences of a float64 reference function
function numericGrad(f: (x: Float64Array) => number, x: ArrayLike<number>, eps = 1e-6): Float64Array {
  const xs = Float64Array.from(x);
  return xs.map((v, i) => {
    xs[i] = v + eps;
    const fp = f(xs);
    xs[i] = v - eps;
    const fm = f(xs);
    xs[i] = v;
    return (fp - fm) / (2 * eps);
  });
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 2e-4): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    if (Math.abs(actual[i]! - e) > tol * (1 + Math.abs(e))) {
      throw new Error(`mismatch at [${i}]: got ${actual[i]}, expected ${e}`);
    }
  }
}

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

async function data(t: Tensor): Promise<number[]> {
  return Array.from(await t.toArray());
}

describe('autograd', () => {
  it('differentiates a broadcasting composite against float64 finite differences', async () => {
    // L = mean( tanh(x * w + b) * sigmoid(x) ) / 2 + sum(exp(w) - log(b*b + 1))   x (3,4), w (4,), b (3,1)
    const xv = Array.from(await randn(rt, [3, 4], 1).toArray());
    const wv = Array.from(await randn(rt, [4], 2).toArray());
    const bv = Array.from(await randn(rt, [3, 1], 3).toArray());
    const ref = (x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>) => {
      let m = 0;
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 4; j++) {
          const xx = x[i * 4 + j]!;
          m += Math.tanh(xx * w[j]! + b[i]!) * (1 / (1 + Math.exp(-xx)));
        }
      }
      let s = 0;
      for (let j = 0; j < 4; j++) s += Math.exp(w[j]!);
      for (let i = 0; i < 3; i++) s -= Math.log(b[i]! * b[i]! + 1);
      return m / 12 / 2 + s;
    };
    const x = tensor(rt, xv, [3, 4], { requiresGrad: true });
    const w = tensor(rt, wv, [4], { requiresGrad: true });
    const b = tensor(rt, bv, [3, 1], { requiresGrad: true });
    const loss = tidy(() => {
      const m = div(mean(mul(tanh(add(mul(x, w), b)), sigmoid(x))), 2);
      const s = sub(sum(exp(w)), sum(log(add(mul(b, b), 1))));
      const l = add(m, s);
      backward(l);
      return l;
    });
    expect(await loss.item()).toBeCloseTo(ref(xv, wv, bv), 4);
    expectClose(await data(x.grad!), numericGrad((v) => ref(v, wv, bv), xv));
    expectClose(await data(w.grad!), numericGrad((v) => ref(xv, v, bv), wv));
    expectClose(await data(b.grad!), numericGrad((v) => ref(xv, wv, v), bv));
  });

  it('differentiates matmul chains with reshape and shared weights', async () => {
    // L = sum(gelu(reshape(X (2,3,5), (6,5)) @ W (5,4)) @ V (4,1))
    const X = randn(rt, [2, 3, 5], 4, { requiresGrad: true });
    const W = randn(rt, [5, 4], 5, { requiresGrad: true });
    const V = randn(rt, [4, 1], 6, { requiresGrad: true });
    const [xv, wv, vv] = await Promise.all([data(X), data(W), data(V)]);
    const g = (z: number) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));
    const ref = (x: ArrayLike<number>, w: ArrayLike<number>, v: ArrayLike<number>) => {
      let L = 0;
      for (let r = 0; r < 6; r++) {
        for (let c = 0; c < 4; c++) {
          let h = 0;
          for (let k = 0; k < 5; k++) h += x[r * 5 + k]! * w[k * 4 + c]!;
          L += g(h) * v[c]!;
        }
      }
      return L;
    };
    tidy(() => backward(sum(matmul(gelu(matmul(reshape(X, [6, 5]), W)), V))));
    expectClose(await data(X.grad!), numericGrad((v) => ref(v, wv, vv), xv), 5e-4);
    expectClose(await data(W.grad!), numericGrad((v) => ref(xv, v, vv), wv), 5e-4);
    expectClose(await data(V.grad!), numericGrad((v) => ref(xv, wv, v), vv), 5e-4);
    expect(X.grad!.shape).toEqual([2, 3, 5]);
  });

  it('accumulates across backward calls, and zeroGrad clears', async () => {
    const w = tensor(rt, [1, 2, 3], [3], { requiresGrad: true });
    tidy(() => backward(sum(mul(w, w))));
    tidy(() => backward(sum(mul(w, w))));
    expect(await data(w.grad!)).toEqual([4, 8, 12]);
    zeroGrad([w]);
    expect(w.grad).toBeNull();
  });

  it('calls gradient hooks with the incoming gradient', async () => {
    const w = tensor(rt, [1, -2], [2], { requiresGrad: true });
    const seen: number[][] = [];
    const pending: Promise<void>[] = [];
    w.gradHooks.push((g) => void pending.push(g.toArray().then((a) => void seen.push(Array.from(a)))));
    tidy(() => backward(sum(mul(w, 3))));
    await Promise.all(pending);
    expect(seen).toEqual([[3, 3]]);
  });

  it('expand sums its gradient back over broadcast axes', async () => {
    const b = tensor(rt, [1, 2, 3], [3, 1], { requiresGrad: true });
    tidy(() => backward(sum(mul(expand(b, [2, 3, 4]), 2))));
    expect(await data(b.grad!)).toEqual([16, 16, 16]);
  });

  it('noGrad records nothing; detach cuts the tape', () => {
    const w = tensor(rt, [1], [1], { requiresGrad: true });
    const y = noGrad(() => mul(w, 2));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
    expect(mul(w.detach(), 2).requiresGrad).toBe(false);
  });

  it('gives clear errors: non-scalar backward, disposed inputs, mismatched shapes', () => {
    const w = tensor(rt, [1, 2], [2], { requiresGrad: true });
    expect(() => backward(mul(w, 2))).toThrow(/non-scalar output needs a seed gradient/);
    const h = mul(w, 2);
    const l = sum(mul(h, h));
    h.dispose();
    expect(() => backward(l)).toThrow(/backward through a disposed tensor: input 0 of 'binary'/);
    const a = tensor(rt, [1, 2, 3, 4, 5, 6], [2, 3]);
    expect(() => matmul(a, a)).toThrow(/matmul: inner dimensions differ \(A is \[2,3\], B is \[2,3\]\)/);
    expect(() => add(a, tensor(rt, [1, 2], [2]))).toThrow(/cannot broadcast shapes \[2,3\] and \[2\]/);
    expect(() => reshape(a, [4, 2])).toThrow(/reshape: cannot view \[2,3\] \(6 elements\) as \[4,2\]/);
    expect(() => backward(tensor(rt, [1], [1]))).toThrow(/does not require gradients/);
  });

  it('tidy disposes intermediates, keeps results and leaf grads; live buffers stay flat over 1000 steps', async () => {
    const w = randn(rt, [64, 32], 7, { requiresGrad: true });
    const x = randn(rt, [16, 64], 8);
    const step = () =>
      tidy(() => {
        const l = mean(tanh(matmul(x, w)));
        backward(l);
        return l;
      });
    step().dispose();
    zeroGrad([w]);
    await rt.sync();
    const before = rt.stats();
    let last: Tensor | null = null;
    for (let i = 0; i < 1000; i++) {
      last?.dispose();
      zeroGrad([w]);
      last = step();
    }
    await last!.item();
    last!.dispose();
    zeroGrad([w]);
    const after = rt.stats();
    expect(after.liveBuffers).toBe(before.liveBuffers);
    expect(after.liveBytes).toBe(before.liveBytes);
    const kept = tidy(() => keep(mul(x, 2)));
    expect(kept.isDisposed).toBe(false);
  });
});
