import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensor } from '../creation.js';
import { gradcheck } from '../gradcheck.js';
import type { Tensor } from '../tensor.js';
import { concat, indexSelect, narrow, permute, slice, transpose, where } from './layout.js';
import { checkOp, randomF32 } from './test-helpers.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const f32 = (shape: number[], seed: number, scale = 1) => ({ data: randomF32(size(shape), seed, scale), shape });
const dispose = (ts: Tensor[]) => ts.forEach((t) => t.dispose());
const strides = (s: readonly number[]) => s.map((_, a) => size(s.slice(a + 1)));
const unravel = (e: number, s: readonly number[]) => s.map((_, a) => Math.floor(e / strides(s)[a]!) % s[a]!);
const at = (x: Float64Array, s: readonly number[], idx: readonly number[]) => x[idx.reduce((o, i, a) => o + i * strides(s)[a]!, 0)]!;
/** out[idx] = x[map(idx)], out of shape `outShape`: the reference of every pure layout op. */
const gather = (x: Float64Array, xs: readonly number[], outShape: readonly number[], map: (idx: number[]) => number[]) =>
  Float64Array.from({ length: size(outShape) }, (_, e) => at(x, xs, map(unravel(e, outShape))));

describe('permute / transpose', () => {
  it('permute (2,3,5) by [2,0,1] and transpose of axes 0,2; gradients are the inverse permutation', async () => {
    const s = [2, 3, 5];
    const ts = await checkOp(rt, { what: 'permute', inputs: [f32(s, 1)], op: (x) => permute(x!, [2, 0, -2]), ref: (x) => gather(x, s, [5, 2, 3], ([i, j, k]) => [j!, k!, i!]) });
    await gradcheck((x) => permute(x!, [2, 0, 1]), ts);
    dispose(ts);
    dispose(await checkOp(rt, { what: 'transpose', inputs: [f32(s, 2)], op: (x) => transpose(x!, 0, 2), ref: (x) => gather(x, s, [5, 3, 2], ([i, j, k]) => [k!, j!, i!]) }));
    dispose(await checkOp(rt, { what: 'transpose last', inputs: [f32([3, 7], 3)], op: (x) => transpose(x!), ref: (x) => gather(x, [3, 7], [7, 3], ([i, j]) => [j!, i!]) }));
  });

  it('rejects a bad permutation', () => {
    expect(() => permute(tensor(rt, new Float32Array(6), [2, 3]), [0, 0])).toThrow(/permute: \[0,0\] is not a permutation of the axes of shape \[2,3\]/);
    expect(() => transpose(tensor(rt, [1, 2], [2]))).toThrow(/transpose: needs rank ≥ 2/);
  });
});

describe('slice / narrow / concat', () => {
  it('slice with negative and omitted bounds; gradient zero outside the slice', async () => {
    const s = [3, 4, 5];
    const ts = await checkOp(rt, { what: 'slice', inputs: [f32(s, 4)], op: (x) => slice(x!, [1, 0, -4], [3, -1]), ref: (x) => gather(x, s, [2, 3, 4], ([i, j, k]) => [i! + 1, j!, k! + 1]) });
    await gradcheck((x) => slice(x!, [1, 0, 1], [3, 3, 5]), ts);
    dispose(ts);
    dispose(await checkOp(rt, { what: 'narrow', inputs: [f32([4, 6], 5)], op: (x) => narrow(x!, -1, 2, 3), ref: (x) => gather(x, [4, 6], [4, 3], ([i, j]) => [i!, j! + 2]) }));
  });

  it('concat of three tensors along axis 1 (and -1); each gets its slice of the gradient', async () => {
    const [a, b, c] = [[2, 3, 2], [2, 1, 2], [2, 4, 2]];
    const ref = (xa: Float64Array, xb: Float64Array, xc: Float64Array) =>
      Float64Array.from({ length: 2 * 8 * 2 }, (_, e) => {
        const [i, j, k] = unravel(e, [2, 8, 2]) as [number, number, number];
        return j < 3 ? at(xa, a, [i, j, k]) : j < 4 ? at(xb, b, [i, j - 3, k]) : at(xc, c, [i, j - 4, k]);
      });
    const ts = await checkOp(rt, { what: 'concat', inputs: [f32(a, 6), f32(b, 7), f32(c, 8)], op: (...xs) => concat(xs, 1), ref });
    await gradcheck((...xs) => concat(xs, -2), ts, { names: ['a', 'b', 'c'] });
    dispose(ts);
  });

  it('errors name the op and shapes', () => {
    const x = tensor(rt, new Float32Array(6), [2, 3]);
    expect(() => slice(x, [0, 2], [2, 1])).toThrow(/slice: axis 1 range \[2, 1\) is outside \[0, 3\] of shape \[2,3\]/);
    expect(() => concat([x, tensor(rt, new Float32Array(4), [2, 2])], 0)).toThrow(/concat: shapes \[2,3\], \[2,2\] differ outside axis 0/);
    expect(() => concat([x, tensor(rt, new Int32Array(6), [2, 3])], 0)).toThrow(/concat: dtypes differ/);
    expect(() => narrow(x, 2, 0, 1)).toThrow(/narrow: axis 2 out of range for shape \[2,3\]/);
  });
});

describe('indexSelect', () => {
  it('gathers along axis 1 with repeated indices; the gradient scatter-adds', async () => {
    const s = [2, 5, 3];
    const idx = [4, 0, 4, 2];
    const ts = await checkOp(rt, {
      what: 'indexSelect',
      inputs: [f32(s, 9), { data: idx, shape: [4], dtype: 'i32' }],
      op: (x, i) => indexSelect(x!, 1, i!),
      ref: (x) => gather(x, s, [2, 4, 3], ([i, j, k]) => [i!, idx[j!]!, k!]),
    });
    await gradcheck((x, i) => indexSelect(x!, -2, i!), ts);
    dispose(ts);
  });

  it('rejects f32 or 2-D indices', () => {
    const x = tensor(rt, new Float32Array(6), [2, 3]);
    expect(() => indexSelect(x, 0, tensor(rt, [0, 1], [2]))).toThrow(/indexSelect: indices must be i32, got f32 \(shapes x \[2,3\], indices \[2\]\)/);
    expect(() => indexSelect(x, 0, tensor(rt, new Int32Array(2), [1, 2]))).toThrow(/indexSelect: indices must be 1-D/);
  });
});

describe('where', () => {
  it('broadcasts cond (3,1), a (3,4), b (4,); b gets the summed gradient of the untaken entries', async () => {
    const cond = [1, 0, 1];
    const ref = (c: Float64Array, a: Float64Array, b: Float64Array) => Float64Array.from({ length: 12 }, (_, e) => (c[Math.floor(e / 4)] !== 0 ? a[e]! : b[e % 4]!));
    const inputs = [{ data: cond, shape: [3, 1], grad: false }, f32([3, 4], 10), f32([4], 11)];
    const ts = await checkOp(rt, { what: 'where', inputs, op: (c, a, b) => where(c!, a!, b!), ref });
    expect(ts[0]!.grad).toBeNull();
    await gradcheck((c, a, b) => where(c!, a!, b!), ts, { names: ['cond', 'a', 'b'] });
    dispose(ts);
  });

  it('rejects an i32 cond and unbroadcastable shapes', () => {
    const a = tensor(rt, new Float32Array(6), [2, 3]);
    expect(() => where(tensor(rt, new Int32Array(6), [2, 3]), a, a)).toThrow(/where: cond must be f32, got i32/);
    expect(() => where(tensor(rt, [1, 0], [2]), a, a)).toThrow(/where: cannot broadcast/);
  });
});
