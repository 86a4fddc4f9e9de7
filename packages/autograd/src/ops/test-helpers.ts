/**
 * Test-only helpers for the op-family tests (not exported from the package index): run an op on the
 * GPU and compare its value and its gradients with a float64 CPU reference, the gradients against
 * central finite differences of that float64 reference.
 */
import type { Runtime } from '@keel/kernels';
import { backward } from '../backward.js';
import { seededRandom, tensor } from '../creation.js';
import { tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';

/** float64 central differences of a float64 function. */
export function numericGrad(f: (x: Float64Array) => number, x: ArrayLike<number>, eps = 1e-6): Float64Array {
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

/** Throws on the first element with |a − e| > tol·(1 + |e|); non-finite values must match exactly. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const ok = Number.isFinite(e) ? Math.abs(a - e) <= tol * (1 + Math.abs(e)) : Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e));
    if (!ok) throw new Error(`${what}: mismatch at [${i}]: got ${a}, expected ${e}`);
  }
}

/** n values, normal(0, scale), seeded; as f32. */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r()));
}

export interface OpInput {
  data: ArrayLike<number>;
  shape: readonly number[];
  dtype?: 'f32' | 'i32';
  /** Default: true for f32 inputs. */
  grad?: boolean;
}

export interface OpCheck {
  what: string;
  inputs: readonly OpInput[];
  op: (...ts: Tensor[]) => Tensor;
  /** The op's output in float64, row-major, from the inputs' values. */
  ref: (...xs: Float64Array[]) => ArrayLike<number>;
  tol?: number;
  gradTol?: number;
}

/**
 * Creates the inputs, checks op's value against ref, then backward with a random seed r (zero where
 * the reference is not finite) against numericGrad of Σ r·ref. Returns the input tensors (the caller
 * disposes them), e.g. for a gradcheck.
 */
export async function checkOp(rt: Runtime, c: OpCheck): Promise<Tensor[]> {
  const ts = c.inputs.map((x) => {
    const dtype = x.dtype ?? 'f32';
    const data = dtype === 'i32' ? Int32Array.from(x.data) : Float32Array.from(x.data);
    return tensor(rt, data, x.shape, { dtype, requiresGrad: x.grad ?? dtype === 'f32' });
  });
  const f64 = await Promise.all(ts.map(async (t) => Float64Array.from(await t.toArray())));
  const expected = c.ref(...f64);
  const rand = seededRandom(99);
  const r = Float64Array.from(expected, (e) => (Number.isFinite(e) ? 2 * rand() - 1 : 0));
  const y = c.op(...ts);
  expectClose(await y.toArray(), expected, c.tol ?? 1e-4, `${c.what} value`);
  const outShape = [...y.shape];
  y.dispose();
  const seed = tensor(rt, Float32Array.from(r), outShape);
  tidy(() => backward(c.op(...ts), seed));
  seed.dispose();
  const loss = (xs: Float64Array[]) => {
    const out = c.ref(...xs);
    let s = 0;
    for (let j = 0; j < out.length; j++) if (r[j] !== 0) s += r[j]! * out[j]!;
    return s;
  };
  for (const [i, t] of ts.entries()) {
    if (!t.requiresGrad) continue;
    const expectG = numericGrad((v) => loss(f64.map((x, k) => (k === i ? v : x))), f64[i]!);
    if (!t.grad) throw new Error(`${c.what}: input ${i} got no gradient`);
    expectClose(await t.grad.toArray(), expectG, c.gradTol ?? 5e-4, `${c.what} gradient of input ${i}`);
    if (t.grad.shape.join() !== t.shape.join()) throw new Error(`${c.what}: gradient shape [${t.grad.shape}] ≠ [${t.shape}]`);
    t.grad.dispose();
    t.grad = null;
  }
  return ts;
}
