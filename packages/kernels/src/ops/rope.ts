/**
 * Rotary position embedding (RoPE), Llama / Hugging Face "rotate_half" convention: within each head
 * vector of D channels, channel i is paired with channel i + D/2 (i < D/2), and the pair is rotated
 * by the angle pos·θ^(−2i/D):
 *
 *   y[i]       = x[i]·cos − x[i + D/2]·sin
 *   y[i + D/2] = x[i + D/2]·cos + x[i]·sin
 *
 * (not the interleaved GPT-J / original-paper pairing (2i, 2i + 1): permute q/k weights to convert).
 * The backward is the inverse rotation (angle −pos·θ^(−2i/D)) applied to dy. Position of token t is
 * offset + t, so KV-cache decoding passes offset = number of cached tokens.
 *
 * cos/sin are computed in the kernel in f32, nothing is precomputed on the CPU: inv_freq =
 * exp2(i·(−2·log2 θ / D)) (the factor is a uniform computed in float64), angle = pos·inv_freq, then
 * reduced to [−π, π] with a two-constant 2π (Cody–Waite) before sin/cos, because WGSL only bounds
 * the error of sin/cos on [−π, π]. The rounding of pos·inv_freq in f32 costs up to ½ ulp(angle):
 * ≈ 1.2e-4 rad at positions near 4096 (2.4e-4 near 8192), which bounds the error against a float64
 * reference (tests use atol 1e-3 for |x| ≲ 4 at positions up to ~3000). The error grows linearly with
 * the position (≈ 4e-3 rad at 65536); contexts far beyond that want a float64-built cos/sin table
 * (a non-goal here).
 *
 * Non-goals: partial rotary dims, NTK / YaRN scaling (scale θ yourself), interleaved pairs, f16.
 *
 * Dimensions: B batch, T tokens, H heads, D head dim (even). Layout 'BTHD' (default) or 'BHTD'.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

export type RopeLayout = 'BTHD' | 'BHTD';

interface RopeParams {
  layout: RopeLayout;
  /** +1 forward rotation, −1 inverse (backward). */
  sign: 1 | -1;
}

const WG = 256;

/** One invocation per pair (i, i + D/2) of one head vector. */
export const ropeKernel = defineKernel({
  name: 'rope',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (B, T, H, D) or (B, H, T, D)
    { name: 'y', type: 'array<f32>', access: 'read_write' }, // same shape as x
  ],
  uniforms: [
    { name: 'pairs', type: 'u32' }, // B·T·H·D/2
    { name: 'half', type: 'u32' }, // D/2
    { name: 't', type: 'u32' },
    { name: 'h', type: 'u32' },
    { name: 'offset', type: 'u32' },
    { name: 'freq_exp', type: 'f32' }, // −2·log2(θ)/D
  ],
  workgroupSize: () => [WG],
  dispatch: (_p: RopeParams, u) => grid1d(Math.ceil(u.pairs / WG)),
  key: (p) => `${p.layout}|${p.sign}`,
  wgsl: (p) => /* wgsl */ `
const TWO_PI_HI: f32 = 6.28125;                 // 8 significant bits: k·TWO_PI_HI is exact for k < 2^16
const TWO_PI_LO: f32 = 0.0019353071795864769;   // 2π − TWO_PI_HI
const INV_TWO_PI: f32 = 0.15915494309189535;
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = gid.x + gid.y * nwg.x * WG_X;
  if (q >= u.pairs) { return; }
  let row = q / u.half;            // index of the head vector in memory order
  let i = q - row * u.half;        // pair index, 0 ≤ i < D/2
  let tok = ${p.layout === 'BTHD' ? '(row / u.h) % u.t' : 'row % u.t'};
  let angle = f32(u.offset + tok) * exp2(f32(i) * u.freq_exp);
  let k = round(angle * INV_TWO_PI);
  let r = (angle - k * TWO_PI_HI) - k * TWO_PI_LO; // angle mod 2π in [−π, π]
  let c = cos(r);
  let s = ${p.sign === 1 ? 'sin(r)' : '-sin(r)'};
  let a = row * 2u * u.half + i;
  let x1 = x[a];
  let x2 = x[a + u.half];
  y[a] = x1 * c - x2 * s;
  y[a + u.half] = x2 * c + x1 * s;
}`,
});

export interface RopeOptions {
  /** The tensor's shape in `layout` order: [B, T, H, D] for 'BTHD', [B, H, T, D] for 'BHTD'. D even. */
  shape: readonly [number, number, number, number];
  /** Axis order of x. Default 'BTHD'. */
  layout?: RopeLayout;
  /** Position of token t is offset + t (KV-cache decode). Default 0. */
  offset?: number;
  /** Frequency base θ. Default 10000. */
  theta?: number;
}

function rope(rt: Runtime, op: string, x: GpuBuffer, options: RopeOptions, sign: 1 | -1): GpuBuffer {
  const layout = options.layout ?? 'BTHD';
  const shape = options.shape;
  const offset = options.offset ?? 0;
  const theta = options.theta ?? 10000;
  if (layout !== 'BTHD' && layout !== 'BHTD') throw new Error(`${op}: layout must be 'BTHD' or 'BHTD', got '${String(layout)}'`);
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0) || shape[3] % 2 !== 0) {
    throw new Error(`${op}: shape must be 4 integers ≥ 0 in ${layout} order with an even head dim (shapes [${shape.join(', ')}])`);
  }
  const [b, d1, d2, d] = shape;
  const [t, h] = layout === 'BTHD' ? [d1, d2] : [d2, d1];
  const count = b * t * h * d;
  if (x.size !== count * 4) {
    throw new Error(`${op}: x must have ${count} elements (shapes [${shape.join(', ')}] (${layout}) and x [${x.size / 4}])`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + t > 2 ** 24) {
    throw new Error(`${op}: offset must be an integer with 0 ≤ offset + T ≤ 2^24 (offset ${offset}, shapes [${shape.join(', ')}])`);
  }
  if (!(theta > 1) || !Number.isFinite(theta)) throw new Error(`${op}: theta must be a finite number > 1, got ${theta}`);
  const limit = rt.limits.maxStorageBufferBindingSize;
  if (count * 4 > limit) throw new LimitError('maxStorageBufferBindingSize', count * 4, limit, `${op} x [${shape.join(', ')}]`);
  const y = rt.createBuffer(count * 4);
  if (count > 0) {
    rt.dispatch(ropeKernel, { layout, sign }, {
      buffers: { x, y },
      uniforms: { pairs: count / 2, half: d / 2, t, h, offset, freq_exp: (-2 * Math.log2(theta)) / d },
    });
  }
  return y;
}

/** Rotates each head vector's (i, i + D/2) pairs by (offset + t)·θ^(−2i/D). Saves nothing. */
export function ropeForward(rt: Runtime, x: GpuBuffer, options: RopeOptions): GpuBuffer {
  return rope(rt, 'ropeForward', x, options, 1);
}

/** dx = the inverse rotation of dy (RoPE is orthogonal), with the forward's options. */
export function ropeBackward(rt: Runtime, dy: GpuBuffer, options: RopeOptions): GpuBuffer {
  return rope(rt, 'ropeBackward', dy, options, -1);
}
