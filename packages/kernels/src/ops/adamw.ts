/**
 * Masked AdamW over every parameter tensor in ONE dispatch (multi-tensor apply on segments.ts arenas).
 *
 * Per element, with g' = g · clipScale, the step t's bias corrections bc1 = 1 − β1^t, bc2 = 1 − β2^t
 * (host-computed) and the tensor's own lr and weight decay wd:
 *   m ← β1·m + (1 − β1)·g'        v ← β2·v + (1 − β2)·g'²
 *   W ← W − lr·( (m/bc1) / (√(v/bc2) + eps) + wd·W )          (decoupled decay, on the old W)
 * fused with one masking mode:
 *   'none'    plain AdamW;
 *   'bits'    hard mask: bit (i & 31) of word i >> 5 set = arena element i updates; an unset element
 *             keeps W, m and v bit-identical (a vec4 with no bit set is not written at all; in a
 *             partly set vec4 the unset lanes are stored back with their old value);
 *   'spider'  SPIDER's soft allocation after the update: W ← W0 + c ⊙ (W_new − W0), c per element
 *             (already normalized to [0, 1]); the moments are updated unmasked.
 * Gradient clipping reads the clip record of `gradNormSquared` (grad-norm.ts) on the GPU; when that
 * record's skip flag is set (non-finite gradient norm) the whole step is skipped. Without a clip
 * record the scale is 1 and a NaN gradient propagates into its own element's W, m, v only.
 *
 * Layout: workgroup w updates chunk w of the segment table, 4 elements (one vec4) per invocation
 * per iteration; a tensor's last vec4 may be partial, its lanes past the end are padding and are never
 * written. The per-tensor segment table, the (T, 2) hyper-parameters and the clip record are packed
 * into one small `ctl` buffer (GPU-side copies, ordered with the step), so the widest mode binds 8
 * storage buffers — WebGPU's default maxStorageBuffersPerShaderStage.
 *
 * Non-goals: AMSGrad, fp16 state, per-element learning rates.
 * Dimensions: N arena elements (segments.ts padding included), T tensors, K chunks.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d, type BindingSpec } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import { GRAD_NORM_RECORD } from './grad-norm.js';
import type { SegmentTable } from './segments.js';

const WG = 256;

export type AdamWMaskMode = 'none' | 'bits' | 'spider';

export type AdamWMask =
  | { mode: 'none' }
  /** u32 words covering ≥ N bits, indexed by arena element. */
  | { mode: 'bits'; bits: GpuBuffer }
  /** W0: pre-trained values, c: allocation in [0, 1]; both arenas of the table. */
  | { mode: 'spider'; w0: GpuBuffer; c: GpuBuffer };

export interface AdamWArenas {
  params: GpuBuffer; // (N,) updated in place
  grads: GpuBuffer; // (N,)
  m: GpuBuffer; // (N,) first moment, updated in place
  v: GpuBuffer; // (N,) second moment, updated in place
}

export interface AdamWOptions {
  /** 1-based step number t (bias correction). */
  step: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Clip record from `gradNormSquared` (scale and skip flag); omitted: no clipping. */
  clip?: GpuBuffer;
  mask?: AdamWMask;
}

const common = [
  { name: 'chunks', type: 'array<u32>', access: 'read' }, // (K, 2): tensor, first arena element
  // ctl words: [0, 4) clip record (f32 bits), [4, 4 + 2T) segments (offset, length),
  // [4 + 2T, 4 + 4T) hyper-parameters (lr, wd as f32 bits)
  { name: 'ctl', type: 'array<u32>', access: 'read' },
  { name: 'W', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
  { name: 'g', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
  { name: 'm', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
  { name: 'v', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
] as const satisfies readonly BindingSpec[];

const uniforms = [
  { name: 'chunkCount', type: 'u32' },
  { name: 'chunkSize', type: 'u32' },
  { name: 'tensors', type: 'u32' },
  { name: 'beta1', type: 'f32' },
  { name: 'beta2', type: 'f32' },
  { name: 'eps', type: 'f32' },
  { name: 'bc1', type: 'f32' },
  { name: 'bc2', type: 'f32' },
] as const;

function adamwWgsl(mode: AdamWMaskMode): string {
  const maskBits =
    mode === 'bits'
      ? `live = inRange & (((vec4<u32>(mask[e >> 5u]) >> (vec4<u32>(e & 31u) + lanes)) & vec4<u32>(1u)) == vec4<u32>(1u));
    if (!any(live)) { continue; }`
      : '';
  const soft = mode === 'spider' ? `let w0 = W0[j]; wn = w0 + c[j] * (wn - w0); // W0 + c ⊙ (W_new − W0)` : '';
  return /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
${OPTIMIZER_CHUNK_PROLOGUE}
  let lanes = vec4<u32>(0u, 1u, 2u, 3u);
  for (var e = start + 4u * lid; e < end; e += 4u * WG_X) {
    let j = e / 4u;
    let inRange = lanes < vec4<u32>(end - e); // lanes past the tensor's end are padding
    var live = inRange;
    ${maskBits}
    let gv = g[j] * scale;
    let wo = W[j];
    let mo = m[j];
    let vo = v[j];
    let mn = u.beta1 * mo + (1.0 - u.beta1) * gv;
    let vn = u.beta2 * vo + (1.0 - u.beta2) * gv * gv;
    var wn = wo - lr * ((mn / u.bc1) / (sqrt(vn / u.bc2) + u.eps) + wd * wo);
    ${soft}
    if (all(inRange)) {
      // masked lanes get their own old value back (bit-identical): full-vec4 stores beat per-lane ones
      W[j] = select(wo, wn, live); m[j] = select(mo, mn, live); v[j] = select(vo, vn, live);
    } else { // a tensor's partial last vec4: padding lanes are never written
      for (var k = 0u; k < 4u; k++) {
        if (live[k]) { W[j][k] = wn[k]; m[j][k] = mn[k]; v[j][k] = vn[k]; }
      }
    }
  }
}`;
}

type AdamWUniforms = Readonly<Record<(typeof uniforms)[number]['name'], number>>;

const adamwSpec = (mode: AdamWMaskMode) => ({
  name: `adamw_${mode}`,
  uniforms,
  workgroupSize: () => [WG] as const,
  dispatch: (_p: undefined, u: AdamWUniforms) => grid1d(u.chunkCount),
  key: () => '',
  wgsl: () => adamwWgsl(mode),
});

export const adamwKernels = {
  none: defineKernel({ ...adamwSpec('none'), bindings: common }),
  bits: defineKernel({
    ...adamwSpec('bits'),
    bindings: [...common, { name: 'mask', type: 'array<u32>', access: 'read' }], // (⌈N/32⌉,)
  }),
  spider: defineKernel({
    ...adamwSpec('spider'),
    bindings: [
      ...common,
      { name: 'W0', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
      { name: 'c', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    ],
  }),
};

/**
 * WGSL opening every multi-tensor optimizer kernel: decodes the `ctl` layout (see optimizerControl)
 * into this workgroup's chunk [start, end) of tensor t, the clip scale, and t's lr and weight decay.
 * Returns early for padding workgroups and when gradNormSquared flagged a non-finite norm (the
 * whole step is then a no-op). Needs `wg`, `nwg` and the uniforms chunkCount, chunkSize, tensors.
 */
export const OPTIMIZER_CHUNK_PROLOGUE = /* wgsl */ `  let w = wg.x + wg.y * nwg.x;
  if (w >= u.chunkCount || ctl[${GRAD_NORM_RECORD.skip}] != 0u) { return; }
  let scale = bitcast<f32>(ctl[${GRAD_NORM_RECORD.scale}]);
  let t = chunks[2u * w];
  let start = chunks[2u * w + 1u];
  let end = min(start + u.chunkSize, ctl[4u + 2u * t] + ctl[5u + 2u * t]);
  let hp = 4u + 2u * u.tensors + 2u * t;
  let lr = bitcast<f32>(ctl[hp]);
  let wd = bitcast<f32>(ctl[hp + 1u]);`;

/**
 * The `ctl` buffer of the multi-tensor optimizer kernels (u32 words): [0, 4) the clip record (or
 * scale 1, no skip), [4, 4 + 2T) the segment table, [4 + 2T, 4 + 4T) the (T, 2) hyper-parameters.
 * Filled by GPU-side copies, ordered after the work that produced `clip`. Caller releases it.
 */
export function optimizerControl(rt: Runtime, table: SegmentTable, hyper: GpuBuffer, clip?: GpuBuffer): GpuBuffer {
  const tensors = table.lengths.length;
  const head = GRAD_NORM_RECORD.length * 4;
  const ctl = rt.createBuffer(head + 16 * tensors);
  if (clip) rt.copy(clip, ctl, head);
  else rt.write(ctl, new Float32Array([0, 0, 1, 0])); // scale 1, no skip
  rt.copy(table.segments, ctl, tensors * 8, 0, head);
  rt.copy(hyper, ctl, tensors * 8, 0, head + tensors * 8);
  return ctl;
}

/**
 * One AdamW step over every tensor of `table`, in place on `arenas.params`, `.m`, `.v`.
 * `hyper` is f32 (T, 2): (lr, weight decay) per tensor (parameter groups without extra dispatches).
 */
export function maskedAdamW(rt: Runtime, arenas: AdamWArenas, table: SegmentTable, hyper: GpuBuffer, options: AdamWOptions): void {
  const op = 'maskedAdamW';
  const n = table.arenaLength;
  const tensors = table.lengths.length;
  const { step, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, clip, mask = { mode: 'none' } } = options;
  if (!Number.isInteger(step) || step < 1) throw new Error(`${op}: step must be an integer ≥ 1, got ${step}`);
  for (const [name, b] of [['beta1', beta1], ['beta2', beta2]] as const) {
    if (!(b >= 0 && b < 1)) throw new Error(`${op}: ${name} must be in [0, 1), got ${b}`);
  }
  if (!(eps > 0)) throw new Error(`${op}: eps must be positive, got ${eps}`);
  const arenas2: [string, GpuBuffer][] = [['params', arenas.params], ['grads', arenas.grads], ['m', arenas.m], ['v', arenas.v]];
  if (mask.mode === 'spider') arenas2.push(['w0', mask.w0], ['c', mask.c]);
  for (const [name, b] of arenas2) {
    if (b.size !== n * 4) throw new Error(`${op}: ${name} arena has ${b.size / 4} elements, the segment table ${n} (shapes [${b.size / 4}] and [${n}])`);
  }
  if (hyper.size < tensors * 8) {
    throw new Error(`${op}: hyper-parameters hold ${hyper.size / 4} floats, need (T, 2) for T = ${tensors} (shapes [${hyper.size / 4}] and [${tensors}, 2])`);
  }
  const words = Math.ceil(n / 32);
  if (mask.mode === 'bits' && mask.bits.size < words * 4) {
    throw new Error(`${op}: bit mask has ${mask.bits.size / 4} words, need ${words} for ${n} arena elements (shapes [${mask.bits.size / 4}] and [${words}])`);
  }
  if (clip && clip.size < GRAD_NORM_RECORD.length * 4) throw new Error(`${op}: clip record has ${clip.size / 4} floats, need ${GRAD_NORM_RECORD.length}`);
  const maxBinding = rt.limits.maxStorageBufferBindingSize;
  if (n * 4 > maxBinding) throw new LimitError('maxStorageBufferBindingSize', n * 4, maxBinding, `${op}: arena of ${n} elements`);
  if (table.chunkCount === 0) return;

  const ctl = optimizerControl(rt, table, hyper, clip);

  const arena = (buffer: GpuBuffer) => ({ buffer, offset: 0, size: n * 4 });
  const base = { chunks: table.chunks, ctl, W: arena(arenas.params), g: arena(arenas.grads), m: arena(arenas.m), v: arena(arenas.v) };
  const u = {
    chunkCount: table.chunkCount,
    chunkSize: table.chunkSize,
    tensors,
    beta1,
    beta2,
    eps,
    bc1: 1 - beta1 ** step,
    bc2: 1 - beta2 ** step,
  };
  if (mask.mode === 'none') rt.dispatch(adamwKernels.none, undefined, { buffers: base, uniforms: u });
  else if (mask.mode === 'bits') {
    rt.dispatch(adamwKernels.bits, undefined, { buffers: { ...base, mask: { buffer: mask.bits, offset: 0, size: words * 4 } }, uniforms: u });
  } else if (mask.mode === 'spider') {
    rt.dispatch(adamwKernels.spider, undefined, { buffers: { ...base, W0: arena(mask.w0), c: arena(mask.c) }, uniforms: u });
  } else {
    throw new Error(`${op}: unknown mask mode ${(mask satisfies never as { mode: string }).mode}`);
  }
  rt.release(ctl);
}
