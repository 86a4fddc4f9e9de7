import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn, rng } from '../testing/reference.js';
import { embeddingBackward, embeddingForward } from './embedding.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

/** float64 gather; NaN rows for ids outside [0, V). */
function forwardRef(table: ArrayLike<number>, ids: ArrayLike<number>, v: number, c: number): Float64Array {
  const out = new Float64Array(ids.length * c);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n]!;
    for (let j = 0; j < c; j++) out[n * c + j] = id >= 0 && id < v ? table[id * c + j]! : NaN;
  }
  return out;
}

function backwardRef(dy: ArrayLike<number>, ids: ArrayLike<number>, v: number, c: number): Float64Array {
  const d = new Float64Array(v * c);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n]!;
    if (id < 0 || id >= v) continue;
    for (let j = 0; j < c; j++) d[id * c + j] = d[id * c + j]! + dy[n * c + j]!;
  }
  return d;
}

function randomIds(n: number, v: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * v));
}

async function roundTrip(table: Float32Array, ids: Uint32Array | Int32Array, dy: Float32Array, v: number, c: number) {
  const bt = rt.upload(table);
  const bi = rt.upload(ids);
  const bdy = rt.upload(dy);
  const out = embeddingForward(rt, bt, bi, { shape: [v, c] });
  const dtable = embeddingBackward(rt, bdy, bi, { shape: [v, c] });
  const res = { out: await rt.readF32(out), dtable: await rt.readF32(dtable) };
  for (const b of [bt, bi, bdy, out, dtable]) rt.release(b);
  return res;
}

describe('embeddingForward / embeddingBackward', () => {
  const shapes: [number, number, number][] = [
    // [V, C, N]
    [1, 1, 1],
    [10, 37, 3],
    [50, 257, 129],
    [1000, 16, 1000],
    [7, 4, 600], // many repeats per row, N > one sort block
    [3000, 5, 2100], // several global bitonic passes
  ];
  for (const [v, c, n] of shapes) {
    it(`matches the float64 reference for V = ${v}, C = ${c}, N = ${n}`, async () => {
      const table = randn(v * c, v + c);
      const ids = randomIds(n, v, n);
      const dy = randn(n * c, n + 1);
      const { out, dtable } = await roundTrip(table, ids, dy, v, c);
      expectAllClose(out, forwardRef(table, ids, v, c), { atol: 0, rtol: 0 }, 'out');
      // f32 sums of up to N / V terms in index order
      expectAllClose(dtable, backwardRef(dy, ids, v, c), { atol: 1e-5 * Math.sqrt(n), rtol: 1e-5 }, 'dtable');
    });
  }

  it('sums repeated ids in index order (bit-exact against an f32 left-to-right sum)', async () => {
    const v = 5;
    const c = 3;
    const n = 700;
    const ids = randomIds(n, 2, 3); // only rows 0 and 1; rows 2..4 must be exactly zero
    const dy = randn(n * c, 4, 100);
    const { dtable } = await roundTrip(randn(v * c, 1), ids, dy, v, c);
    const want = new Float32Array(v * c);
    for (let k = 0; k < n; k++) for (let j = 0; j < c; j++) want[ids[k]! * c + j] = Math.fround(want[ids[k]! * c + j]! + dy[k * c + j]!);
    expect(Array.from(dtable)).toEqual(Array.from(want));
  });

  it('writes NaN rows for out-of-range and negative ids and ignores them in the backward', async () => {
    const v = 6;
    const c = 8;
    const ids = Int32Array.from([0, 6, -1, 5, 1000000, 2]);
    const table = randn(v * c, 8);
    const dy = randn(ids.length * c, 9);
    const { out, dtable } = await roundTrip(table, ids, dy, v, c);
    const ref = forwardRef(table, ids, v, c);
    expect(Number.isNaN(ref[c])).toBe(true);
    expectAllClose(out, ref, { atol: 0, rtol: 0 }, 'out');
    expectAllClose(dtable, backwardRef(dy, ids, v, c), { atol: 1e-6, rtol: 0 }, 'dtable');
  });

  it('reference gradient agrees with finite differences of the reference forward', () => {
    const v = 4;
    const c = 3;
    const ids = [2, 0, 2, 3, 2];
    const dy = randn(ids.length * c, 5);
    const table = Float64Array.from(randn(v * c, 6));
    const numeric = numericGrad((t) => dot(forwardRef(t, ids, v, c), dy), table);
    expectAllClose(backwardRef(dy, ids, v, c), numeric, { atol: 1e-7, rtol: 1e-6 }, 'dtable vs numeric');
  });

  it('is deterministic across runs', async () => {
    const v = 20;
    const c = 33;
    const n = 1500;
    const ids = randomIds(n, v, 12);
    const dy = randn(n * c, 13, 1000);
    const a = await roundTrip(randn(v * c, 1), ids, dy, v, c);
    const b = await roundTrip(randn(v * c, 1), ids, dy, v, c);
    expect(Array.from(a.dtable)).toEqual(Array.from(b.dtable));
  });

  it('handles N = 0 (empty output, zero gradient) and V = 0 (every id out of range)', async () => {
    const c = 4;
    const { out, dtable } = await roundTrip(randn(3 * c, 1), new Uint32Array(0), new Float32Array(0), 3, c);
    expect(out.length).toBe(0);
    expect(Array.from(dtable)).toEqual(new Array(3 * c).fill(0));
    const r = await roundTrip(new Float32Array(0), Uint32Array.from([0, 1]), randn(2 * c, 2), 0, c);
    expect(r.out.every(Number.isNaN)).toBe(true);
    expect(r.dtable.length).toBe(0);
  });

  it('rejects bad shapes, naming the op and the shapes', () => {
    const t = rt.createBuffer(4 * 12);
    const ids = rt.createBuffer(4 * 3);
    expect(() => embeddingForward(rt, t, ids, { shape: [5, 3] })).toThrow(/embeddingForward: .*\[5, 3\].*table \[12\]/);
    expect(() => embeddingBackward(rt, t, ids, { shape: [5, 5] })).toThrow(/embeddingBackward: .*\[5, 5\].*dy \[12\].*ids \[3\]/);
    expect(() => embeddingForward(rt, t, ids, { shape: [4, -3] as unknown as [number, number] })).toThrow(/embeddingForward: .*\[4, -3\]/);
    rt.release(t);
    rt.release(ids);
  });
});
