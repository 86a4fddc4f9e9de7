import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitError } from '../runtime/errors.js';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn, size } from '../testing/reference.js';
import { logSoftmaxBackward, logSoftmaxForward, softmaxBackward, softmaxForward } from './softmax.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

type Kind = 'softmax' | 'logSoftmax';

/** Unmasked columns of row r. */
const lim = (r: number, C: number, causal: boolean) => (causal ? Math.min(C, (r % C) + 1) : C);

/** float64 (log-)softmax over rows of C. */
function forwardRef(x: ArrayLike<number>, C: number, kind: Kind, causal: boolean): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    const L = lim(r, C, causal);
    let m = -Infinity;
    let nan = false;
    for (let c = 0; c < L; c++) {
      const v = x[r * C + c]!;
      if (Number.isNaN(v)) nan = true;
      m = Math.max(m, v);
    }
    if (nan) m = NaN;
    let s = 0;
    for (let c = 0; c < L; c++) s += Math.exp(x[r * C + c]! - m);
    for (let c = 0; c < C; c++) {
      const v = x[r * C + c]!;
      if (kind === 'softmax') out[r * C + c] = c < L ? Math.exp(v - m) / s : 0;
      else out[r * C + c] = c < L ? v - m - Math.log(s) : -Infinity;
    }
  }
  return out;
}

/** float64 backward from the forward output y. */
function backwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, C: number, kind: Kind, causal: boolean): Float64Array {
  const dx = new Float64Array(y.length);
  for (let r = 0; r < y.length / C; r++) {
    const L = lim(r, C, causal);
    let s = 0;
    for (let c = 0; c < L; c++) s += kind === 'softmax' ? dy[r * C + c]! * y[r * C + c]! : dy[r * C + c]!;
    for (let c = 0; c < L; c++) {
      const i = r * C + c;
      dx[i] = kind === 'softmax' ? y[i]! * (dy[i]! - s) : dy[i]! - Math.exp(y[i]!) * s;
    }
  }
  return dx;
}

const fwd = { softmax: softmaxForward, logSoftmax: logSoftmaxForward };
const bwd = { softmax: softmaxBackward, logSoftmax: logSoftmaxBackward };

async function gpuForward(x: Float32Array, shape: number[], kind: Kind, causal = false): Promise<Float32Array> {
  const bx = rt.upload(x.length ? x : new Float32Array(1));
  const y = fwd[kind](rt, bx, shape, { causal });
  const out = await rt.readF32(y, 0, size(shape));
  rt.release(bx);
  rt.release(y);
  return out;
}

const shapes: [number[], boolean][] = [
  [[3, 7], false], // scalar path, short rows sharing a workgroup
  [[5, 1000], false], // vec4 path
  [[2, 4099], false], // scalar, 256 invocations per row
  [[37, 64], false], // rows not a multiple of the rows per workgroup
  [[2, 3, 13, 13], true], // causal, scalar
  [[2, 18, 18], true], // causal, vec4 with the mask inside a vec4
  [[1, 1], false],
  [[1, 1], true],
];

describe('softmax / logSoftmax', () => {
  for (const kind of ['softmax', 'logSoftmax'] as const) {
    for (const [shape, causal] of shapes) {
      it(`${kind} forward and backward, [${shape.join(', ')}]${causal ? ' causal' : ''}`, async () => {
        const n = size(shape);
        const C = shape[shape.length - 1]!;
        const x = randn(n, n + C, 3);
        const y = await gpuForward(x, shape, kind, causal);
        const yRef = forwardRef(x, C, kind, causal);
        expectAllClose(y, yRef, { atol: 1e-6, rtol: 1e-5 }, `${kind} forward`);

        const dy = randn(n, n + 7);
        const by = rt.upload(y);
        const bdy = rt.upload(dy);
        const dx = bwd[kind](rt, by, bdy, shape, { causal });
        const got = await rt.readF32(dx, 0, n);
        expectAllClose(got, backwardRef(y, dy, C, kind, causal), { atol: 1e-5, rtol: 1e-4 }, `${kind} backward`);
        [by, bdy, dx].forEach((b) => rt.release(b));
      });
    }

    it(`${kind}: reference backward matches numeric gradients (plain and causal)`, () => {
      for (const causal of [false, true]) {
        const C = 5;
        const x = randn(3 * C, 11, 2);
        const w = randn(3 * C, 12);
        const y = forwardRef(x, C, kind, causal);
        const ref = backwardRef(y, w, C, kind, causal);
        // masked log-softmax outputs are -Inf: weight them by 0 in the loss
        const loss = (xs: Float64Array) => dot(w, forwardRef(xs, C, kind, causal).map((v) => (Number.isFinite(v) ? v : 0)));
        expectAllClose(ref, numericGrad(loss, x), { atol: 1e-6, rtol: 1e-5 }, `${kind} grad causal=${causal}`);
      }
    });
  }

  it('edge values: NaN row, +Inf row, all -Inf row, sparse -Inf row, huge magnitudes', async () => {
    for (const C of [7, 1000]) {
      const x = randn(5 * C, C, 2);
      x[2] = NaN; // row 0: NaN everywhere
      x[C + 3] = Infinity; // row 1: NaN everywhere (Inf − Inf)
      x.fill(-Infinity, 2 * C, 3 * C); // row 2: all -Inf → NaN
      x.fill(-Infinity, 3 * C, 4 * C); // row 3: one finite entry → one-hot
      x[3 * C + C - 2] = 1.5;
      for (let c = 0; c < C; c++) x[4 * C + c] = c % 2 ? 3e38 : -3e38; // row 4: huge values
      for (const kind of ['softmax', 'logSoftmax'] as const) {
        const y = await gpuForward(x, [5, C], kind);
        const ref = Float32Array.from(forwardRef(x, C, kind, false)); // f32 range: -6e38 is -Inf
        expectAllClose(y, ref, { atol: 1e-6, rtol: 1e-5 }, `${kind} edges C=${C}`);
        expect(Number.isNaN(y[2 * C]!)).toBe(true);
        expect(y[3 * C + C - 2]).toBe(kind === 'softmax' ? 1 : 0);
      }
    }
  });

  it('empty inputs give empty outputs without a dispatch', async () => {
    const bx = rt.upload(new Float32Array(1));
    for (const shape of [[0, 5], [4, 0]]) {
      const y = softmaxForward(rt, bx, shape);
      expect(y.size).toBe(0);
      const dx = logSoftmaxBackward(rt, bx, bx, shape);
      expect(dx.size).toBe(0);
      rt.release(y);
      rt.release(dx);
    }
    await rt.sync();
    rt.release(bx);
  });

  it('rejects bad shapes naming the op and the shape', () => {
    const bx = rt.upload(new Float32Array(12));
    expect(() => softmaxForward(rt, bx, [3, 4], { causal: true })).toThrow(/softmaxForward: causal.*\[3, 4\]/);
    expect(() => softmaxForward(rt, bx, [4], { causal: true })).toThrow(/softmaxForward: causal.*\[4\]/);
    expect(() => logSoftmaxForward(rt, bx, [4, 4])).toThrow(/logSoftmaxForward: .*\[4, 4\] needs 16/);
    expect(() => softmaxBackward(rt, bx, bx, [2, -6])).toThrow(/softmaxBackward: invalid shape \[2, -6\]/);
    expect(() => softmaxForward(rt, bx, [])).toThrow(/softmaxForward: invalid shape \[\]/);
    const big = rt.limits.maxStorageBufferBindingSize / 4 / 1024 + 1;
    expect(() => softmaxForward(rt, bx, [big, 1024])).toThrow(LimitError);
    rt.release(bx);
  });
});
