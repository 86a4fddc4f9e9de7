import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn, randu, size } from '../testing/reference.js';
import { UNARY_OPS, broadcastShapes, type UnaryOp } from './elementwise.js';
import { binaryBackward, reduceToShape, unaryBackward, type DiffBinaryOp } from './elementwise-backward.js';
import { forEachBroadcast, refBinary, refBinaryGrad, refReduceToShape, refUnary, refUnaryGrad } from './elementwise.reference.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

async function readAndRelease(buf: GpuBuffer, n: number): Promise<Float32Array> {
  const out = await rt.readF32(buf, 0, n);
  rt.release(buf);
  return out;
}

const SCALARS: Partial<Record<UnaryOp, number>> = {
  add_scalar: 1.75, sub_scalar: -0.5, rsub_scalar: 2.25, mul_scalar: -3, div_scalar: 0.3, rdiv_scalar: 2, pow_scalar: 2.5,
};

/** Inputs in each op's domain, away from kinks (relu/abs at 0 are tested separately). */
function inputs(op: UnaryOp, n: number, seed: number): Float32Array {
  if (op === 'log' || op === 'sqrt' || op === 'rsqrt' || op === 'pow_scalar' || op === 'rdiv_scalar') {
    return randu(n, seed, 0.2, 5);
  }
  return randn(n, seed, 2.5).map((x) => (Math.abs(x) < 1e-3 ? 0.5 : x));
}

describe('unaryBackward', () => {
  it.each(UNARY_OPS)('%s: dx = dy·f′(x) matches the float64 reference (n = 777)', async (op) => {
    const s = SCALARS[op];
    const xs = inputs(op, 777, 21);
    const dys = randn(777, 22);
    const [x, dy] = [rt.upload(xs), rt.upload(dys)];
    const dx = await readAndRelease(unaryBackward(rt, op, x, dy, { scalar: s }), 777);
    const expected = Array.from(xs, (v, i) => dys[i]! * refUnaryGrad(op, v, s));
    expectAllClose(dx, expected, { atol: 2e-6, rtol: 1e-5 }, `${op} backward`);
    rt.release(x);
    rt.release(dy);
  });

  it.each(UNARY_OPS)('%s: reference gradient agrees with finite differences', (op) => {
    const s = SCALARS[op];
    const xs = Float64Array.from(inputs(op, 9, 23));
    const w = Float64Array.from(randn(9, 24));
    const num = numericGrad((x) => dot(w, Array.from(x, (v) => refUnary(op, v, s))), xs);
    const ana = Array.from(xs, (v, i) => w[i]! * refUnaryGrad(op, v, s));
    expectAllClose(ana, num, { atol: 1e-6, rtol: 1e-5 }, `${op} reference grad`);
  });

  it('uses relu′(0) = 0, abs′(0) = 0, and stays finite at huge |x|', async () => {
    const xs = Float32Array.from([0, 1e30, -1e30, Infinity, -Infinity, 100, -100]);
    const dys = new Float32Array(xs.length).fill(1);
    const [x, dy] = [rt.upload(xs), rt.upload(dys)];
    for (const op of ['relu', 'abs', 'gelu', 'gelu_erf', 'silu', 'sigmoid', 'tanh'] as const) {
      const dx = await readAndRelease(unaryBackward(rt, op, x, dy), xs.length);
      const expected = Float32Array.from(xs, (v) => refUnaryGrad(op, v));
      if (op === 'gelu' || op === 'silu' || op === 'gelu_erf') {
        // the reference's x·σ′ is 0·∞ at ±∞; the kernel takes the limit (1 at +∞, 0 at −∞)
        expected[3] = 1;
        expected[4] = 0;
      }
      expectAllClose(dx, expected, { atol: 1e-6, rtol: 1e-5 }, `${op} edges`);
    }
    rt.release(x);
    rt.release(dy);
  });

  it('rejects a dy shorter than x', () => {
    const x = rt.upload(new Float32Array(8));
    const dy = rt.upload(new Float32Array(4));
    expect(() => unaryBackward(rt, 'exp', x, dy)).toThrow(/unary exp backward: 8 elements exceed the 16-byte buffer/);
    rt.release(x);
    rt.release(dy);
  });
});

describe('reduceToShape', () => {
  const cases: [number[], number[]][] = [
    [[3, 4, 5], [4, 1]],
    [[3, 4, 5], [1]],
    [[3, 4, 5], [5]],
    [[3, 4, 5], [3, 1, 5]],
    [[3, 4, 5], [3, 4, 1]],
    [[2, 3, 4, 5, 6, 7], [3, 1, 5, 1, 7]],
    [[300, 130], [130]], // leading-axis reduction, 2 levels
    [[130, 300], [130, 1]], // innermost reduction, 2 levels
    [[70001], []], // 3 levels
    [[0, 3], [1, 3]], // nothing to sum: zeros
    [[5, 2], [5, 2]], // no reduction: a copy
  ];
  it.each(cases)('%j → %j', async (from, to) => {
    const xs = randn(size(from), 31);
    const x = rt.upload(xs);
    const out = await readAndRelease(reduceToShape(rt, x, from, to), size(to));
    expectAllClose(out, refReduceToShape(xs, from, to), { atol: 1e-5, rtol: 1e-5 }, 'reduce');
    rt.release(x);
  });

  it('sums 100 000 copies of 0.1 to within 1e-6 relative (a serial f32 sum is off by 1.4e-4)', async () => {
    const xs = new Float32Array(100_000).fill(0.1);
    const x = rt.upload(xs);
    const [out] = await readAndRelease(reduceToShape(rt, x, [100_000], [1]), 1);
    expectAllClose([out!], [100_000 * Math.fround(0.1)], { atol: 0, rtol: 1e-6 }, 'blocked sum');
    rt.release(x);
  });

  it('names the shapes when the target does not broadcast to the source', () => {
    const x = rt.upload(new Float32Array(6));
    expect(() => reduceToShape(rt, x, [2, 3], [4])).toThrow('reduceToShape: cannot reduce shape [2,3] to [4]');
    expect(() => reduceToShape(rt, x, [2, 3], [2, 2, 3])).toThrow(/cannot reduce shape \[2,3\] to \[2,2,3\]/);
    rt.release(x);
  });
});

// ------------------------------------------------------------------ binary backward

const DIFF_OPS: DiffBinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'];

function binaryInputs(op: DiffBinaryOp, aShape: number[], bShape: number[], ties: boolean): [Float32Array, Float32Array] {
  if (op === 'pow') return [randu(size(aShape), 41, 0.2, 3), randn(size(bShape), 42, 1.5)];
  if (op === 'div') return [randn(size(aShape), 43), randu(size(bShape), 44, 0.5, 3)];
  const q = (v: Float32Array) => (ties ? v.map((x) => Math.round(x * 2) / 2) : v);
  return [q(randn(size(aShape), 45, 1.5)), q(randn(size(bShape), 46, 1.5))];
}

/** Float64 reference: (dL/da, dL/db) for L = Σ dy · f(a, b) under broadcasting. */
function refGrads(op: DiffBinaryOp, a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[], dy: ArrayLike<number>) {
  const outShape = broadcastShapes('ref', aShape, bShape);
  const da = new Float64Array(size(aShape));
  const db = new Float64Array(size(bShape));
  forEachBroadcast(outShape, [aShape, bShape], (i, [ia, ib]) => {
    const [ga, gb] = refBinaryGrad(op, a[ia!]!, b[ib!]!);
    da[ia!] = da[ia!]! + dy[i]! * ga;
    db[ib!] = db[ib!]! + dy[i]! * gb;
  });
  return { da, db };
}

function refLoss(op: DiffBinaryOp, a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[], dy: ArrayLike<number>) {
  let s = 0;
  forEachBroadcast(broadcastShapes('ref', aShape, bShape), [aShape, bShape], (i, [ia, ib]) => {
    s += dy[i]! * refBinary(op, a[ia!]!, b[ib!]!);
  });
  return s;
}

describe('binaryBackward', () => {
  const shapes: [number[], number[]][] = [
    [[501], [501]],
    [[3, 1, 5], [4, 1]],
    [[1], [6, 7]],
  ];
  for (const [aShape, bShape] of shapes) {
    it.each(DIFF_OPS)(`%s on ${JSON.stringify(aShape)} and ${JSON.stringify(bShape)} matches the reference`, async (op) => {
      const [a, b] = binaryInputs(op, aShape, bShape, true);
      const n = size(broadcastShapes('test', aShape, bShape));
      const dys = randn(n, 47);
      const [ba, bb, bdy] = [rt.upload(a), rt.upload(b), rt.upload(dys)];
      const { da, db } = binaryBackward(rt, op, ba, bb, bdy, { aShape, bShape });
      const ref = refGrads(op, a, aShape, b, bShape, dys);
      expectAllClose(await readAndRelease(da, a.length), ref.da, { atol: 1e-5, rtol: 1e-5 }, `${op} da`);
      expectAllClose(await readAndRelease(db, b.length), ref.db, { atol: 1e-5, rtol: 1e-5 }, `${op} db`);
      [ba, bb, bdy].forEach((x) => rt.release(x));
    });
  }

  it.each(DIFF_OPS)('%s: reference gradients agree with finite differences', (op) => {
    const aShape = [2, 1, 3];
    const bShape = [4, 1];
    const [a, b] = binaryInputs(op, aShape, bShape, false);
    const dy = randn(24, 48);
    const ref = refGrads(op, a, aShape, b, bShape, dy);
    const numA = numericGrad((x) => refLoss(op, x, aShape, b, bShape, dy), a);
    const numB = numericGrad((x) => refLoss(op, a, aShape, x, bShape, dy), b);
    expectAllClose(ref.da, numA, { atol: 1e-6, rtol: 1e-5 }, `${op} da vs numeric`);
    expectAllClose(ref.db, numB, { atol: 1e-6, rtol: 1e-5 }, `${op} db vs numeric`);
  });

  it('rejects non-differentiable ops and a wrongly sized dy', () => {
    const x = rt.upload(new Float32Array(6));
    expect(() => binaryBackward(rt, 'eq' as DiffBinaryOp, x, x, x, { aShape: [6], bShape: [6] })).toThrow(
      /binary backward: op 'eq' is not differentiable/,
    );
    expect(() => binaryBackward(rt, 'mul', x, x, x, { aShape: [2, 3], bShape: [4, 1, 1] })).toThrow(
      /binary mul backward: dy of shape \[4,2,3\]/,
    );
    expect(() => binaryBackward(rt, 'add', x, x, x, { aShape: [2, 3], bShape: [2] })).toThrow(
      'binary add backward: cannot broadcast shapes [2,3] and [2]',
    );
    rt.release(x);
  });
});
