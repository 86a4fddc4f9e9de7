import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn, size } from '../testing/reference.js';
import {
  concat,
  concatBackward,
  contiguousStrides,
  fill,
  indexSelect,
  indexSelectBackward,
  inversePermutation,
  pad,
  padBackward,
  permute,
  slice,
  sliceBackward,
  transpose,
} from './layout.js';

// float64 references over flat row-major arrays
function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = i % shape[a]!;
    i = Math.floor(i / shape[a]!);
  }
  return idx;
}
const ravel = (idx: readonly number[], shape: readonly number[]) => idx.reduce((s, v, a) => s + v * contiguousStrides(shape)[a]!, 0);

function refPermute(x: ArrayLike<number>, shape: number[], perm: number[]): number[] {
  const out = perm.map((p) => shape[p]!);
  return Array.from({ length: size(shape) }, (_, o) => {
    const oi = unravel(o, out);
    const ii = new Array<number>(shape.length);
    perm.forEach((p, a) => (ii[p] = oi[a]!));
    return x[ravel(ii, shape)]!;
  });
}

function refSlice(x: ArrayLike<number>, shape: number[], starts: number[], ends: number[]): number[] {
  const box = shape.map((_, a) => ends[a]! - starts[a]!);
  return Array.from({ length: size(box) }, (_, o) => x[ravel(unravel(o, box).map((v, a) => v + starts[a]!), shape)]!);
}

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

describe('permute / transpose', () => {
  it.each([
    [[2, 3, 5], [2, 0, 1]],
    [[7, 1, 3, 4], [3, 1, 0, 2]],
    [[1], [0]],
    [[2, 3, 1, 2, 3, 2], [5, 4, 3, 2, 1, 0]],
  ])('permute %j by %j matches the reference', async (shape, perm) => {
    const x = randn(size(shape), 1);
    const bx = rt.upload(x);
    const out = permute(rt, bx, shape, perm);
    expectAllClose(await rt.readF32(out), refPermute(x, shape, perm), { atol: 0, rtol: 0 });
    // backward = permute by the inverse permutation
    const back = permute(rt, out, perm.map((p) => shape[p]!), inversePermutation(perm));
    expectAllClose(await rt.readF32(back), x, { atol: 0, rtol: 0 });
    [bx, out, back].forEach((b) => rt.release(b));
  });

  it('transposes the last two axes of a non-square batch', async () => {
    const shape = [3, 37, 130];
    const x = randn(size(shape), 2);
    const bx = rt.upload(x);
    const out = transpose(rt, bx, shape);
    expectAllClose(await rt.readF32(out), refPermute(x, shape, [0, 2, 1]), { atol: 0, rtol: 0 });
    rt.release(bx);
    rt.release(out);
  });

  it('moves ±Inf and NaN bit-exactly', async () => {
    const x = new Float32Array([NaN, Infinity, -Infinity, -0, 1e38, 1e-38]);
    const bx = rt.upload(x);
    const out = permute(rt, bx, [2, 3], [1, 0]);
    expectAllClose(await rt.readF32(out), refPermute(x, [2, 3], [1, 0]), { atol: 0, rtol: 0 });
    rt.release(bx);
    rt.release(out);
  });

  it('rejects a non-permutation, naming the op and shape', () => {
    const b = rt.createBuffer(24);
    expect(() => permute(rt, b, [2, 3], [0, 0])).toThrow(/permute: \[0,0\] is not a permutation of the axes of shape \[2,3\]/);
    expect(() => transpose(rt, b, [6])).toThrow(/transpose: needs rank ≥ 2/);
    rt.release(b);
  });
});

describe('slice / pad / concat', () => {
  it('slices an odd box and its backward scatters into zeros', async () => {
    const shape = [5, 9, 11];
    const starts = [1, 0, 3];
    const ends = [4, 9, 10];
    const x = randn(size(shape), 3);
    const bx = rt.upload(x);
    const out = slice(rt, bx, shape, { starts, ends });
    const ref = refSlice(x, shape, starts, ends);
    expectAllClose(await rt.readF32(out), ref, { atol: 0, rtol: 0 });
    // gradient of L = Σ w·slice(x): w scattered into zeros; check against finite differences
    const w = randn(ref.length, 4);
    const bw = rt.upload(w);
    const dx = sliceBackward(rt, bw, shape, { starts, ends });
    const num = numericGrad((xx) => dot(refSlice(xx, shape, starts, ends), w), x);
    expectAllClose(await rt.readF32(dx), num, { atol: 1e-5 });
    [bx, out, bw, dx].forEach((b) => rt.release(b));
  });

  it('pads with a constant and padBackward takes the interior', async () => {
    const shape = [3, 4];
    const pads = [[1, 2], [0, 3]] as const;
    const x = randn(12, 5);
    const bx = rt.upload(x);
    const { buffer, shape: outShape } = pad(rt, bx, shape, pads, -7);
    expect(outShape).toEqual([6, 7]);
    const got = await rt.readF32(buffer);
    for (let i = 0; i < 6; i++) {
      for (let j = 0; j < 7; j++) {
        const inside = i >= 1 && i < 4 && j < 4;
        expect(got[i * 7 + j]).toBe(inside ? x[(i - 1) * 4 + j] : -7);
      }
    }
    const back = padBackward(rt, buffer, shape, pads);
    expectAllClose(await rt.readF32(back), x, { atol: 0, rtol: 0 });
    [bx, buffer, back].forEach((b) => rt.release(b));
  });

  it('concatenates along a middle axis and splits back', async () => {
    const a = randn(2 * 3 * 4, 6);
    const b = randn(2 * 5 * 4, 7);
    const ba = rt.upload(a);
    const bb = rt.upload(b);
    const { buffer, shape } = concat(rt, [{ buffer: ba, shape: [2, 3, 4] }, { buffer: bb, shape: [2, 5, 4] }], 1);
    expect(shape).toEqual([2, 8, 4]);
    const got = await rt.readF32(buffer);
    for (let o = 0; o < 2; o++) {
      for (let r = 0; r < 8; r++) {
        for (let i = 0; i < 4; i++) {
          const want = r < 3 ? a[(o * 3 + r) * 4 + i] : b[(o * 5 + r - 3) * 4 + i];
          expect(got[(o * 8 + r) * 4 + i]).toBe(want);
        }
      }
    }
    const [ga, gb] = concatBackward(rt, buffer, shape, [3, 5], 1);
    expectAllClose(await rt.readF32(ga!), a, { atol: 0, rtol: 0 });
    expectAllClose(await rt.readF32(gb!), b, { atol: 0, rtol: 0 });
    [ba, bb, buffer, ga!, gb!].forEach((x) => rt.release(x));
  });

  it('rejects bad ranges and mismatched shapes with the op named', () => {
    const b = rt.createBuffer(48);
    expect(() => slice(rt, b, [3, 4], { starts: [0, 2], ends: [3, 5] })).toThrow(/slice: axis 1 range \[2, 5\) is outside \[0, 4\]/);
    expect(() => concat(rt, [{ buffer: b, shape: [3, 4] }, { buffer: b, shape: [2, 3] }], 0)).toThrow(/concat: shapes \[3,4\], \[2,3\] differ outside axis 0/);
    expect(() => pad(rt, b, [3, 4], [[1, 1]])).toThrow(/pad:/);
    rt.release(b);
  });

  it('handles empty and single-element tensors', async () => {
    const one = rt.upload(new Float32Array([42]));
    const s = slice(rt, one, [1], { starts: [0], ends: [1] });
    expect(Array.from(await rt.readF32(s, 0, 1))).toEqual([42]);
    const empty = slice(rt, one, [1], { starts: [1], ends: [1] });
    expect(empty.size).toBe(0);
    [one, s, empty].forEach((b) => rt.release(b));
  });
});

describe('fill and indexSelect', () => {
  it('fills exactly n elements', async () => {
    const b = rt.upload(new Float32Array(300).fill(1));
    fill(rt, b, -2.5, 257);
    const got = await rt.readF32(b);
    expect(got[256]).toBe(-2.5);
    expect(got[257]).toBe(1);
    rt.release(b);
  });

  it('gathers along an axis, NaN for out-of-range indices, and scatter-adds the gradient', async () => {
    const shape = [3, 6, 5];
    const x = randn(size(shape), 8);
    const idx = [4, 0, 4, 5, 1, 4, 2];
    const bx = rt.upload(x);
    const bi = rt.upload(Int32Array.from(idx));
    const { buffer, shape: outShape } = indexSelect(rt, bx, shape, 1, bi, idx.length);
    expect(outShape).toEqual([3, 7, 5]);
    const ref = (xx: ArrayLike<number>) =>
      Array.from({ length: 3 * 7 * 5 }, (_, e) => {
        const i = e % 5;
        const j = Math.floor(e / 5) % 7;
        const o = Math.floor(e / 35);
        return xx[(o * 6 + idx[j]!) * 5 + i]!;
      });
    expectAllClose(await rt.readF32(buffer), ref(x), { atol: 0, rtol: 0 });
    const w = randn(3 * 7 * 5, 9);
    const bw = rt.upload(w);
    const dx = indexSelectBackward(rt, bw, shape, 1, bi, idx.length);
    expectAllClose(await rt.readF32(dx), numericGrad((xx) => dot(ref(xx), w), x), { atol: 1e-5 });

    const bad = rt.upload(Int32Array.from([1, -1, 6]));
    const g2 = indexSelect(rt, bx, shape, 1, bad, 3);
    const got = await rt.readF32(g2.buffer);
    expect(got[0]).toBe(x[5]);
    expect(Number.isNaN(got[5]!)).toBe(true);
    expect(Number.isNaN(got[10]!)).toBe(true);
    [bx, bi, buffer, bw, dx, bad, g2.buffer].forEach((b) => rt.release(b));
  });

  it('scatter-adds long first-axis index lists (the sorted path) exactly like the scan', async () => {
    const A = 90;
    const C = 12;
    const J = 300; // ≥ 64 on axis 0: the sort-based backward; repeats and out-of-range entries included
    const idx = Int32Array.from({ length: J }, (_, j) => (j % 37 === 5 ? -3 : j % 41 === 7 ? A + 2 : (j * 7919) % A));
    const w = randn(J * C, 10);
    const want = new Float64Array(A * C);
    for (let j = 0; j < J; j++) {
      if (idx[j]! < 0 || idx[j]! >= A) continue;
      for (let c = 0; c < C; c++) want[idx[j]! * C + c]! += w[j * C + c]!;
    }
    const bi = rt.upload(idx);
    const bw = rt.upload(w);
    const dx = indexSelectBackward(rt, bw, [A, C], 0, bi, J);
    expectAllClose(await rt.readF32(dx), want, { atol: 1e-5 });
    [bi, bw, dx].forEach((b) => rt.release(b));
  });
});
