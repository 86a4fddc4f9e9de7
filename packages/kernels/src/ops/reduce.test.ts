import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitError } from '../runtime/errors.js';
import { Runtime } from '../runtime/runtime.js';
import { expectAllClose, randn, size } from '../testing/reference.js';
import { reduce, reduceArgmax, reduceOutputShape, reduceSum, type ReduceOp } from './reduce.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

/** float64 reference of reduce over a set of axes. */
function reduceRef(x: ArrayLike<number>, shape: number[], op: ReduceOp, axes: number[]): number[] {
  const outShape = shape.filter((_, i) => !axes.includes(i));
  const outN = size(outShape);
  const acc: number[][] = Array.from({ length: outN }, () => []);
  const idx = new Array<number>(shape.length).fill(0);
  for (let f = 0; f < x.length; f++) {
    let o = 0;
    let r = 0;
    for (let d = 0; d < shape.length; d++) {
      if (axes.includes(d)) r = r * shape[d]! + idx[d]!;
      else o = o * shape[d]! + idx[d]!;
    }
    acc[o]![r] = x[f]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return acc.map((v) => {
    switch (op) {
      case 'sum':
        return v.reduce((a, b) => a + b, 0);
      case 'mean':
        return v.reduce((a, b) => a + b, 0) / v.length;
      case 'sumSquares':
        return v.reduce((a, b) => a + b * b, 0);
      case 'max':
        return v.some(Number.isNaN) ? NaN : v.reduce((a, b) => Math.max(a, b), -Infinity);
      case 'min':
        return v.some(Number.isNaN) ? NaN : v.reduce((a, b) => Math.min(a, b), Infinity);
      case 'argmax': {
        let best = 0xffffffff;
        for (let i = 0; i < v.length; i++) {
          const b = best === 0xffffffff ? undefined : v[best]!;
          if (b === undefined || (Number.isNaN(v[i]!) && !Number.isNaN(b)) || (!Number.isNaN(b) && v[i]! > b)) best = i;
        }
        return best;
      }
    }
  });
}

async function run(x: Float32Array, shape: number[], op: ReduceOp, axis?: number | number[]): Promise<ArrayLike<number>> {
  const bx = rt.upload(x.length ? x : new Float32Array(1));
  const out = reduce(rt, bx, shape, op, axis === undefined ? {} : { axis });
  const n = size(reduceOutputShape(shape, axis === undefined ? {} : { axis }));
  const res = op === 'argmax' ? await rt.readU32(out, 0, n) : await rt.readF32(out, 0, n);
  rt.release(bx);
  rt.release(out);
  return res;
}

const OPS: ReduceOp[] = ['sum', 'mean', 'max', 'min', 'sumSquares', 'argmax'];
const tol = (op: ReduceOp, r: number) => ({ atol: 1e-5 * Math.sqrt(r + 1), rtol: op === 'sumSquares' ? 2e-5 : 1e-5 });

describe('reduce', () => {
  const cases: [number[], number | number[] | undefined][] = [
    [[7, 333], 1], // rows, scalar path, not a multiple of the workgroup
    [[5, 1000], -1], // vec4 path
    [[3, 9001], 1], // several chunks per row (second pass)
    [[37, 13, 5], 1], // strided (I > 1)
    [[2, 700, 3], 1], // strided with several passes
    [[4, 6, 5, 3], [1, 2]], // adjacent axis set
    [[4, 6, 5, 3], [0, 2]], // non-adjacent: group by group
    [[300, 3], 1], // many short rows per workgroup (one invocation each)
    [[130, 64], -1], // short vec4 rows, rows not a multiple of the rows per workgroup
    [[1237], undefined], // all elements
    [[6, 7, 8], undefined],
    [[1], 0],
  ];
  for (const [shape, axis] of cases) {
    for (const op of OPS) {
      if (op === 'argmax' && Array.isArray(axis) && axis[1]! - axis[0]! > 1) continue;
      it(`${op} over ${JSON.stringify(axis)} of [${shape.join(', ')}]`, async () => {
        const x = randn(size(shape), shape.length * 31 + size(shape), 2);
        const axes = axis === undefined ? shape.map((_, i) => i) : (Array.isArray(axis) ? axis : [axis]).map((a) => (a + shape.length) % shape.length);
        const got = await run(x, shape, op, axis);
        const rlen = size(axes.map((a) => shape[a]!));
        if (op === 'argmax') expect(Array.from(got)).toEqual(reduceRef(x, shape, op, axes));
        else expectAllClose(got, reduceRef(x, shape, op, axes), tol(op, rlen), op);
      });
    }
  }

  it('sums 3M elements over three passes accurately', async () => {
    const n = 3_000_001;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = ((i * 7919) % 1000) / 1000; // mean ≈ 0.4995
    const got = await run(x, [n], 'sum');
    let ref = 0;
    for (let i = 0; i < n; i++) ref += x[i]!;
    expect(Math.abs(got[0]! - ref) / ref).toBeLessThan(1e-6);
    x[2_999_999] = 5; // the unique maximum, in the last chunk
    expect(Array.from(await run(x, [n], 'argmax'))).toEqual([2_999_999]);
  });

  it('propagates NaN through sum, mean, max, min, sumSquares; argmax picks the first NaN', async () => {
    for (const len of [5, 400, 5000]) {
      const x = randn(2 * len, len);
      x[len - 2] = NaN; // row 0 only
      x[len + 1] = Infinity; // row 1: Inf
      for (const op of OPS) {
        const got = await run(x, [2, len], op, 1);
        const ref = reduceRef(x, [2, len], op, [1]);
        if (op === 'argmax') expect(Array.from(got), `argmax len ${len}`).toEqual(ref);
        else expectAllClose(got, ref, tol(op, len), `${op} len ${len}`);
        if (op !== 'argmax') expect(Number.isNaN(got[0]!)).toBe(true);
      }
    }
  });

  it('ties resolve to the lowest index, also across chunks', async () => {
    const len = 9000;
    const x = new Float32Array(len).fill(-Infinity);
    x[8000] = 3;
    x[4500] = 3;
    x[7000] = 3;
    expect(Array.from(await run(x, [len], 'argmax'))).toEqual([4500]);
    const all = new Float32Array(len).fill(-Infinity);
    expect(Array.from(await run(all, [len], 'argmax'))).toEqual([0]);
  });

  it('empty reduce axis: sum 0, mean NaN, max -Inf, min +Inf, argmax 0xFFFFFFFF', async () => {
    const x = new Float32Array(0);
    const exp: Record<ReduceOp, number> = { sum: 0, sumSquares: 0, mean: NaN, max: -Infinity, min: Infinity, argmax: 0xffffffff };
    for (const op of OPS) {
      const got = await run(x, [3, 0], op, 1);
      expect(Array.from(got), op).toEqual([exp[op], exp[op], exp[op]]);
      const got2 = await run(x, [2, 0, 2], op, 1);
      expect(Array.from(got2), `${op} strided`).toEqual(new Array(4).fill(exp[op]));
    }
    // empty output: zero-length result, no dispatch
    const bx = rt.upload(new Float32Array(1));
    const out = reduceSum(rt, bx, [0, 4], { axis: 1 });
    expect(out.size).toBe(0);
    rt.release(out);
    rt.release(bx);
  });

  it('a single element and a scalar', async () => {
    expect(Array.from(await run(Float32Array.of(-2.5), [1], 'sumSquares'))).toEqual([6.25]);
    expect(Array.from(await run(Float32Array.of(-2.5), [], 'mean'))).toEqual([-2.5]);
    expect(Array.from(await run(Float32Array.of(-2.5), [1], 'argmax'))).toEqual([0]);
  });

  it('keepDims only changes the reported shape', () => {
    expect(reduceOutputShape([2, 3, 4], { axis: [0, 2], keepDims: true })).toEqual([1, 3, 1]);
    expect(reduceOutputShape([2, 3, 4], { axis: -2 })).toEqual([2, 4]);
  });

  it('rejects bad axes and short buffers naming the op and the shape', () => {
    const bx = rt.upload(new Float32Array(6));
    expect(() => reduceSum(rt, bx, [2, 3], { axis: 2 })).toThrow(/reduce\(sum\): axis 2 out of range for shape \[2, 3\]/);
    expect(() => reduceSum(rt, bx, [2, 3], { axis: [1, -1] })).toThrow(/repeated.*\[2, 3\]/);
    expect(() => reduceSum(rt, bx, [2, 4])).toThrow(/reduce\(sum\).*\[2, 4\]/);
    expect(() => reduceArgmax(rt, bx, [1, 2, 3], { axis: [0, 2] })).toThrow(/reduce\(argmax\): non-adjacent/);
    const big = rt.limits.maxStorageBufferBindingSize / 4 + 4;
    expect(() => reduceSum(rt, bx, [big])).toThrow(LimitError);
    expect(() => reduceSum(rt, bx, [big])).toThrow(/maxStorageBufferBindingSize/);
    rt.release(bx);
  });
});
