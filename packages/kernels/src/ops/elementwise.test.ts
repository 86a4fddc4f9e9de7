import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { Runtime } from '../runtime/runtime.js';
import { expectAllClose, randn, randu, size, type Tolerance } from '../testing/reference.js';
import {
  UNARY_OPS,
  broadcastShapes,
  castF16ToF32,
  castF32ToF16,
  elementwiseCopy,
  unaryForward,
  type UnaryOp,
} from './elementwise.js';
import { BINARY_OPS, binaryForward, biasGeluForward, whereForward, type BinaryOp } from './elementwise-binary.js';
import {
  forEachBroadcast,
  refBinary,
  refF16FromBits,
  refF16Round,
  refGeluErf,
  refGeluTanh,
  refUnary,
} from './elementwise.reference.js';

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

async function gpuUnary(op: UnaryOp, xs: Float32Array, scalar?: number): Promise<Float32Array> {
  const x = rt.upload(xs);
  const out = await readAndRelease(unaryForward(rt, op, x, { scalar }), xs.length);
  rt.release(x);
  return out;
}

/** Inputs inside each op's domain (n = 1003: not a multiple of 4 or of the workgroup). */
function unaryInputs(op: UnaryOp, n: number, seed: number): Float32Array {
  if (op === 'log' || op === 'sqrt' || op === 'rsqrt') return randu(n, seed, 0.01, 20);
  if (op === 'exp') return randu(n, seed, -20, 20);
  return randn(n, seed, 3);
}

const SCALARS: Partial<Record<UnaryOp, number>> = {
  add_scalar: 1.75, sub_scalar: -0.5, rsub_scalar: 2.25, mul_scalar: -3, div_scalar: 0.3, rdiv_scalar: 2, pow_scalar: 3,
};

const TOL: Partial<Record<UnaryOp, Tolerance>> = {
  exp: { atol: 0, rtol: 1e-5 },
  gelu_erf: { atol: 1e-6, rtol: 1e-6 },
  pow_scalar: { atol: 1e-5, rtol: 1e-5 },
  rdiv_scalar: { atol: 1e-5, rtol: 1e-5 },
};

describe('unaryForward', () => {
  it.each(UNARY_OPS)('%s matches float64 on 1003 elements', async (op) => {
    const xs = unaryInputs(op, 1003, 11);
    const s = SCALARS[op];
    const expected = Array.from(xs, (x) => refUnary(op, x, s));
    expectAllClose(await gpuUnary(op, xs, s), expected, TOL[op] ?? { atol: 2e-6, rtol: 2e-6 }, op);
  });

  // Edge values: NaN propagates, ±Inf and huge magnitudes do not overflow into NaN.
  const EDGE = [0, 1, -1, NaN, Infinity, -Infinity, 1e30, -1e30, 3e38, -3e38, 100, -100, 50, -50, 20, -20, 88, 89, -88, -104, 1e-30, -1e-30, 0.3999, 0.4001];
  it.each(UNARY_OPS)('%s handles edge values', async (op) => {
    const xs = Float32Array.from(EDGE);
    const s = SCALARS[op];
    const expected = Float32Array.from(xs, (x) => refUnary(op, x, s)); // rounded to f32: 89 → Inf
    expectAllClose(await gpuUnary(op, xs, s), expected, { atol: 1e-6, rtol: 1e-5 }, `${op} edges`);
  });

  it('gelu_erf is within 1e-6 absolute of float64 on a dense grid', async () => {
    const xs = Float32Array.from({ length: 4001 }, (_, i) => -10 + i * 0.005);
    expectAllClose(await gpuUnary('gelu_erf', xs), Array.from(xs, refGeluErf), { atol: 1e-6, rtol: 0 }, 'gelu_erf grid');
  });

  it('tanh is relatively accurate near 0 and exactly ±1 far out', async () => {
    const xs = Float32Array.from([1e-6, -3e-4, 0.01, 0.39, 0.41, 9, 10, 40, -40, 1e4]);
    expectAllClose(await gpuUnary('tanh', xs), Array.from(xs, Math.tanh), { atol: 0, rtol: 1e-6 }, 'tanh');
  });

  it('pow_scalar follows NumPy for negative bases and special exponents', async () => {
    const xs = Float32Array.from([-2, -0.5, 0, -0, 2, NaN, 1, Infinity, -Infinity]);
    for (const s of [3, 2, 0.5, -1, 0]) {
      const expected = Float32Array.from(xs, (x) => refUnary('pow_scalar', x, s));
      expectAllClose(await gpuUnary('pow_scalar', xs, s), expected, { atol: 1e-6, rtol: 1e-6 }, `pow ${s}`);
    }
  });

  it('handles n = 0 and n = 1', async () => {
    const x = rt.upload(new Float32Array([2]));
    const empty = unaryForward(rt, 'exp', x, { n: 0 });
    expect(empty.size).toBe(0);
    rt.release(empty);
    expectAllClose(await readAndRelease(unaryForward(rt, 'exp', x), 1), [Math.exp(2)], { rtol: 1e-6 });
    rt.release(x);
  });

  it('rejects a missing scalar and an n beyond the buffer', () => {
    const x = rt.upload(new Float32Array(8));
    expect(() => unaryForward(rt, 'mul_scalar', x)).toThrow(/unary mul_scalar: op 'mul_scalar' needs options.scalar/);
    expect(() => unaryForward(rt, 'exp', x, { n: 9 })).toThrow(/unary exp: 9 elements exceed/);
    rt.release(x);
  });
});

// ------------------------------------------------------------------ binary / where

function binaryInputs(op: BinaryOp, aShape: number[], bShape: number[]): [Float32Array, Float32Array] {
  if (op === 'pow') return [randu(size(aShape), 1, 0.1, 3), randn(size(bShape), 2, 1.5)];
  // Halves make ties frequent, so eq/le/ge and maximum/minimum see a == b.
  const q = (v: Float32Array) => v.map((x) => Math.round(x * 2) / 2);
  return [q(randn(size(aShape), 3, 1.5)), q(randn(size(bShape), 4, 1.5))];
}

function refBroadcast(op: BinaryOp, a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[]): Float64Array {
  const outShape = broadcastShapes('ref', aShape, bShape);
  const out = new Float64Array(size(outShape));
  forEachBroadcast(outShape, [aShape, bShape], (i, [ia, ib]) => (out[i] = refBinary(op, a[ia!]!, b[ib!]!)));
  return out;
}

async function gpuBinary(op: BinaryOp, a: Float32Array, aShape: number[], b: Float32Array, bShape: number[]): Promise<Float32Array> {
  const ba = rt.upload(a);
  const bb = rt.upload(b);
  const n = size(broadcastShapes('test', aShape, bShape));
  const out = await readAndRelease(binaryForward(rt, op, ba, bb, { aShape, bShape }), n);
  rt.release(ba);
  rt.release(bb);
  return out;
}

// Every op on the first two cases; a sample of ops on the rest (each op × rank is its own pipeline).
const SOME_OPS: BinaryOp[] = ['sub', 'div', 'maximum', 'ge'];
const SHAPE_CASES: [number[], number[], readonly BinaryOp[]][] = [
  [[1003], [1003], BINARY_OPS], // equal: vec4 path with a partial last vec4
  [[3, 1, 5], [4, 1], BINARY_OPS], // → [3,4,5]
  [[1], [7, 9], SOME_OPS], // scalar-shaped
  [[6, 32], [32], BINARY_OPS], // bias-like, innermost run % 4 == 0: four elements per invocation
  [[6, 33], [33], SOME_OPS], // bias-like, one element per invocation
  [[2, 4], [3, 1, 1], SOME_OPS], // collapses to [3, 8]
  [[2, 3, 1, 5, 1, 7], [3, 4, 1, 6, 7], SOME_OPS], // rank 6, still rank 5 after collapsing
  [[], [5], SOME_OPS], // rank 0
];

describe('binaryForward', () => {
  for (const [aShape, bShape, ops] of SHAPE_CASES) {
    it.each(ops)(`%s on ${JSON.stringify(aShape)} and ${JSON.stringify(bShape)}`, async (op) => {
      const [a, b] = binaryInputs(op, aShape, bShape);
      const tol = op === 'pow' ? { atol: 1e-5, rtol: 1e-5 } : { atol: 1e-6, rtol: 1e-6 };
      expectAllClose(await gpuBinary(op, a, aShape, b, bShape), refBroadcast(op, a, aShape, b, bShape), tol, op);
    });
  }

  it('propagates NaN and ±Inf like NumPy', async () => {
    const a = Float32Array.from([NaN, 1, NaN, Infinity, -Infinity, 0, 1, -8, -2, 0, NaN, 2]);
    const b = Float32Array.from([1, NaN, NaN, 1, Infinity, 0, 0, 1 / 3, 3, -1, 0, Infinity]);
    for (const op of BINARY_OPS) {
      const expected = Float32Array.from(a, (x, i) => refBinary(op, x, b[i]!));
      expectAllClose(await gpuBinary(op, a, [12], b, [12]), expected, { atol: 1e-6, rtol: 1e-6 }, `${op} edges`);
    }
  });

  it('handles empty and single-element outputs', async () => {
    const a = rt.upload(new Float32Array([1, 2, 3]));
    const e = binaryForward(rt, 'add', a, a, { aShape: [0, 3], bShape: [3] });
    expect(e.size).toBe(0);
    rt.release(e);
    expectAllClose(await gpuBinary('mul', Float32Array.of(3), [1], Float32Array.of(-2), [1, 1]), [-6], {}, 'n = 1');
    rt.release(a);
  });

  it('names the op and the shapes when shapes do not broadcast', () => {
    const a = rt.upload(new Float32Array(6));
    expect(() => binaryForward(rt, 'add', a, a, { aShape: [2, 3], bShape: [4] })).toThrow(
      'binary add: cannot broadcast shapes [2,3] and [4]',
    );
    expect(() => binaryForward(rt, 'lt', a, a, { aShape: [2, 3], bShape: [3, 3] })).toThrow(/binary lt: .*\[2,3\] and \[3,3\]/);
    expect(() => binaryForward(rt, 'mul', a, a, { aShape: [7], bShape: [7] })).toThrow(/binary mul: a of shape \[7\] needs 28 bytes/);
    rt.release(a);
  });
});

describe('whereForward', () => {
  const cases: [number[], number[], number[]][] = [
    [[501], [501], [501]],
    [[3, 1], [1, 4], [2, 1, 1]],
    [[1], [5, 2], [2]],
    [[2, 1], [1, 8], [8]], // four elements per invocation
  ];
  it.each(cases)('cond %j, a %j, b %j', async (cShape, aShape, bShape) => {
    const c = randn(size(cShape), 5).map((v) => (v > 0 ? 1 : 0));
    if (c.length > 2) c[1] = NaN; // NaN counts as true
    const a = randn(size(aShape), 6);
    const b = randn(size(bShape), 7);
    const outShape = broadcastShapes('ref', cShape, aShape, bShape);
    const expected = new Float64Array(size(outShape));
    forEachBroadcast(outShape, [cShape, aShape, bShape], (i, [ic, ia, ib]) => (expected[i] = c[ic!] !== 0 ? a[ia!]! : b[ib!]!));
    const [bc, ba, bb] = [rt.upload(c), rt.upload(a), rt.upload(b)];
    const out = await readAndRelease(whereForward(rt, bc, ba, bb, { condShape: cShape, aShape, bShape }), expected.length);
    expectAllClose(out, expected, { atol: 0, rtol: 0 }, 'where');
    [bc, ba, bb].forEach((x) => rt.release(x));
  });

  it('names the shapes of all three inputs on a mismatch', () => {
    const x = rt.upload(new Float32Array(12));
    expect(() => whereForward(rt, x, x, x, { condShape: [2], aShape: [3], bShape: [1] })).toThrow(
      'where: cannot broadcast shapes [2], [3] and [1]',
    );
    rt.release(x);
  });
});

describe('biasGeluForward', () => {
  it.each([
    [[5, 12], 'tanh'],
    [[7, 9], 'tanh'],
    [[3, 2, 8], 'erf'],
    [[1, 3], 'erf'],
  ] as const)('shape %j (%s) matches gelu(x + bias)', async (shape, approximate) => {
    const C = shape.at(-1)!;
    const xs = randn(size(shape as unknown as number[]), 8, 3);
    const bs = randn(C, 9);
    const g = approximate === 'tanh' ? refGeluTanh : refGeluErf;
    const expected = Array.from(xs, (x, i) => g(x + bs[i % C]!));
    const [x, bias] = [rt.upload(xs), rt.upload(bs)];
    const out = await readAndRelease(biasGeluForward(rt, x, bias, { shape, approximate }), xs.length);
    expectAllClose(out, expected, { atol: 2e-6, rtol: 2e-6 }, 'bias_gelu');
    rt.release(x);
    rt.release(bias);
  });

  it('rejects a bias shorter than the last axis', () => {
    const x = rt.upload(new Float32Array(12));
    const bias = rt.upload(new Float32Array(3));
    expect(() => biasGeluForward(rt, x, bias, { shape: [3, 4] })).toThrow(/bias_gelu: bias of shape \[4\]/);
    rt.release(x);
    rt.release(bias);
  });
});

describe('copy and casts', () => {
  it('copies the first n elements', async () => {
    const xs = randn(37, 10);
    const x = rt.upload(xs);
    expect(Array.from(await readAndRelease(elementwiseCopy(rt, x, { n: 33 }), 33))).toEqual(Array.from(xs.subarray(0, 33)));
    rt.release(x);
  });

  it('casts f32 → f16 → f32 with round-to-nearest-even (odd n)', async () => {
    if (!rt.has('shader-f16')) return;
    const xs = Float32Array.from([...randn(301, 12, 10), 65504, 65519, 65520, -1e6, 1e-7, 6e-8, 2.98e-8, 0, NaN, Infinity, 1 + 2 ** -11]);
    const x = rt.upload(xs);
    const h = castF32ToF16(rt, x);
    expect(h.size).toBe(Math.ceil(xs.length / 2) * 4);
    const back = await readAndRelease(castF16ToF32(rt, h, { n: xs.length }), xs.length);
    expectAllClose(back, Array.from(xs, refF16Round), { atol: 0, rtol: 0 }, 'f16 round trip');
    rt.release(h);
    rt.release(x);
  });

  it('decodes f16 bit patterns', async () => {
    if (!rt.has('shader-f16')) return;
    const bits = Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000, 0x3555]);
    const h = rt.upload(bits);
    const out = await readAndRelease(castF16ToF32(rt, h), bits.length);
    expectAllClose(out, Array.from(bits, refF16FromBits), { atol: 0, rtol: 0 }, 'f16 bits');
    rt.release(h);
  });

  it('throws a clear error without shader-f16', () => {
    const noF16 = Object.create(rt, { has: { value: () => false } }) as Runtime;
    const x = rt.upload(new Float32Array(4));
    expect(() => castF32ToF16(noF16, x)).toThrow(/lacks the 'shader-f16' feature/);
    rt.release(x);
  });
});
