/**
 * Row-wise families: softmax over rows of 1024, a 16M-element sum (multi-pass reduction), and fused
 * cross-entropy forward + backward over a 8192-class vocabulary. Each validates against a float64
 * CPU reference before timing.
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { crossEntropyBackward, crossEntropyForward } from '../packages/kernels/src/ops/cross-entropy.js';
import { reduceSum } from '../packages/kernels/src/ops/reduce.js';
import { softmaxForward } from '../packages/kernels/src/ops/softmax.js';
import type { BenchCase } from './harness.js';
import { tfSync } from './peer.js';

/** Deterministic pseudo-random values in [-scale, scale). */
function data(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 2 * scale;
  }
  return out;
}

function assertClose(what: string, got: number, want: number, atol: number, rtol: number): void {
  if (!(Math.abs(got - want) <= atol + rtol * Math.abs(want))) throw new Error(`${what}: got ${got}, expected ${want}`);
}

/** float64 softmax of row r of x (R, C). */
function softmaxRow(x: Float32Array, r: number, C: number): Float64Array {
  const row = x.subarray(r * C, (r + 1) * C);
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  const e = Float64Array.from(row, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

const SM_R = 4096;
const SM_C = 1024;
const SUM_N = 16 * 2 ** 20;
const CE_N = 512;
const CE_V = 8192;

export const cases: BenchCase[] = [
  {
    name: 'softmax_4096x1024',
    bytes: 2 * SM_R * SM_C * 4,
    async setup(rt: Runtime) {
      const xs = data(SM_R * SM_C, 1, 8);
      const x = rt.upload(xs);
      let y: GpuBuffer | null = null;
      const run = () => {
        if (y) rt.release(y);
        y = softmaxForward(rt, x, [SM_R, SM_C]);
      };
      return {
        run,
        async validate() {
          run();
          const out = await rt.readF32(y!);
          for (let r = 0; r < SM_R; r += 37) {
            const ref = softmaxRow(xs, r, SM_C);
            for (let c = 0; c < SM_C; c++) assertClose(`softmax_4096x1024 [${r}, ${c}]`, out[r * SM_C + c]!, ref[c]!, 1e-7, 1e-5);
          }
        },
        dispose() {
          rt.release(x);
          if (y) rt.release(y);
        },
      };
    },
    async peer(tf) {
      const x = tf.tensor2d(data(SM_R * SM_C, 1, 8), [SM_R, SM_C]);
      return {
        async run() {
          const y = tf.softmax(x);
          await tfSync(tf);
          y.dispose();
        },
        dispose: () => x.dispose(),
      };
    },
  },
  {
    name: 'sum_16M',
    bytes: SUM_N * 4,
    async setup(rt: Runtime) {
      const xs = data(SUM_N, 2, 1);
      const x = rt.upload(xs);
      let y: GpuBuffer | null = null;
      const run = () => {
        if (y) rt.release(y);
        y = reduceSum(rt, x, [SUM_N]);
      };
      return {
        run,
        async validate() {
          run();
          const got = (await rt.readF32(y!))[0]!;
          let ref = 0;
          let abs = 0;
          for (let i = 0; i < SUM_N; i++) {
            ref += xs[i]!;
            abs += Math.abs(xs[i]!);
          }
          // f32 tree summation: error bound relative to Σ|x|.
          assertClose('sum_16M', got, ref, 1e-6 * abs, 0);
        },
        dispose() {
          rt.release(x);
          if (y) rt.release(y);
        },
      };
    },
    async peer(tf) {
      const x = tf.tensor1d(data(SUM_N, 2, 1));
      return {
        async run() {
          const y = tf.sum(x);
          await tfSync(tf);
          y.dispose();
        },
        dispose: () => x.dispose(),
      };
    },
  },
  {
    name: 'cross_entropy_512x8192',
    // forward reads the logits; backward reads them again and writes dlogits
    bytes: 3 * CE_N * CE_V * 4,
    async setup(rt: Runtime) {
      const ls = data(CE_N * CE_V, 3, 4);
      const ts = Int32Array.from({ length: CE_N }, (_, i) => (i % 17 === 5 ? -100 : (i * 7919) % CE_V));
      const logits = rt.upload(ls);
      const targets = rt.upload(ts);
      const dloss = rt.upload(Float32Array.of(1));
      let held: GpuBuffer[] = [];
      const run = () => {
        held.forEach((b) => rt.release(b));
        const saved = crossEntropyForward(rt, logits, targets, [CE_N, CE_V]);
        const dlogits = crossEntropyBackward(rt, logits, targets, saved, dloss, [CE_N, CE_V]);
        held = [saved.loss, saved.rowLoss, saved.lse, saved.count, dlogits];
      };
      return {
        run,
        async validate() {
          run();
          const loss = (await rt.readF32(held[0]!))[0]!;
          const dl = await rt.readF32(held[4]!);
          let total = 0;
          let count = 0;
          for (let r = 0; r < CE_N; r++) if (ts[r] !== -100) count++;
          for (let r = 0; r < CE_N; r++) {
            const t = ts[r]!;
            const p = softmaxRow(ls, r, CE_V);
            if (t !== -100) total -= Math.log(p[t]!);
            if (r % 13 !== 0) continue;
            for (let c = 0; c < CE_V; c++) {
              const want = t === -100 ? 0 : (p[c]! - (c === t ? 1 : 0)) / count;
              assertClose(`cross_entropy dlogits [${r}, ${c}]`, dl[r * CE_V + c]!, want, 1e-9, 1e-4);
            }
          }
          assertClose('cross_entropy loss', loss, total / count, 0, 1e-5);
        },
        dispose() {
          held.forEach((b) => rt.release(b));
          [logits, targets, dloss].forEach((b) => rt.release(b));
        },
      };
    },
    async peer(tf) {
      // tfjs-core registers no gradients (tf.grad fails on RealDiv), so the backward is spelled out:
      // d mean-loss / d logits = (softmax(logits) − onehot) / N.
      const ts = Array.from({ length: CE_N }, (_, i) => (i * 7919) % CE_V);
      const labels = tf.cast(tf.oneHot(tf.tensor1d(ts, 'int32'), CE_V), 'float32');
      const logits = tf.tensor2d(data(CE_N * CE_V, 3, 4), [CE_N, CE_V]);
      return {
        async run() {
          const outs = tf.tidy(() => {
            const loss = tf.losses.softmaxCrossEntropy(labels, logits);
            const dlogits = tf.div(tf.sub(tf.softmax(logits), labels), CE_N);
            return [loss, dlogits];
          });
          await tfSync(tf);
          outs.forEach((t) => t.dispose());
        },
        dispose() {
          labels.dispose();
          logits.dispose();
        },
      };
    },
  },
];
