/**
 * Fused scaled-dot-product attention, backward (the pair of attentionForward in attention.ts),
 * flash-attention-2 style, with no atomics and a deterministic summation order:
 *   1. attention_bwd_delta: per query row, delta = Σ_d dout·out, stored with lse·log2 e as one vec2
 *      per row ("stats", keeping the next kernel within 8 storage bindings).
 *   2. attention_bwd_dkdv: one invocation per key row j (of a kv head); loops over the query heads
 *      sharing that kv head and their query rows, recomputing P from q, k and lse:
 *        p = exp(s − lse),  dv_j += p·dout_i,  ds = p·(dout_i·v_j − delta_i),  dk_j += ds·q_i·scale.
 *   3. attention_bwd_dq: one invocation per query row; loops over keys:
 *        dq_i += ds·k_j·scale.
 * Each invocation keeps its own rows and its gradient accumulators in private arrays of D/4 vec4s
 * (loops bounded by the uniform d4; see attention.ts on why they are not unrolled).
 * Masked pairs (causal, padding) have p = 0 and contribute nothing; rows with lse = -inf (no visible
 * key) get dq = 0, and padded keys get dk = dv = 0.
 *
 * Dimension legend: B batch, H query heads, Hkv kv heads, Tq/Tk query/key tokens, D head dim.
 * Non-goals: dropout, gradients of the padding mask or of scale.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import {
  ATTENTION_UNIFORMS,
  ATTENTION_WG,
  attentionConsts,
  attentionKey,
  attentionParams,
  attentionShape,
  attentionUniforms,
  attentionPaddingBinding,
  type AttentionOptions,
  type AttentionParams,
} from './attention.js';

const LOG2E = 1.4426950408889634;

export const attentionBwdDeltaKernel = defineKernel({
  name: 'attention_bwd_delta',
  bindings: [
    { name: 'out', type: 'array<vec4<f32>>', access: 'read' }, // (B, H, Tq, D/4)
    { name: 'dout', type: 'array<vec4<f32>>', access: 'read' }, // (B, H, Tq, D/4)
    { name: 'lse', type: 'array<f32>', access: 'read' }, // (B, H, Tq)
    { name: 'stats', type: 'array<vec2<f32>>', access: 'read_write' }, // (B, H, Tq): (lse·log2 e, delta)
  ],
  uniforms: ATTENTION_UNIFORMS,
  workgroupSize: () => [ATTENTION_WG],
  dispatch: (_p: AttentionParams, u) => [Math.ceil(u.tq / ATTENTION_WG), u.heads, u.batch],
  key: attentionKey,
  wgsl: (p) => /* wgsl */ `
${attentionConsts(p)}

@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= u.tq) { return; }
  let row = (gid.z * u.heads + gid.y) * u.tq + gid.x;
  var acc = vec4<f32>(0.0);
  for (var d = 0u; d < u.d4; d++) { acc += out[row * D4 + d] * dout[row * D4 + d]; }
  let delta = dot(acc, vec4<f32>(1.0));
  stats[row] = vec2<f32>(lse[row] * ${LOG2E}, delta);
}`,
});

export const attentionBwdDkDvKernel = defineKernel({
  name: 'attention_bwd_dkdv',
  bindings: [
    { name: 'q', type: 'array<vec4<f32>>', access: 'read' }, // (B, H, Tq, D/4)
    { name: 'k', type: 'array<vec4<f32>>', access: 'read' }, // (B, Hkv, Tk, D/4)
    { name: 'v', type: 'array<vec4<f32>>', access: 'read' }, // (B, Hkv, Tk, D/4)
    { name: 'dout', type: 'array<vec4<f32>>', access: 'read' }, // (B, H, Tq, D/4)
    { name: 'stats', type: 'array<vec2<f32>>', access: 'read' }, // (B, H, Tq): (lse·log2 e, delta)
    { name: 'pad', type: 'array<u32>', access: 'read' }, // (B, Tk), 0 = padded
    { name: 'dk', type: 'array<vec4<f32>>', access: 'read_write' }, // (B, Hkv, Tk, D/4)
    { name: 'dv', type: 'array<vec4<f32>>', access: 'read_write' }, // (B, Hkv, Tk, D/4)
  ],
  uniforms: ATTENTION_UNIFORMS,
  workgroupSize: () => [ATTENTION_WG],
  dispatch: (_p: AttentionParams, u) => [Math.ceil(u.tk / ATTENTION_WG), u.kv_heads, u.batch],
  key: attentionKey,
  wgsl: (p) => /* wgsl */ `
${attentionConsts(p)}

@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let hk = gid.y;
  let b = gid.z;
  if (j >= u.tk) { return; }
  let kr = ((b * u.kv_heads + hk) * u.tk + j) * D4;
  var kv: array<vec4<f32>, D4>; // k_j · scale · log2 e
  var vv: array<vec4<f32>, D4>;
  var dka: array<vec4<f32>, D4>;
  var dva: array<vec4<f32>, D4>;
  for (var d = 0u; d < u.d4; d++) { kv[d] = k[kr + d] * u.scale_log2; vv[d] = v[kr + d]; }
  if (!PADDED || pad[b * u.tk + j] != 0u) {
    var i0 = 0u;
    if (CAUSAL && j > u.q_offset) { i0 = j - u.q_offset; } // first query that sees key j
    for (var g = 0u; g < u.kv_group; g++) {
      let rows = (b * u.heads + hk * u.kv_group + g) * u.tq; // query head hk·G + g
      for (var i = i0; i < u.tq; i++) {
        let st = stats[rows + i];
        if (st.x < MASKED) { continue; } // lse = -inf: the row saw no key
        let qr = (rows + i) * D4;
        var sacc = vec4<f32>(0.0);
        var pacc = vec4<f32>(0.0);
        for (var d = 0u; d < u.d4; d++) { sacc += kv[d] * q[qr + d]; pacc += vv[d] * dout[qr + d]; }
        let pr = exp2(dot(sacc, vec4<f32>(1.0)) - st.x); // P_ij
        let ds = pr * (dot(pacc, vec4<f32>(1.0)) - st.y); // P_ij (dP_ij − delta_i)
        for (var d = 0u; d < u.d4; d++) { dva[d] += pr * dout[qr + d]; dka[d] += ds * q[qr + d]; }
      }
    }
  }
  for (var d = 0u; d < u.d4; d++) { dk[kr + d] = dka[d] * u.scale; dv[kr + d] = dva[d]; }
}`,
});

export const attentionBwdDqKernel = defineKernel({
  name: 'attention_bwd_dq',
  bindings: [
    { name: 'q', type: 'array<vec4<f32>>', access: 'read' }, // (B, H, Tq, D/4)
    { name: 'k', type: 'array<vec4<f32>>', access: 'read' }, // (B, Hkv, Tk, D/4)
    { name: 'v', type: 'array<vec4<f32>>', access: 'read' }, // (B, Hkv, Tk, D/4)
    { name: 'dout', type: 'array<vec4<f32>>', access: 'read' }, // (B, H, Tq, D/4)
    { name: 'stats', type: 'array<vec2<f32>>', access: 'read' }, // (B, H, Tq): (lse·log2 e, delta)
    { name: 'pad', type: 'array<u32>', access: 'read' }, // (B, Tk), 0 = padded
    { name: 'dq', type: 'array<vec4<f32>>', access: 'read_write' }, // (B, H, Tq, D/4)
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
  let kv0 = (b * u.kv_heads + h / u.kv_group) * u.tk;
  var qv: array<vec4<f32>, D4>; // q_i · scale · log2 e
  var gv: array<vec4<f32>, D4>; // dout_i
  var dqa: array<vec4<f32>, D4>;
  for (var d = 0u; d < u.d4; d++) { qv[d] = q[row * D4 + d] * u.scale_log2; gv[d] = dout[row * D4 + d]; }
  let st = stats[row];
  var jEnd = u.tk;
  if (CAUSAL) { jEnd = min(u.tk, u.q_offset + i + 1u); }
  if (st.x < MASKED) { jEnd = 0u; } // lse = -inf: the row saw no key, dq = 0
  for (var j = 0u; j < jEnd; j++) {
    if (PADDED && pad[b * u.tk + j] == 0u) { continue; }
    let kr = (kv0 + j) * D4;
    var sacc = vec4<f32>(0.0);
    var pacc = vec4<f32>(0.0);
    for (var d = 0u; d < u.d4; d++) { sacc += qv[d] * k[kr + d]; pacc += gv[d] * v[kr + d]; }
    let pr = exp2(dot(sacc, vec4<f32>(1.0)) - st.x);
    let ds = pr * (dot(pacc, vec4<f32>(1.0)) - st.y);
    for (var d = 0u; d < u.d4; d++) { dqa[d] += ds * k[kr + d]; }
  }
  for (var d = 0u; d < u.d4; d++) { dq[row * D4 + d] = dqa[d] * u.scale; }
}`,
});

/**
 * Attention backward: gradients of the loss with respect to q, k and v given dout = ∂loss/∂out and
 * what attentionForward saved (out, lse). Same options as the forward. For grouped-query attention dk
 * and dv (B, Hkv, Tk, D) sum over the query heads sharing each kv head.
 */
export function attentionBackward(
  rt: Runtime,
  q: GpuBuffer,
  k: GpuBuffer,
  v: GpuBuffer,
  out: GpuBuffer,
  lse: GpuBuffer,
  dout: GpuBuffer,
  options: AttentionOptions,
): { dq: GpuBuffer; dk: GpuBuffer; dv: GpuBuffer } {
  const s = attentionShape(rt, 'attentionBackward', options, {
    q: { buf: q, kind: 'q' },
    k: { buf: k, kind: 'kv' },
    v: { buf: v, kind: 'kv' },
    out: { buf: out, kind: 'q' },
    lse: { buf: lse, kind: 'row' },
    dout: { buf: dout, kind: 'q' },
  });
  const rows = s.batch * s.heads * s.tq;
  const kvBytes = s.batch * s.kvHeads * s.tk * s.headDim * 4;
  const params = attentionParams(s);
  const uniforms = attentionUniforms(s);
  const stats = rt.createBuffer(rows * 8);
  const dq = rt.createBuffer(rows * s.headDim * 4);
  const dk = rt.createBuffer(kvBytes);
  const dv = rt.createBuffer(kvBytes);
  const { pad, owned } = attentionPaddingBinding(rt, s);
  rt.dispatch(attentionBwdDeltaKernel, params, { buffers: { out, dout, lse, stats }, uniforms });
  rt.dispatch(attentionBwdDkDvKernel, params, { buffers: { q, k, v, dout, stats, pad, dk, dv }, uniforms });
  rt.dispatch(attentionBwdDqKernel, params, { buffers: { q, k, v, dout, stats, pad, dq }, uniforms });
  rt.release(stats);
  if (owned) rt.release(pad);
  return { dq, dk, dv };
}
