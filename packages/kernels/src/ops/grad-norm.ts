/**
 * Global gradient norm over a multi-tensor arena, for clipping without a CPU round trip.
 *
 * Two dispatches: workgroup w sums the squares of chunk w (partial sums, one per chunk), then one
 * workgroup reduces the partials and writes the clip record the optimizer kernels bind:
 *   out[0] = Σg² (f32 accumulation), out[1] = ‖g‖₂, out[2] = clip scale, out[3] = skip flag.
 * Clip scale = min(1, maxNorm / (‖g‖ + 1e-6)) with clipping on, 1 with it off.
 * A non-finite total (a NaN or ±Inf gradient, or squares overflowing f32) sets the skip flag to 1:
 * optimizer kernels then leave every weight and moment as it was (the step is skipped, as a loss
 * scaler would), and the NaN/Inf stays in out[0], out[1] for the caller to detect.
 *
 * Non-goals: per-tensor norms, overflow-safe scaled accumulation (‖g‖ ≥ ~1.8e19 reads as Inf).
 * Dimensions: N arena elements, T tensors, K chunks (one workgroup each).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import type { SegmentTable } from './segments.js';

const WG = 256;

/** Word offsets of the clip record written by `gradNormSquared` (4 f32). */
export const GRAD_NORM_RECORD = { sumSquares: 0, norm: 1, scale: 2, skip: 3, length: 4 } as const;

const reduceWorkgroup = /* wgsl */ `
var<workgroup> acc: array<f32, WG_X>;
// Tree sum of one value per invocation; every invocation must call it. Result in acc[0].
fn workgroupSum(lid: u32, x: f32) {
  acc[lid] = x;
  workgroupBarrier();
  for (var off = WG_X / 2u; off > 0u; off >>= 1u) {
    if (lid < off) { acc[lid] += acc[lid + off]; }
    workgroupBarrier();
  }
}`;

export const gradNormPartialKernel = defineKernel({
  name: 'grad_norm_partial',
  bindings: [
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (K, 2): tensor, first arena element
    { name: 'segments', type: 'array<u32>', access: 'read' }, // (T, 2): offset, length
    { name: 'g', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'partial', type: 'array<f32>', access: 'read_write' }, // (K,)
  ],
  uniforms: [
    { name: 'chunkCount', type: 'u32' },
    { name: 'chunkSize', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(u.chunkCount),
  key: () => '',
  wgsl: () => /* wgsl */ `
${reduceWorkgroup}
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w >= u.chunkCount) { return; } // workgroup-uniform
  let t = chunks[2u * w];
  let start = chunks[2u * w + 1u];
  let end = min(start + u.chunkSize, segments[2u * t] + segments[2u * t + 1u]);
  var s = 0.0;
  // start is a multiple of 4 (aligned offsets, chunk sizes multiple of 4); only the tensor's last
  // vec4 can be partial, and its lanes past the end are padding: zero them.
  for (var e = start + 4u * lid; e < end; e += 4u * WG_X) {
    let x = select(vec4<f32>(0.0), g[e / 4u], vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end - e));
    s += dot(x, x);
  }
  workgroupSum(lid, s);
  if (lid == 0u) { partial[w] = acc[0]; }
}`,
});

export const gradNormFinalKernel = defineKernel({
  name: 'grad_norm_final',
  bindings: [
    { name: 'partial', type: 'array<f32>', access: 'read' }, // (K,)
    { name: 'record', type: 'array<f32>', access: 'read_write' }, // (4,): Σg², ‖g‖, scale, skip
  ],
  uniforms: [
    { name: 'count', type: 'u32' },
    { name: 'clip', type: 'u32' },
    { name: 'maxNorm', type: 'f32' },
  ],
  workgroupSize: () => [WG],
  dispatch: () => [1, 1, 1],
  key: () => '',
  wgsl: () => /* wgsl */ `
${reduceWorkgroup}
@compute @workgroup_size(WG_X)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < u.count; i += WG_X) { s += partial[i]; }
  workgroupSum(lid, s);
  if (lid == 0u) {
    let total = acc[0];
    let norm = sqrt(total);
    // Exponent all ones = NaN or Inf (bit test: comparisons with NaN may be folded away).
    let finite = (bitcast<u32>(total) & 0x7f800000u) != 0x7f800000u;
    var scale = 1.0;
    if (u.clip != 0u && finite) { scale = min(1.0, u.maxNorm / (norm + 1e-6)); }
    record[0] = total;
    record[1] = norm;
    record[2] = scale;
    record[3] = select(1.0, 0.0, finite);
  }
}`,
});

export interface GradNormOptions {
  /** Clip to this global norm (scale = min(1, maxNorm / (‖g‖ + 1e-6))); omitted: scale 1. */
  maxNorm?: number;
}

/**
 * ‖g‖² of every tensor in the arena `g` (laid out by `table`), reduced on the GPU. Returns a new
 * 4-f32 clip record (see GRAD_NORM_RECORD) to pass to `maskedAdamW({ clip })` and to read for logging.
 */
export function gradNormSquared(rt: Runtime, g: GpuBuffer, table: SegmentTable, options: GradNormOptions = {}): GpuBuffer {
  const n = table.arenaLength;
  if (g.size !== n * 4) {
    throw new Error(`gradNormSquared: gradient arena has ${g.size / 4} elements, the segment table ${n} (shapes [${g.size / 4}] and [${n}])`);
  }
  const { maxNorm } = options;
  if (maxNorm !== undefined && !(maxNorm > 0 && Number.isFinite(maxNorm))) {
    throw new Error(`gradNormSquared: maxNorm must be a positive finite number, got ${maxNorm}`);
  }
  const k = table.chunkCount;
  const partial = rt.createBuffer(Math.max(k, 1) * 4);
  const record = rt.createBuffer(GRAD_NORM_RECORD.length * 4);
  if (k > 0) {
    rt.dispatch(gradNormPartialKernel, undefined, {
      buffers: { chunks: table.chunks, segments: table.segments, g: { buffer: g, offset: 0, size: n * 4 }, partial },
      uniforms: { chunkCount: k, chunkSize: table.chunkSize },
    });
  }
  rt.dispatch(gradNormFinalKernel, undefined, {
    buffers: { partial, record },
    uniforms: { count: k, clip: maxNorm === undefined ? 0 : 1, maxNorm: maxNorm ?? 0 },
  });
  rt.release(partial);
  return record;
}
