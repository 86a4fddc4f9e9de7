import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { Runtime } from '../runtime/runtime.js';
import { dot, expectAllClose, numericGrad, randn } from '../testing/reference.js';
import { attentionBackward } from './attention-backward.js';
import { attentionForward, type AttentionOptions } from './attention.js';

// ---------------------------------------------------------------- float64 reference

interface RefOpts {
  batch: number;
  heads: number;
  kvHeads?: number;
  tq: number;
  tk: number;
  headDim: number;
  causal: boolean;
  scale?: number;
  qOffset?: number;
  pad?: ArrayLike<number>; // (B, Tk), 0 = padded
}

/** Calls f(b, h, i, hk, visible keys, their softmax weights p, lse) for every query row. */
function eachRow(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  o: RefOpts,
  f: (b: number, h: number, i: number, hk: number, js: number[], p: number[], lse: number) => void,
): void {
  const { batch: B, heads: H, tq, tk, headDim: D, causal } = o;
  const Hkv = o.kvHeads ?? H;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const off = o.qOffset ?? 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv));
      for (let i = 0; i < tq; i++) {
        const qr = ((b * H + h) * tq + i) * D;
        const js: number[] = [];
        const s: number[] = [];
        for (let j = 0; j < tk; j++) {
          if (causal && j > off + i) continue;
          if (o.pad && o.pad[b * tk + j] === 0) continue;
          const kr = ((b * Hkv + hk) * tk + j) * D;
          let acc = 0;
          for (let d = 0; d < D; d++) acc += q[qr + d]! * k[kr + d]!;
          js.push(j);
          s.push(acc * scale);
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const sum = e.reduce((a, c) => a + c, 0);
        f(b, h, i, hk, js, e.map((x) => x / sum), js.length ? m + Math.log(sum) : -Infinity);
      }
    }
}

/** Naive softmax(QKᵀ·scale + mask)·V in float64. */
function refForward(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, o: RefOpts) {
  const { batch: B, heads: H, tq, tk, headDim: D } = o;
  const Hkv = o.kvHeads ?? H;
  const out = new Float64Array(B * H * tq * D);
  const lse = new Float64Array(B * H * tq);
  eachRow(q, k, o, (b, h, i, hk, js, p, l) => {
    const row = (b * H + h) * tq + i;
    lse[row] = l;
    js.forEach((j, n) => {
      const vr = ((b * Hkv + hk) * tk + j) * D;
      for (let d = 0; d < D; d++) out[row * D + d]! += p[n]! * v[vr + d]!;
    });
  });
  return { out, lse };
}

/** Analytic float64 gradients of Σ dout·out. */
function refBackward(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dout: ArrayLike<number>, o: RefOpts) {
  const { batch: B, heads: H, tq, tk, headDim: D } = o;
  const Hkv = o.kvHeads ?? H;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  eachRow(q, k, o, (b, h, i, hk, js, p) => {
    const qr = ((b * H + h) * tq + i) * D;
    const kr = (j: number) => ((b * Hkv + hk) * tk + j) * D;
    const dp = js.map((j) => {
      let a = 0;
      for (let d = 0; d < D; d++) a += dout[qr + d]! * v[kr(j) + d]!;
      return a;
    });
    const delta = dp.reduce((a, x, n) => a + x * p[n]!, 0);
    js.forEach((j, n) => {
      const ds = p[n]! * (dp[n]! - delta) * scale;
      for (let d = 0; d < D; d++) {
        dv[kr(j) + d]! += p[n]! * dout[qr + d]!;
        dq[qr + d]! += ds * k[kr(j) + d]!;
        dk[kr(j) + d]! += ds * q[qr + d]!;
      }
    });
  });
  return { dq, dk, dv };
}

// ---------------------------------------------------------------- GPU helpers

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

function inputs(o: RefOpts, seed: number, scale = 1) {
  const Hkv = o.kvHeads ?? o.heads;
  const nq = o.batch * o.heads * o.tq * o.headDim;
  const nk = o.batch * Hkv * o.tk * o.headDim;
  return { q: randn(nq, seed, scale), k: randn(nk, seed + 1, scale), v: randn(nk, seed + 2), dout: randn(nq, seed + 3) };
}

function gpuOpts(o: RefOpts, pad?: GpuBuffer): AttentionOptions {
  const { pad: _p, ...rest } = o;
  return pad ? { ...rest, keyPadding: pad } : rest;
}

async function checkForward(o: RefOpts, seed: number, what: string, scale = 1) {
  const x = inputs(o, seed, scale);
  const [q, k, v] = [rt.upload(x.q), rt.upload(x.k), rt.upload(x.v)];
  const pad = o.pad ? rt.upload(Uint32Array.from(o.pad)) : undefined;
  const r = attentionForward(rt, q, k, v, gpuOpts(o, pad));
  const ref = refForward(x.q, x.k, x.v, o);
  expectAllClose(await rt.readF32(r.out), ref.out, { atol: 2e-5, rtol: 1e-4 }, `${what} out`);
  expectAllClose(await rt.readF32(r.lse), ref.lse, { atol: 2e-5, rtol: 1e-5 }, `${what} lse`);
  for (const b of [q, k, v, r.out, r.lse, ...(pad ? [pad] : [])]) rt.release(b);
}

async function checkBackward(o: RefOpts, seed: number, what: string) {
  const x = inputs(o, seed);
  const [q, k, v, dout] = [rt.upload(x.q), rt.upload(x.k), rt.upload(x.v), rt.upload(x.dout)];
  const pad = o.pad ? rt.upload(Uint32Array.from(o.pad)) : undefined;
  const f = attentionForward(rt, q, k, v, gpuOpts(o, pad));
  const g = attentionBackward(rt, q, k, v, f.out, f.lse, dout, gpuOpts(o, pad));
  const ref = refBackward(x.q, x.k, x.v, x.dout, o);
  const tol = { atol: 1e-4, rtol: 1e-3 };
  expectAllClose(await rt.readF32(g.dq), ref.dq, tol, `${what} dq`);
  expectAllClose(await rt.readF32(g.dk), ref.dk, tol, `${what} dk`);
  expectAllClose(await rt.readF32(g.dv), ref.dv, tol, `${what} dv`);
  for (const b of [q, k, v, dout, f.out, f.lse, g.dq, g.dk, g.dv, ...(pad ? [pad] : [])]) rt.release(b);
}

// ---------------------------------------------------------------- tests

describe('attentionForward', () => {
  const shapes: [number, number, number, number][] = [
    [1, 1, 1, 4],
    [2, 3, 7, 16],
    [1, 2, 37, 64],
    [1, 1, 130, 64],
    [1, 1, 9, 128],
  ];
  for (const causal of [false, true]) {
    for (const [B, H, T, D] of shapes) {
      it(`matches the reference, ${causal ? 'causal' : 'full'} B${B} H${H} T${T} D${D}`, async () => {
        await checkForward({ batch: B, heads: H, tq: T, tk: T, headDim: D, causal }, B * 100 + T + D, `B${B} T${T} D${D}`);
      });
    }
  }

  it('cross-attention with Tq != Tk (both ways) and a custom scale', async () => {
    await checkForward({ batch: 2, heads: 2, tq: 7, tk: 37, headDim: 16, causal: false, scale: 0.3 }, 11, 'cross 7x37');
    await checkForward({ batch: 1, heads: 3, tq: 66, tk: 5, headDim: 8, causal: false }, 12, 'cross 66x5');
  });

  it('causal with qOffset: decode step and a chunk of queries after a cache', async () => {
    await checkForward({ batch: 2, heads: 2, tq: 1, tk: 37, headDim: 16, causal: true, qOffset: 36 }, 13, 'decode');
    await checkForward({ batch: 1, heads: 2, tq: 7, tk: 30, headDim: 16, causal: true, qOffset: 23 }, 14, 'chunk');
    // the decode step equals the last row of the full causal pass
    const o = { batch: 1, heads: 1, tq: 37, tk: 37, headDim: 16, causal: true };
    const x = inputs(o, 15);
    const [q, k, v] = [rt.upload(x.q), rt.upload(x.k), rt.upload(x.v)];
    const qLast = rt.upload(x.q.slice(36 * 16));
    const full = attentionForward(rt, q, k, v, o);
    const step = attentionForward(rt, qLast, k, v, { ...o, tq: 1, qOffset: 36 });
    expectAllClose(await rt.readF32(step.out), (await rt.readF32(full.out)).slice(36 * 16), { atol: 1e-6, rtol: 1e-5 }, 'decode vs full');
    for (const b of [q, k, v, qLast, full.out, full.lse, step.out, step.lse]) rt.release(b);
  });

  it('key padding (u32 and f32 masks), with a fully masked row giving 0 and lse = -inf', async () => {
    const tk = 13;
    const pad = Array.from({ length: 3 * tk }, (_, i) => (i < tk ? (i % 3 === 1 ? 0 : 1) : i < 2 * tk ? 0 : 1));
    const o = { batch: 3, heads: 2, tq: 5, tk, headDim: 8, causal: false, pad };
    await checkForward(o, 21, 'padding');
    await checkForward({ ...o, causal: true, qOffset: 2 }, 22, 'padding causal');
    const x = inputs(o, 23);
    const [q, k, v] = [rt.upload(x.q), rt.upload(x.k), rt.upload(x.v)];
    const padF = rt.upload(Float32Array.from(pad));
    const r = attentionForward(rt, q, k, v, gpuOpts(o, padF));
    const out = await rt.readF32(r.out);
    const lse = await rt.readF32(r.lse);
    expectAllClose(out, refForward(x.q, x.k, x.v, o).out, { atol: 2e-5, rtol: 1e-4 }, 'f32 mask');
    // batch 1 has every key padded
    expect(Array.from(lse.slice(10, 20))).toEqual(new Array(10).fill(-Infinity));
    expect(Array.from(out.slice(80, 160))).toEqual(new Array(80).fill(0));
    for (const b of [q, k, v, padF, r.out, r.lse]) rt.release(b);
  });

  it('grouped-query and multi-query attention', async () => {
    await checkForward({ batch: 2, heads: 6, kvHeads: 2, tq: 11, tk: 11, headDim: 16, causal: true }, 31, 'gqa');
    await checkForward({ batch: 1, heads: 4, kvHeads: 1, tq: 3, tk: 19, headDim: 32, causal: false }, 32, 'mqa');
  });

  it('stays finite for large scores (online softmax rescaling)', async () => {
    await checkForward({ batch: 1, heads: 2, tq: 37, tk: 37, headDim: 16, causal: true }, 41, 'large', 12);
  });

  it('propagates NaN to the rows that see it, and only those', async () => {
    const o = { batch: 1, heads: 1, tq: 5, tk: 5, headDim: 4, causal: true };
    const x = inputs(o, 45);
    x.k[2 * 4 + 1] = NaN; // key 2: rows 2.. see it
    const [q, k, v] = [rt.upload(x.q), rt.upload(x.k), rt.upload(x.v)];
    const r = attentionForward(rt, q, k, v, o);
    const out = await rt.readF32(r.out);
    expect(Array.from(out.slice(0, 8)).every(Number.isFinite)).toBe(true);
    expect(Array.from(out.slice(8)).every(Number.isNaN)).toBe(true);
    for (const b of [q, k, v, r.out, r.lse]) rt.release(b);
  });

  it('handles empty shapes: Tq = 0, and Tk = 0 (every row fully masked)', async () => {
    const q = rt.upload(randn(2 * 3 * 4, 51));
    const k = rt.createBuffer(16);
    const r0 = attentionForward(rt, q, k, k, { batch: 2, heads: 1, tq: 0, tk: 0, headDim: 4, causal: false });
    expect(r0.out.size).toBe(0);
    const r = attentionForward(rt, q, k, k, { batch: 2, heads: 1, tq: 3, tk: 0, headDim: 4, causal: true });
    expect(Array.from(await rt.readF32(r.out))).toEqual(new Array(24).fill(0));
    expect(Array.from(await rt.readF32(r.lse))).toEqual(new Array(6).fill(-Infinity));
    for (const b of [q, k, r0.out, r0.lse, r.out, r.lse]) rt.release(b);
  });

  it('rejects bad head dims, head counts and short buffers, naming the op and shapes', () => {
    const b = rt.createBuffer(4096);
    const base = { batch: 1, heads: 2, tq: 4, tk: 4, headDim: 8, causal: false };
    expect(() => attentionForward(rt, b, b, b, { ...base, headDim: 6 })).toThrow(/attentionForward: head dim D .* 6 .*shapes q \[1, 2, 4, 6\]/);
    expect(() => attentionForward(rt, b, b, b, { ...base, headDim: 132 })).toThrow(/attentionForward: head dim/);
    expect(() => attentionForward(rt, b, b, b, { ...base, heads: 3, kvHeads: 2 })).toThrow(/attentionForward: heads \(3\) must be a multiple of kvHeads \(2\)/);
    expect(() => attentionForward(rt, b, b, b, { ...base, tq: 1000 })).toThrow(/attentionForward: q holds 1024 floats, needs 16000/);
    expect(() => attentionBackward(rt, b, b, b, b, b, b, { ...base, tk: 2.5 })).toThrow(/attentionBackward: tk must be/);
    rt.release(b);
  });
});

describe('attentionBackward', () => {
  it('matches float64 gradients: full and causal, T not a block multiple', async () => {
    await checkBackward({ batch: 2, heads: 2, tq: 37, tk: 37, headDim: 16, causal: false }, 61, 'full T37');
    await checkBackward({ batch: 1, heads: 2, tq: 70, tk: 70, headDim: 64, causal: true }, 62, 'causal T70 D64');
    await checkBackward({ batch: 1, heads: 1, tq: 1, tk: 1, headDim: 4, causal: true }, 63, 'T1');
    await checkBackward({ batch: 1, heads: 1, tq: 7, tk: 7, headDim: 128, causal: true }, 64, 'D128');
  });

  it('matches float64 gradients: cross-attention, decode offset, GQA (dk/dv summed over the group)', async () => {
    await checkBackward({ batch: 2, heads: 2, tq: 7, tk: 37, headDim: 8, causal: false, scale: 0.5 }, 71, 'cross');
    await checkBackward({ batch: 1, heads: 2, tq: 5, tk: 20, headDim: 16, causal: true, qOffset: 15 }, 72, 'offset');
    await checkBackward({ batch: 2, heads: 6, kvHeads: 2, tq: 13, tk: 13, headDim: 16, causal: true }, 73, 'gqa');
    await checkBackward({ batch: 1, heads: 4, kvHeads: 1, tq: 9, tk: 130, headDim: 4, causal: false }, 74, 'mqa');
  });

  it('padding with a fully masked row: zero, NaN-free gradients there', async () => {
    const tk = 11;
    const pad = Array.from({ length: 2 * tk }, (_, i) => (i < tk ? (i % 4 === 0 ? 0 : 1) : 0));
    await checkBackward({ batch: 2, heads: 2, tq: 6, tk, headDim: 8, causal: false, pad }, 81, 'padding');
    await checkBackward({ batch: 2, heads: 2, tq: 6, tk, headDim: 8, causal: true, qOffset: 1, pad }, 82, 'padding causal');
  });

  it('reference gradients agree with finite differences of the reference forward', () => {
    const o: RefOpts = { batch: 1, heads: 2, kvHeads: 1, tq: 3, tk: 4, headDim: 4, causal: true, qOffset: 1, pad: [1, 0, 1, 1] };
    const x = inputs(o, 91);
    const g = refBackward(x.q, x.k, x.v, x.dout, o);
    const loss = (q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>) => dot(refForward(q, k, v, o).out, x.dout);
    const tol = { atol: 1e-6, rtol: 1e-5 };
    expectAllClose(g.dq, numericGrad((q) => loss(q, x.k, x.v), x.q), tol, 'dq vs numeric');
    expectAllClose(g.dk, numericGrad((k) => loss(x.q, k, x.v), x.k), tol, 'dk vs numeric');
    expectAllClose(g.dv, numericGrad((v) => loss(x.q, x.k, v), x.v), tol, 'dv vs numeric');
    expect(Math.max(...g.dk.map(Math.abs))).toBeGreaterThan(1e-3);
  });
});
