import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensor } from '../creation.js';
import { gradcheck } from '../gradcheck.js';
import type { Tensor } from '../tensor.js';
import { attention, rope } from './attention.js';
import { checkOp, randomF32 } from './test-helpers.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const f32 = (shape: number[], seed: number, scale = 1) => ({ data: randomF32(size(shape), seed, scale), shape });
const dispose = (ts: Tensor[]) => ts.forEach((t) => t.dispose());

interface RefAttn {
  B: number;
  H: number;
  Hkv: number;
  Tq: number;
  Tk: number;
  D: number;
  causal?: boolean;
  qOffset?: number;
  scale?: number;
  pad?: readonly number[];
}
function refAttention(p: RefAttn, q: Float64Array, k: Float64Array, v: Float64Array): Float64Array {
  const { B, H, Hkv, Tq, Tk, D } = p;
  const scale = p.scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(B * H * Tq * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < Tq; i++) {
        const s: number[] = [];
        for (let j = 0; j < Tk; j++) {
          const masked = (p.causal && j > (p.qOffset ?? 0) + i) || (p.pad && p.pad[b * Tk + j] === 0);
          let d = 0;
          for (let c = 0; c < D; c++) d += q[((b * H + h) * Tq + i) * D + c]! * k[((b * Hkv + kh) * Tk + j) * D + c]!;
          s.push(masked ? -Infinity : d * scale);
        }
        const m = Math.max(...s);
        if (m === -Infinity) continue;
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        for (let j = 0; j < Tk; j++) {
          for (let c = 0; c < D; c++) out[((b * H + h) * Tq + i) * D + c]! += (e[j]! / z) * v[((b * Hkv + kh) * Tk + j) * D + c]!;
        }
      }
    }
  }
  return out;
}

describe('attention', () => {
  it('multi-head, non-causal, Tq ≠ Tk: values and q/k/v gradients vs float64; gradcheck', async () => {
    const p = { B: 2, H: 2, Hkv: 2, Tq: 3, Tk: 5, D: 4 };
    const inputs = [f32([2, 2, 3, 4], 1), f32([2, 2, 5, 4], 2), f32([2, 2, 5, 4], 3)];
    const ts = await checkOp(rt, { what: 'attention', inputs, op: (q, k, v) => attention(q!, k!, v!), ref: (q, k, v) => refAttention(p, q, k, v) });
    await gradcheck((q, k, v) => attention(q!, k!, v!), ts, { names: ['q', 'k', 'v'] });
    dispose(ts);
  });

  it('causal grouped-query attention (H = 4, Hkv = 2) with qOffset and a custom scale', async () => {
    const p = { B: 1, H: 4, Hkv: 2, Tq: 3, Tk: 7, D: 8, causal: true, qOffset: 4, scale: 0.3 };
    const inputs = [f32([1, 4, 3, 8], 4), f32([1, 2, 7, 8], 5), f32([1, 2, 7, 8], 6)];
    const o = { causal: true, qOffset: 4, scale: 0.3, kvHeads: 2 };
    dispose(await checkOp(rt, { what: 'attention gqa causal', inputs, op: (q, k, v) => attention(q!, k!, v!, o), ref: (q, k, v) => refAttention(p, q, k, v) }));
  });

  it('key padding (f32 flags), including a fully padded batch row that outputs 0', async () => {
    const pad = [1, 0, 1, 1, 0, 0, 0, 0, 0, 0];
    const p = { B: 2, H: 1, Hkv: 1, Tq: 2, Tk: 5, D: 4, pad };
    const mask = tensor(rt, pad, [2, 5]);
    const inputs = [f32([2, 1, 2, 4], 7), f32([2, 1, 5, 4], 8), f32([2, 1, 5, 4], 9)];
    dispose(await checkOp(rt, { what: 'attention padded', inputs, op: (q, k, v) => attention(q!, k!, v!, { keyPadding: mask }), ref: (q, k, v) => refAttention(p, q, k, v) }));
    mask.dispose();
  });

  it('errors name the op and the shapes', () => {
    const q = tensor(rt, new Float32Array(2 * 3 * 8), [1, 2, 3, 8]);
    const k4 = tensor(rt, new Float32Array(2 * 3 * 4), [1, 2, 3, 4]);
    const k8 = tensor(rt, new Float32Array(3 * 8), [1, 1, 3, 8]);
    expect(() => attention(q, k4, k4)).toThrow(/attention: head dim differs: q has D = 8, k\/v have D = 4 \(shapes q \[1,2,3,8\], k \[1,2,3,4\], v \[1,2,3,4\]\)/);
    expect(() => attention(q, k8, k4)).toThrow(/attention: k and v shapes differ/);
    expect(() => attention(q, k8, k8, { kvHeads: 2 })).toThrow(/attention: kvHeads = 2 but k\/v have 1 heads/);
    expect(() => attention(q, k8, k8, { keyPadding: tensor(rt, [1, 1], [1, 2]) })).toThrow(/attention: keyPadding must have shape \[1,3\]/);
    const q6 = tensor(rt, new Float32Array(6), [1, 1, 1, 6]);
    expect(() => attention(q6, tensor(rt, new Float32Array(6), [1, 1, 1, 6]), tensor(rt, new Float32Array(6), [1, 1, 1, 6]))).toThrow(/attentionForward: head dim D must be a positive multiple of 4/);
    expect(() => attention(tensor(rt, new Float32Array(8), [2, 4]), k8, k8)).toThrow(/attention: q, k, v must be 4-D/);
  });
});

describe('rope', () => {
  function refRope(x: Float64Array, shape: number[], layout: 'BTHD' | 'BHTD', offset: number, theta: number): Float64Array {
    const [B, A1, A2, D] = shape as [number, number, number, number];
    const y = new Float64Array(x.length);
    for (let b = 0; b < B; b++) {
      for (let a1 = 0; a1 < A1; a1++) {
        for (let a2 = 0; a2 < A2; a2++) {
          const t = layout === 'BTHD' ? a1 : a2;
          const base = ((b * A1 + a1) * A2 + a2) * D;
          for (let i = 0; i < D / 2; i++) {
            const ang = (offset + t) * theta ** ((-2 * i) / D);
            const [x0, x1] = [x[base + i]!, x[base + i + D / 2]!];
            y[base + i] = x0 * Math.cos(ang) - x1 * Math.sin(ang);
            y[base + i + D / 2] = x1 * Math.cos(ang) + x0 * Math.sin(ang);
          }
        }
      }
    }
    return y;
  }

  it('BTHD and BHTD with offset and theta: values and gradients; gradcheck', async () => {
    const s1 = [2, 3, 2, 6];
    const ts = await checkOp(rt, { what: 'rope BTHD', inputs: [f32(s1, 10)], op: (x) => rope(x!, { layout: 'BTHD' }), ref: (x) => refRope(x, s1, 'BTHD', 0, 10000) });
    await gradcheck((x) => rope(x!, { layout: 'BTHD' }), ts);
    dispose(ts);
    const s2 = [1, 3, 5, 10];
    const o = { layout: 'BHTD' as const, offset: 7, theta: 500 };
    dispose(await checkOp(rt, { what: 'rope BHTD', inputs: [f32(s2, 11)], op: (x) => rope(x!, o), ref: (x) => refRope(x, s2, 'BHTD', 7, 500) }));
  });

  it('rejects odd head dims and non-4-D input', () => {
    expect(() => rope(tensor(rt, new Float32Array(6), [1, 1, 2, 3]), { layout: 'BTHD' })).toThrow(/ropeForward: .*even head dim \(shapes \[1, 1, 2, 3\]\)/);
    expect(() => rope(tensor(rt, new Float32Array(6), [2, 3]), { layout: 'BTHD' })).toThrow(/rope: x must be 4-D.*\[2,3\]/);
    expect(() => rope(tensor(rt, new Float32Array(8), [1, 1, 2, 4]), {} as never)).toThrow(/rope: options.layout must be 'BTHD' or 'BHTD'/);
  });
});
