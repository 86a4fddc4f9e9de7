/**
 * Elementwise kernels: a same-shape binary op, a unary activation, and the fused bias + gelu against
 * the two-pass add-then-gelu it replaces.
 *
 * Bytes count the unavoidable traffic of the op (inputs read once, output written once). The two
 * bias_gelu rows use the same byte count, so their GB/s compare directly: the unfused pair actually
 * moves 2× the (N, C) traffic (x → tmp, tmp → out), which is exactly what the fusion saves.
 * Peers: tf.add; TF.js core has no gelu, so it is composed from its elementwise ops (tanh form).
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { unaryForward } from '../packages/kernels/src/ops/elementwise.js';
import { binaryForward, biasGeluForward } from '../packages/kernels/src/ops/elementwise-binary.js';
import { refGeluTanh } from '../packages/kernels/src/ops/elementwise.reference.js';
import type { BenchCase } from './harness.js';
import { tfSync, type Tf } from './peer.js';

const N4M = 4 * 2 ** 20;
const ROWS = 4096;
const C = 1024;

/** Deterministic pseudo-random data in [-4, 4). */
function data(len: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: len }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 8 - 4;
  });
}

function check(name: string, got: Float32Array, want: (i: number) => number, atol: number, rtol: number): void {
  for (let i = 0; i < got.length; i++) {
    const w = want(i);
    if (!(Math.abs(got[i]! - w) <= atol + rtol * Math.abs(w))) throw new Error(`${name}: [${i}] = ${got[i]}, expected ${w}`);
  }
}

/** A BenchInstance whose run() records `op` and drops its output (the pool recycles it). */
function instance(rt: Runtime, name: string, inputs: GpuBuffer[], op: () => GpuBuffer, n: number, want: (i: number) => number) {
  return {
    run: () => rt.release(op()),
    async validate() {
      const out = op();
      const got = await rt.readF32(out, 0, n);
      rt.release(out);
      check(name, got, want, 2e-6, 2e-6);
    },
    dispose: () => inputs.forEach((b) => rt.release(b)),
  };
}

/** 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))) from TF.js core ops. */
function tfGelu(tf: Tf, x: import('@tensorflow/tfjs-core').Tensor) {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

function peerOf(tf: Tf, inputs: import('@tensorflow/tfjs-core').Tensor[], f: () => import('@tensorflow/tfjs-core').Tensor) {
  return {
    async run() {
      const y = tf.tidy(f);
      await tfSync(tf);
      y.dispose();
    },
    dispose: () => inputs.forEach((t) => t.dispose()),
  };
}

export const cases: BenchCase[] = [
  {
    name: 'add_4M',
    bytes: 3 * 4 * N4M,
    async setup(rt) {
      const [a, b] = [data(N4M, 1), data(N4M, 2)];
      const [ba, bb] = [rt.upload(a), rt.upload(b)];
      const shape = [N4M];
      return instance(rt, 'add_4M', [ba, bb], () => binaryForward(rt, 'add', ba, bb, { aShape: shape, bShape: shape }), N4M, (i) => a[i]! + b[i]!);
    },
    async peer(tf) {
      const [a, b] = [tf.tensor1d(data(N4M, 1)), tf.tensor1d(data(N4M, 2))];
      return peerOf(tf, [a, b], () => tf.add(a, b));
    },
  },
  {
    name: 'gelu_4M',
    bytes: 2 * 4 * N4M,
    async setup(rt) {
      const x = data(N4M, 3);
      const bx = rt.upload(x);
      return instance(rt, 'gelu_4M', [bx], () => unaryForward(rt, 'gelu', bx), N4M, (i) => refGeluTanh(x[i]!));
    },
    async peer(tf) {
      const x = tf.tensor1d(data(N4M, 3));
      return peerOf(tf, [x], () => tfGelu(tf, x));
    },
  },
  {
    name: 'bias_gelu_4096x1024_fused',
    bytes: 2 * 4 * ROWS * C + 4 * C,
    async setup(rt) {
      const [x, bias] = [data(ROWS * C, 4), data(C, 5)];
      const [bx, bb] = [rt.upload(x), rt.upload(bias)];
      return instance(rt, 'bias_gelu_4096x1024_fused', [bx, bb], () => biasGeluForward(rt, bx, bb, { shape: [ROWS, C] }), ROWS * C, (i) =>
        refGeluTanh(x[i]! + bias[i % C]!),
      );
    },
    async peer(tf) {
      const [x, bias] = [tf.tensor2d(data(ROWS * C, 4), [ROWS, C]), tf.tensor1d(data(C, 5))];
      return peerOf(tf, [x, bias], () => tfGelu(tf, tf.add(x, bias)));
    },
  },
  {
    name: 'bias_gelu_4096x1024_unfused',
    bytes: 2 * 4 * ROWS * C + 4 * C,
    async setup(rt) {
      const [x, bias] = [data(ROWS * C, 4), data(C, 5)];
      const [bx, bb] = [rt.upload(x), rt.upload(bias)];
      const op = () => {
        const t = binaryForward(rt, 'add', bx, bb, { aShape: [ROWS, C], bShape: [C] });
        const y = unaryForward(rt, 'gelu', t);
        rt.release(t);
        return y;
      };
      return instance(rt, 'bias_gelu_4096x1024_unfused', [bx, bb], op, ROWS * C, (i) => refGeluTanh(x[i]! + bias[i % C]!));
    },
  },
];
