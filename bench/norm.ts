/**
 * LayerNorm and RMSNorm over (N, C) = (4096, 1024): forward, and LayerNorm backward (dx, dw, db).
 * Bytes count the unavoidable traffic (each (N, C) tensor read or written once, plus the small
 * per-row and per-channel vectors); the backward kernels actually read dy and x twice (once for dx,
 * once for the dw/db partials), so their GB/s understates the achieved bandwidth.
 * Peers: TF.js has no layerNorm op; it is composed from tf.moments and elementwise ops (the backward
 * from the same closed form as ours, since tfjs-core registers no gradients).
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { layerNormBackward, layerNormForward } from '../packages/kernels/src/ops/layer-norm.js';
import { layerNormRef, normBackwardRef, rmsNormRef } from '../packages/kernels/src/ops/layer-norm.reference.js';
import { rmsNormForward } from '../packages/kernels/src/ops/rms-norm.js';
import type { BenchCase } from './harness.js';
import { tfSync, type Tf } from './peer.js';

const N = 4096;
const C = 1024;
const EPS = 1e-5;

/** Deterministic pseudo-random data in [-2, 2) with a per-row offset. */
function data(len: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: len }, (_, i) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2 + (Math.floor(i / C) % 5) * 0.25;
  });
}

function check(name: string, what: string, got: Float32Array, want: Float64Array, atol: number, rtol: number): void {
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= atol + rtol * Math.abs(want[i]!))) {
      throw new Error(`${name}: ${what}[${i}] = ${got[i]}, expected ${want[i]}`);
    }
  }
}

interface Inputs {
  x: Float32Array;
  w: Float32Array;
  b: Float32Array;
  dy: Float32Array;
  bufs: { x: GpuBuffer; w: GpuBuffer; b: GpuBuffer; dy: GpuBuffer };
}

function inputs(rt: Runtime): Inputs {
  const x = data(N * C, 1);
  const w = data(C, 2);
  const b = data(C, 3);
  const dy = data(N * C, 4);
  return { x, w, b, dy, bufs: { x: rt.upload(x), w: rt.upload(w), b: rt.upload(b), dy: rt.upload(dy) } };
}

function release(rt: Runtime, ...bufs: (GpuBuffer | null)[]): void {
  for (const b of bufs) if (b) rt.release(b);
}

function peerInputs(tf: Tf) {
  return {
    x: tf.tensor2d(data(N * C, 1), [N, C]),
    w: tf.tensor1d(data(C, 2)),
    b: tf.tensor1d(data(C, 3)),
    dy: tf.tensor2d(data(N * C, 4), [N, C]),
  };
}

function tfLayerNorm(tf: Tf, x: import('@tensorflow/tfjs-core').Tensor, w: import('@tensorflow/tfjs-core').Tensor, b: import('@tensorflow/tfjs-core').Tensor) {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS))), w), b);
}

export const cases: BenchCase[] = [
  {
    name: 'layernorm_4096x1024',
    bytes: 2 * N * C * 4 + 2 * C * 4 + 2 * N * 4,
    async setup(rt) {
      const inp = inputs(rt);
      const { x, w, b } = inp.bufs;
      const run = () => {
        const r = layerNormForward(rt, x, w, b, { shape: [N, C], eps: EPS });
        release(rt, r.y, r.mean, r.rstd);
      };
      return {
        run,
        async validate() {
          const r = layerNormForward(rt, x, w, b, { shape: [N, C], eps: EPS });
          const ref = layerNormRef(inp.x, inp.w, inp.b, N, C, EPS);
          check('layernorm_4096x1024', 'y', await rt.readF32(r.y), ref.y, 1e-4, 1e-4);
          check('layernorm_4096x1024', 'rstd', await rt.readF32(r.rstd), ref.rstd, 0, 1e-5);
          release(rt, r.y, r.mean, r.rstd);
        },
        dispose: () => release(rt, x, w, b, inp.bufs.dy),
      };
    },
    async peer(tf) {
      const p = peerInputs(tf);
      return {
        async run() {
          tf.tidy(() => tfLayerNorm(tf, p.x, p.w, p.b)).dispose();
          await tfSync(tf);
        },
        dispose: () => tf.dispose([p.x, p.w, p.b, p.dy]),
      };
    },
  },
  {
    name: 'layernorm_bwd_4096x1024',
    bytes: 3 * N * C * 4 + 3 * C * 4 + 2 * N * 4,
    async setup(rt) {
      const inp = inputs(rt);
      const { x, w, b, dy } = inp.bufs;
      const fwd = layerNormForward(rt, x, w, b, { shape: [N, C], eps: EPS });
      const run = () => {
        const g = layerNormBackward(rt, dy, x, w, fwd.mean, fwd.rstd, { shape: [N, C] });
        release(rt, g.dx, g.dweight, g.dbias);
      };
      return {
        run,
        async validate() {
          const g = layerNormBackward(rt, dy, x, w, fwd.mean, fwd.rstd, { shape: [N, C] });
          const ref = normBackwardRef(inp.dy, inp.x, inp.w, N, C, EPS, false);
          check('layernorm_bwd_4096x1024', 'dx', await rt.readF32(g.dx), ref.dx, 1e-4, 1e-4);
          check('layernorm_bwd_4096x1024', 'dweight', await rt.readF32(g.dweight!), ref.dweight, 2e-3, 1e-4);
          check('layernorm_bwd_4096x1024', 'dbias', await rt.readF32(g.dbias!), ref.dbias, 2e-3, 1e-4);
          release(rt, g.dx, g.dweight, g.dbias);
        },
        dispose: () => release(rt, x, w, b, dy, fwd.y, fwd.mean, fwd.rstd),
      };
    },
    async peer(tf) {
      // tfjs-core registers no gradients, so the backward is composed by hand, from saved statistics
      const p = peerInputs(tf);
      const [mean, rstd] = tf.tidy(() => {
        const m = tf.moments(p.x, -1, true);
        return [m.mean, tf.rsqrt(tf.add(m.variance, EPS))];
      });
      return {
        async run() {
          const out = tf.tidy(() => {
            const xhat = tf.mul(tf.sub(p.x, mean), rstd);
            const g = tf.mul(p.dy, p.w);
            const inner = tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true)));
            return [tf.mul(rstd, inner), tf.sum(tf.mul(p.dy, xhat), 0), tf.sum(p.dy, 0)];
          });
          tf.dispose(out);
          await tfSync(tf);
        },
        dispose: () => tf.dispose([p.x, p.w, p.b, p.dy, mean!, rstd!]),
      };
    },
  },
  {
    name: 'rmsnorm_4096x1024',
    bytes: 2 * N * C * 4 + C * 4 + N * 4,
    async setup(rt) {
      const inp = inputs(rt);
      const { x, w } = inp.bufs;
      const run = () => {
        const r = rmsNormForward(rt, x, w, { shape: [N, C], eps: EPS });
        release(rt, r.y, r.rstd);
      };
      return {
        run,
        async validate() {
          const r = rmsNormForward(rt, x, w, { shape: [N, C], eps: EPS });
          const ref = rmsNormRef(inp.x, inp.w, N, C, EPS);
          check('rmsnorm_4096x1024', 'y', await rt.readF32(r.y), ref.y, 1e-4, 1e-4);
          release(rt, r.y, r.rstd);
        },
        dispose: () => release(rt, x, w, inp.bufs.b, inp.bufs.dy),
      };
    },
    async peer(tf) {
      const p = peerInputs(tf);
      return {
        async run() {
          tf.tidy(() => tf.mul(tf.mul(p.x, tf.rsqrt(tf.add(tf.mean(tf.square(p.x), -1, true), EPS))), p.w)).dispose();
          await tfSync(tf);
        },
        dispose: () => tf.dispose([p.x, p.w, p.b, p.dy]),
      };
    },
  },
];
