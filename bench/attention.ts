/**
 * Fused attention (ops/attention.ts, ops/attention-backward.ts): causal self-attention with B = 4,
 * H = 4, T = 256, D = 64, forward and backward.
 *
 * FLOP convention (the FlashAttention papers'): the forward is two matmuls, Q·Kᵀ and P·V, of
 * 2·T·T·D flops each per (batch, head), halved for causal: 4·B·H·T·T·D / 2. Softmax exponentials and
 * the online rescaling are not counted. The backward counts five such matmuls (S recompute, dP, dV,
 * dK, dQ): 2.5× the forward, 10·B·H·T·T·D / 2; the kernels actually recompute S and dP twice (once
 * per key-block kernel, once per query-block kernel), which is not counted.
 * Peer (forward only): TF.js's composition matMul(Q, Kᵀ)·scale + causal mask → softmax → matMul(·, V),
 * which does materialize the (B·H, T, T) scores and computes the masked half too.
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { attentionBackward } from '../packages/kernels/src/ops/attention-backward.js';
import { attentionForward, type AttentionOptions } from '../packages/kernels/src/ops/attention.js';
import type { BenchCase } from './harness.js';
import { tfSync } from './peer.js';

const B = 4;
const H = 4;
const T = 256;
const D = 64;
const OPTS: AttentionOptions = { batch: B, heads: H, tq: T, tk: T, headDim: D, causal: true };
const SCALE = 1 / Math.sqrt(D);

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

const N = B * H * T * D;
const Q = data(N, 1, 1.5);
const K = data(N, 2, 1.5);
const V = data(N, 3, 1);
const DOUT = data(N, 4, 1);

/**
 * float64 causal attention for one (batch, head) slab `bh`: out and lse rows, and (with dout) the
 * gradients of that slab, by the naive formulas (P = softmax(S), dS = P ∘ (dP − rowsum(dP ∘ P))).
 */
function reference(bh: number, withGrad: boolean) {
  const base = bh * T * D;
  const at = (x: Float32Array, t: number, d: number) => x[base + t * D + d]!;
  const out = new Float64Array(T * D);
  const dq = new Float64Array(T * D);
  const dk = new Float64Array(T * D);
  const dv = new Float64Array(T * D);
  for (let i = 0; i < T; i++) {
    const s = new Float64Array(i + 1);
    for (let j = 0; j <= i; j++) {
      let a = 0;
      for (let d = 0; d < D; d++) a += at(Q, i, d) * at(K, j, d);
      s[j] = a * SCALE;
    }
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const sum = e.reduce((a, c) => a + c, 0);
    const p = e.map((x) => x / sum);
    for (let j = 0; j <= i; j++) for (let d = 0; d < D; d++) out[i * D + d]! += p[j]! * at(V, j, d);
    if (!withGrad) continue;
    const dp = new Float64Array(i + 1);
    for (let j = 0; j <= i; j++) for (let d = 0; d < D; d++) dp[j]! += at(DOUT, i, d) * at(V, j, d);
    const delta = dp.reduce((a, x, j) => a + x * p[j]!, 0);
    for (let j = 0; j <= i; j++) {
      const ds = p[j]! * (dp[j]! - delta) * SCALE;
      for (let d = 0; d < D; d++) {
        dv[j * D + d]! += p[j]! * at(DOUT, i, d);
        dq[i * D + d]! += ds * at(K, j, d);
        dk[j * D + d]! += ds * at(Q, i, d);
      }
    }
  }
  return { out, dq, dk, dv };
}

function compare(what: string, got: Float32Array, offset: number, want: Float64Array, atol: number, rtol: number): void {
  for (let i = 0; i < want.length; i++) {
    const g = got[offset + i]!;
    if (!(Math.abs(g - want[i]!) <= atol + rtol * Math.abs(want[i]!))) {
      throw new Error(`${what}: mismatch at ${offset + i}: got ${g}, expected ${want[i]}`);
    }
  }
}

/** The (batch, head) slabs checked by validate(): first and last. */
const CHECKED = [0, B * H - 1];

export const cases: BenchCase[] = [
  {
    name: 'attention_b4_h4_t256_d64',
    flops: (4 * B * H * T * T * D) / 2,
    async setup(rt: Runtime) {
      const [q, k, v] = [rt.upload(Q), rt.upload(K), rt.upload(V)];
      let res: { out: GpuBuffer; lse: GpuBuffer } | null = null;
      const run = () => {
        if (res) {
          rt.release(res.out);
          rt.release(res.lse);
        }
        res = attentionForward(rt, q, k, v, OPTS);
      };
      return {
        run,
        async validate() {
          run();
          const out = await rt.readF32(res!.out);
          for (const bh of CHECKED) compare(`attention_b4_h4_t256_d64 out (slab ${bh})`, out, bh * T * D, reference(bh, false).out, 1e-5, 1e-4);
        },
        dispose() {
          for (const b of [q, k, v]) rt.release(b);
          if (res) {
            rt.release(res.out);
            rt.release(res.lse);
          }
        },
      };
    },
    async peer(tf) {
      const q = tf.tensor3d(Q, [B * H, T, D]);
      const k = tf.tensor3d(K, [B * H, T, D]);
      const v = tf.tensor3d(V, [B * H, T, D]);
      // additive causal mask (T, T): 0 on and below the diagonal, -1e9 above
      const maskData = new Float32Array(T * T);
      for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;
      const mask = tf.tensor2d(maskData, [T, T]);
      return {
        async run() {
          const out = tf.tidy(() => tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), SCALE), mask)), v));
          await tfSync(tf);
          out.dispose();
        },
        dispose() {
          for (const t of [q, k, v, mask]) t.dispose();
        },
      };
    },
  },
  {
    name: 'attention_bwd_b4_h4_t256_d64',
    flops: (10 * B * H * T * T * D) / 2,
    async setup(rt: Runtime) {
      const [q, k, v, dout] = [rt.upload(Q), rt.upload(K), rt.upload(V), rt.upload(DOUT)];
      const fwd = attentionForward(rt, q, k, v, OPTS);
      let res: { dq: GpuBuffer; dk: GpuBuffer; dv: GpuBuffer } | null = null;
      const release = () => {
        if (res) for (const b of [res.dq, res.dk, res.dv]) rt.release(b);
        res = null;
      };
      const run = () => {
        release();
        res = attentionBackward(rt, q, k, v, fwd.out, fwd.lse, dout, OPTS);
      };
      return {
        run,
        async validate() {
          run();
          const [dq, dk, dv] = [await rt.readF32(res!.dq), await rt.readF32(res!.dk), await rt.readF32(res!.dv)];
          for (const bh of CHECKED) {
            const ref = reference(bh, true);
            const what = `attention_bwd_b4_h4_t256_d64 (slab ${bh})`;
            compare(`${what} dq`, dq, bh * T * D, ref.dq, 1e-4, 1e-3);
            compare(`${what} dk`, dk, bh * T * D, ref.dk, 1e-4, 1e-3);
            compare(`${what} dv`, dv, bh * T * D, ref.dv, 1e-4, 1e-3);
          }
        },
        dispose() {
          release();
          for (const b of [q, k, v, dout, fwd.out, fwd.lse]) rt.release(b);
        },
      };
    },
  },
];
