/**
 * Fused scaled-dot-product attention, forward: out = softmax(Q·Kᵀ·scale + mask)·V, flash style — the
 * (B, H, Tq, Tk) score matrix is never materialized. The backward pass is in attention-backward.ts.
 *
 * Dimension legend: B batch, H query heads, Hkv key/value heads (H % Hkv == 0; query head h reads
 * kv head h / (H / Hkv): grouped-query attention, Hkv = 1 is multi-query), Tq query tokens, Tk key
 * tokens, D head dim (a multiple of 4, at most 128; the kernels are specialized on it).
 * Layouts are contiguous: q, out (B, H, Tq, D); k, v (B, Hkv, Tk, D); lse (B, H, Tq).
 *
 * Masking:
 * - causal: query i sits at absolute position qOffset + i and attends to keys j ≤ qOffset + i.
 *   qOffset defaults to 0 (top-left alignment); KV-cache decode passes Tq = 1, Tk = past + 1,
 *   qOffset = past. Without `causal`, qOffset is ignored and Tq ≠ Tk is plain cross-attention.
 * - keyPadding: a (B, Tk) buffer of u32 or f32 flags, 1 = attend, 0 = padded. The kernel tests the
 *   32-bit pattern for zero, so u32 1 and f32 1.0 both mean "attend" (and only +0 means padded).
 * - A row with no key to attend (all padded, or Tk = 0) outputs 0 and lse = -Infinity, never NaN
 *   (NaN in the inputs does propagate, to the rows that see it).
 *
 * Design (tuned for lavapipe, correct anywhere): one invocation owns one query row. Its q row
 * (pre-scaled by scale·log2 e) and its output accumulator are private arrays of D/4 vec4s; it streams
 * the keys with an online softmax (running max m and sum l, base-2 exponentials), rescaling the
 * accumulator only when the max grows. No workgroup memory and no barriers; causal rows stop at
 * their last visible key. The arrays are sized by the specialized D/4, but the loops over them run to
 * the uniform `d4` (same value): with a constant bound Mesa unrolls them, and an unrolled D = 128
 * kernel takes LLVM tens of seconds to compile, for no measurable speed-up.
 * Saved for backward: lse = m + log(l) per row (natural log), plus out itself.
 *
 * Non-goals: dropout, attention bias tensors other than the key-padding mask, f16 storage.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

export interface AttentionOptions {
  batch: number;
  /** Query heads H. */
  heads: number;
  /** Key/value heads Hkv (default H); must divide H. */
  kvHeads?: number;
  tq: number;
  tk: number;
  /** D: a multiple of 4, at most ATTENTION_MAX_HEAD_DIM. */
  headDim: number;
  causal: boolean;
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** (B, Tk) u32 or f32 flags: nonzero = attend, 0 = padded. */
  keyPadding?: GpuBuffer;
  /** Absolute position of query 0 for the causal mask (default 0). */
  qOffset?: number;
}

export const ATTENTION_MAX_HEAD_DIM = 128;
/** Invocations (query or key rows) per workgroup in all attention kernels. */
export const ATTENTION_WG = 64;
const LOG2E = 1.4426950408889634;

/** Validated, defaulted attention shape (shared with the backward pass). */
export interface AttentionShape {
  batch: number;
  heads: number;
  kvHeads: number;
  tq: number;
  tk: number;
  headDim: number;
  causal: boolean;
  scale: number;
  qOffset: number;
  keyPadding: GpuBuffer | undefined;
}

/** Kernel specialization shared by every attention kernel. */
export interface AttentionParams {
  d4: number;
  causal: boolean;
  padded: boolean;
}

/** Checks options and buffer sizes; throws an Error naming `op` and the shapes. */
export function attentionShape(
  rt: Runtime,
  op: string,
  o: AttentionOptions,
  tensors: Record<string, { buf: GpuBuffer; kind: 'q' | 'kv' | 'row' }>,
): AttentionShape {
  const kvHeads = o.kvHeads ?? o.heads;
  const qOffset = o.qOffset ?? 0;
  const qShape = `[${o.batch}, ${o.heads}, ${o.tq}, ${o.headDim}]`;
  const kvShape = `[${o.batch}, ${kvHeads}, ${o.tk}, ${o.headDim}]`;
  const shapes = `(shapes q ${qShape} and k/v ${kvShape})`;
  for (const [name, v] of Object.entries({ batch: o.batch, heads: o.heads, kvHeads, tq: o.tq, tk: o.tk, qOffset })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${op}: ${name} must be a non-negative integer, got ${v} ${shapes}`);
  }
  if (!Number.isInteger(o.headDim) || o.headDim <= 0 || o.headDim % 4 !== 0 || o.headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new Error(`${op}: head dim D must be a positive multiple of 4 and at most ${ATTENTION_MAX_HEAD_DIM}, got ${o.headDim} ${shapes}`);
  }
  if (kvHeads === 0 ? o.heads !== 0 : o.heads % kvHeads !== 0) {
    throw new Error(`${op}: heads (${o.heads}) must be a multiple of kvHeads (${kvHeads}) ${shapes}`);
  }
  const scale = o.scale ?? 1 / Math.sqrt(o.headDim);
  if (!Number.isFinite(scale)) throw new Error(`${op}: scale must be finite, got ${scale} ${shapes}`);
  const maxBind = rt.limits.maxStorageBufferBindingSize;
  const elems = { q: o.batch * o.heads * o.tq * o.headDim, kv: o.batch * kvHeads * o.tk * o.headDim, row: o.batch * o.heads * o.tq };
  for (const [name, { buf, kind }] of Object.entries(tensors)) {
    const need = elems[kind] * 4;
    if (need > maxBind) throw new LimitError('maxStorageBufferBindingSize', need, maxBind, `${op}: ${name} ${shapes}`);
    if (buf.size < need) throw new Error(`${op}: ${name} holds ${buf.size / 4} floats, needs ${need / 4} ${shapes}`);
  }
  if (o.keyPadding && o.keyPadding.size < o.batch * o.tk * 4) {
    throw new Error(`${op}: keyPadding holds ${o.keyPadding.size / 4} values, needs B·Tk = ${o.batch * o.tk} ${shapes}`);
  }
  for (const d of [Math.ceil(o.tq / ATTENTION_WG), Math.ceil(o.tk / ATTENTION_WG), o.heads, o.batch]) {
    const max = rt.limits.maxComputeWorkgroupsPerDimension;
    if (d > max) throw new LimitError('maxComputeWorkgroupsPerDimension', d, max, `${op} dispatch ${shapes}`);
  }
  return { batch: o.batch, heads: o.heads, kvHeads, tq: o.tq, tk: o.tk, headDim: o.headDim, causal: o.causal, scale, qOffset, keyPadding: o.keyPadding };
}

export function attentionParams(s: AttentionShape): AttentionParams {
  return { d4: s.headDim / 4, causal: s.causal, padded: s.keyPadding !== undefined };
}

export const attentionKey = (p: AttentionParams): string => `d4=${p.d4},causal=${p.causal},pad=${p.padded}`;

/** Uniforms shared by the attention kernels (scale_log2 = scale·log2 e, d4 = D / 4). */
export function attentionUniforms(s: AttentionShape) {
  return {
    batch: s.batch,
    d4: s.headDim / 4,
    tq: s.tq,
    tk: s.tk,
    heads: s.heads,
    kv_heads: s.kvHeads,
    kv_group: s.kvHeads === 0 ? 1 : s.heads / s.kvHeads,
    q_offset: s.qOffset,
    scale_log2: s.scale * LOG2E,
    scale: s.scale,
    neg_inf: -Infinity,
  };
}

export const ATTENTION_UNIFORMS = [
  { name: 'batch', type: 'u32' },
  { name: 'd4', type: 'u32' },
  { name: 'tq', type: 'u32' },
  { name: 'tk', type: 'u32' },
  { name: 'heads', type: 'u32' },
  { name: 'kv_heads', type: 'u32' },
  { name: 'kv_group', type: 'u32' },
  { name: 'q_offset', type: 'u32' },
  { name: 'scale_log2', type: 'f32' },
  { name: 'scale', type: 'f32' },
  { name: 'neg_inf', type: 'f32' },
] as const;

/** WGSL const lines shared by the attention kernels. */
export function attentionConsts(p: AttentionParams): string {
  return `const D4: u32 = ${p.d4}u;
const CAUSAL: bool = ${p.causal};
const PADDED: bool = ${p.padded};
const MASKED: f32 = -3.0e38; // finite "minus infinity" for running maxima`;
}

export const attentionForwardKernel = defineKernel({
  name: 'attention_forward',
  bindings: [
    { name: 'q', type: 'array<vec4<f32>>', access: 'read' }, // (B, H, Tq, D/4)
    { name: 'k', type: 'array<vec4<f32>>', access: 'read' }, // (B, Hkv, Tk, D/4)
    { name: 'v', type: 'array<vec4<f32>>', access: 'read' }, // (B, Hkv, Tk, D/4)
    { name: 'pad', type: 'array<u32>', access: 'read' }, // (B, Tk) u32/f32 bits, 0 = padded
    { name: 'out', type: 'array<vec4<f32>>', access: 'read_write' }, // (B, H, Tq, D/4)
    { name: 'lse', type: 'array<f32>', access: 'read_write' }, // (B, H, Tq)
  ],
  uniforms: ATTENTION_UNIFORMS,
  workgroupSize: () => [ATTENTION_WG],
  dispatch: (_p: AttentionParams, u) => [Math.ceil(u.tq / ATTENTION_WG), u.heads, u.batch],
  key: attentionKey,
  wgsl: (p) => /* wgsl */ `
${attentionConsts(p)}

@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let h = gid.y;
  let b = gid.z;
  if (i >= u.tq) { return; }
  let row = (b * u.heads + h) * u.tq + i;
  let kv0 = (b * u.kv_heads + h / u.kv_group) * u.tk; // row of key 0 in k, v
  var qv: array<vec4<f32>, D4>;
  var o: array<vec4<f32>, D4>;
  for (var d = 0u; d < u.d4; d++) { qv[d] = q[row * D4 + d] * u.scale_log2; }
  var m = MASKED; // running max of scores (base 2)
  var l = 0.0; // running Σ 2^(s - m)
  var seen = false; // any visible key (decided by the masks, not by float values, so NaN propagates)
  var jEnd = u.tk;
  if (CAUSAL) { jEnd = min(u.tk, u.q_offset + i + 1u); }
  for (var j = 0u; j < jEnd; j++) {
    if (PADDED && pad[b * u.tk + j] == 0u) { continue; }
    seen = true;
    let kr = (kv0 + j) * D4;
    var acc = vec4<f32>(0.0);
    for (var d = 0u; d < u.d4; d++) { acc += qv[d] * k[kr + d]; }
    let s = dot(acc, vec4<f32>(1.0));
    if (s > m) { // new running max: rescale what was accumulated (corr = 0 the first time)
      let corr = exp2(m - s);
      l *= corr;
      for (var d = 0u; d < u.d4; d++) { o[d] *= corr; }
      m = s;
    }
    let pr = exp2(s - m);
    l += pr;
    for (var d = 0u; d < u.d4; d++) { o[d] += pr * v[kr + d]; }
  }
  if (seen) {
    let inv = 1.0 / l;
    for (var d = 0u; d < u.d4; d++) { out[row * D4 + d] = o[d] * inv; }
    lse[row] = (m + log2(l)) * ${Math.LN2};
  } else { // no visible key: output 0, lse = -inf
    for (var d = 0u; d < u.d4; d++) { out[row * D4 + d] = vec4<f32>(0.0); }
    lse[row] = u.neg_inf;
  }
}`,
});

/** A binding for the padding mask: the given buffer, or a dummy the kernel never reads. */
export function attentionPaddingBinding(rt: Runtime, s: AttentionShape): { pad: GpuBuffer; owned: boolean } {
  return s.keyPadding ? { pad: s.keyPadding, owned: false } : { pad: rt.createBuffer(16), owned: true };
}

/**
 * Attention forward. Returns out (B, H, Tq, D) and lse (B, H, Tq) — the per-row natural-log
 * logsumexp of the masked, scaled scores, saved for backward (-Infinity for rows with no visible key).
 */
export function attentionForward(
  rt: Runtime,
  q: GpuBuffer,
  k: GpuBuffer,
  v: GpuBuffer,
  options: AttentionOptions,
): { out: GpuBuffer; lse: GpuBuffer } {
  const s = attentionShape(rt, 'attentionForward', options, { q: { buf: q, kind: 'q' }, k: { buf: k, kind: 'kv' }, v: { buf: v, kind: 'kv' } });
  const out = rt.createBuffer(s.batch * s.heads * s.tq * s.headDim * 4);
  const lse = rt.createBuffer(s.batch * s.heads * s.tq * 4);
  const { pad, owned } = attentionPaddingBinding(rt, s);
  rt.dispatch(attentionForwardKernel, attentionParams(s), { buffers: { q, k, v, pad, out, lse }, uniforms: attentionUniforms(s) });
  if (owned) rt.release(pad);
  return { out, lse };
}
