import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitError } from '../runtime/errors.js';
import { Runtime } from '../runtime/runtime.js';
import { expectAllClose, numericGrad, randn, rng } from '../testing/reference.js';
import { crossEntropyBackward, crossEntropyForward } from './cross-entropy.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

interface Ref {
  loss: number;
  rowLoss: Float64Array;
  lse: Float64Array;
  count: number;
  grad: Float64Array; // d loss / d logits, times dloss
}

/** float64 mean cross-entropy and its gradient. */
function ceRef(logits: ArrayLike<number>, targets: ArrayLike<number>, N: number, V: number, ignore: number, dloss = 1): Ref {
  const rowLoss = new Float64Array(N);
  const lse = new Float64Array(N);
  const grad = new Float64Array(N * V);
  let count = 0;
  for (let r = 0; r < N; r++) if (targets[r] !== ignore) count++;
  let total = 0;
  for (let r = 0; r < N; r++) {
    let m = -Infinity;
    for (let c = 0; c < V; c++) m = Math.max(m, logits[r * V + c]!);
    if (Array.from({ length: V }, (_, c) => logits[r * V + c]!).some(Number.isNaN)) m = NaN;
    let s = 0;
    for (let c = 0; c < V; c++) s += Math.exp(logits[r * V + c]! - m);
    lse[r] = m + Math.log(s);
    const t = targets[r]!;
    if (t === ignore) continue;
    const inRange = t >= 0 && t < V;
    rowLoss[r] = inRange ? m - logits[r * V + t]! + Math.log(s) : NaN;
    total += rowLoss[r]!;
    for (let c = 0; c < V; c++) {
      grad[r * V + c] = inRange ? ((Math.exp(logits[r * V + c]! - lse[r]!) - (c === t ? 1 : 0)) * dloss) / count : NaN;
    }
  }
  return { loss: total / count, rowLoss, lse, count, grad };
}

async function run(logits: Float32Array, targets: Int32Array, N: number, V: number, opts: { ignoreIndex?: number; dloss?: number } = {}) {
  const bl = rt.upload(logits.length ? logits : new Float32Array(1));
  const bt = rt.upload(targets.length ? targets : new Int32Array(1));
  const bd = rt.upload(Float32Array.of(opts.dloss ?? 1));
  const options = opts.ignoreIndex === undefined ? {} : { ignoreIndex: opts.ignoreIndex };
  const saved = crossEntropyForward(rt, bl, bt, [N, V], options);
  const dl = crossEntropyBackward(rt, bl, bt, saved, bd, [N, V], options);
  const res = {
    loss: (await rt.readF32(saved.loss))[0]!,
    count: (await rt.readF32(saved.count))[0]!,
    rowLoss: await rt.readF32(saved.rowLoss, 0, N),
    lse: await rt.readF32(saved.lse, 0, N),
    grad: await rt.readF32(dl, 0, N * V),
  };
  [bl, bt, bd, saved.loss, saved.count, saved.rowLoss, saved.lse, dl].forEach((b) => rt.release(b));
  return res;
}

function targetsFor(N: number, V: number, seed: number, ignore = -100): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: N }, () => (r() < 0.2 ? ignore : Math.floor(r() * V)));
}

function expectMatches(got: Awaited<ReturnType<typeof run>>, ref: Ref, what: string): void {
  expectAllClose([got.loss], [ref.loss], { atol: 1e-6, rtol: 1e-5 }, `${what} loss`);
  expect(got.count, `${what} count`).toBe(ref.count);
  expectAllClose(got.rowLoss, ref.rowLoss, { atol: 1e-5, rtol: 1e-5 }, `${what} rowLoss`);
  expectAllClose(got.grad, ref.grad, { atol: 1e-7, rtol: 1e-4 }, `${what} dlogits`);
}

describe('crossEntropy', () => {
  const shapes: [number, number][] = [
    [7, 13],
    [5, 1000],
    [3, 5001],
    [40, 9],
    [1, 1],
  ];
  for (const [N, V] of shapes) {
    it(`forward and backward match float64, (${N}, ${V})`, async () => {
      const logits = randn(N * V, N * V, 3);
      const targets = targetsFor(N, V, N + V);
      if (N > 1) targets[0] = -100; // at least one ignored row
      const got = await run(logits, targets, N, V, { dloss: 0.75 });
      const ref = ceRef(logits, targets, N, V, -100, 0.75);
      expectMatches(got, ref, `(${N}, ${V})`);
      expectAllClose(got.lse, ref.lse, { atol: 1e-5, rtol: 1e-6 }, 'lse');
      for (let r = 0; r < N; r++) {
        if (targets[r] === -100) expect(Array.from(got.grad.subarray(r * V, (r + 1) * V)).every((v) => v === 0)).toBe(true);
      }
    });
  }

  it('reference gradient matches numeric gradients of the reference loss', () => {
    const N = 4;
    const V = 6;
    const logits = randn(N * V, 5, 2);
    const targets = Int32Array.of(2, -100, 5, 0);
    const ref = ceRef(logits, targets, N, V, -100);
    const num = numericGrad((x) => ceRef(x, targets, N, V, -100).loss, logits);
    expectAllClose(ref.grad, num, { atol: 1e-7, rtol: 1e-5 }, 'numeric grad');
  });

  it('custom ignoreIndex; all rows ignored gives NaN loss, count 0 and zero gradients', async () => {
    const N = 6;
    const V = 10;
    const logits = randn(N * V, 3);
    const targets = Int32Array.of(3, 1, 3, 9, 0, 3);
    const got = await run(logits, targets, N, V, { ignoreIndex: 3 });
    expectMatches(got, ceRef(logits, targets, N, V, 3), 'ignore 3');
    const all = await run(logits, new Int32Array(N).fill(-100), N, V);
    expect(all.loss).toBeNaN();
    expect(all.count).toBe(0);
    expect(all.grad.every((v) => v === 0)).toBe(true);
  });

  it('out-of-range targets give a NaN row loss, NaN mean loss and a NaN gradient row', async () => {
    const N = 4;
    const V = 8;
    const logits = randn(N * V, 9);
    const targets = Int32Array.of(1, V, 2, -1);
    const got = await run(logits, targets, N, V);
    expect(got.loss).toBeNaN();
    expect([0, 1, 2, 3].map((r) => Number.isNaN(got.rowLoss[r]!))).toEqual([false, true, false, true]);
    expect(got.grad.subarray(V, 2 * V).every(Number.isNaN)).toBe(true);
    expect(got.grad.subarray(0, V).some(Number.isNaN)).toBe(false);
  });

  it('edge logits: -Inf off target, -Inf at target, +Inf, NaN in an ignored row, huge values', async () => {
    for (const V of [9, 3000]) {
      const N = 5;
      const logits = randn(N * V, V, 2);
      const targets = Int32Array.of(0, 1, 2, -100, 4);
      logits.fill(-Infinity, 1, V); // row 0: only the target is finite → loss 0
      logits[V + 1] = -Infinity; // row 1: -Inf at the target → +Inf loss
      logits[2 * V + 5] = Infinity; // row 2: +Inf → NaN
      logits[3 * V + 2] = NaN; // row 3: ignored, no effect on the mean
      for (let c = 0; c < V; c++) logits[4 * V + c] = c === 4 ? 3e38 : -3e38; // row 4: loss 0
      const got = await run(logits, targets, N, V);
      expect(Array.from(got.rowLoss)).toEqual([0, Infinity, NaN, 0, 0]);
      const ok = await run(logits.subarray(3 * V), Int32Array.of(-100, 4), 2, V);
      expect(ok.loss).toBe(0);
      expect(ok.count).toBe(1);
      expect(ok.grad.every((v) => v === 0)).toBe(true);
    }
  });

  it('N = 0: loss NaN, count 0, empty gradient', async () => {
    const got = await run(new Float32Array(0), new Int32Array(0), 0, 5);
    expect(got.loss).toBeNaN();
    expect(got.count).toBe(0);
    expect(got.grad.length).toBe(0);
  });

  it('rejects bad shapes and buffers naming the op and the shape', () => {
    const bl = rt.upload(new Float32Array(12));
    const bt = rt.upload(new Int32Array(3));
    expect(() => crossEntropyForward(rt, bl, bt, [12])).toThrow(/crossEntropyForward: logits must be \(N, V\), got shape \[12\]/);
    expect(() => crossEntropyForward(rt, bl, bt, [4, 3])).toThrow(/crossEntropyForward: targets .*\[4, 3\]/);
    expect(() => crossEntropyForward(rt, bl, bt, [3, 5])).toThrow(/crossEntropyForward: logits buffer .*\[3, 5\]/);
    expect(() => crossEntropyForward(rt, bl, bt, [3, 0])).toThrow(/crossEntropyForward: V must be .*\[3, 0\]/);
    expect(() => crossEntropyForward(rt, bl, bt, [3, 4], { ignoreIndex: 0.5 })).toThrow(/ignoreIndex/);
    const big = rt.limits.maxStorageBufferBindingSize / 4 / 1024 + 1;
    expect(() => crossEntropyForward(rt, bl, bt, [big, 1024])).toThrow(LimitError);
    const saved = { lse: rt.createBuffer(4), count: rt.createBuffer(4) };
    expect(() => crossEntropyBackward(rt, bl, bt, saved, saved.count, [3, 4])).toThrow(/crossEntropyBackward: lse .*\[3, 4\]/);
    [bl, bt, saved.lse, saved.count].forEach((b) => rt.release(b));
  });
});
