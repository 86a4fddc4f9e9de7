/**
 * SGD with momentum (heavy-ball or Nesterov) over every parameter tensor in ONE dispatch, on the
 * same segments.ts arenas, ctl buffer and clip record as `maskedAdamW` (adamw.ts). PyTorch's rule,
 * with g' = g · clipScale + wd·W and the tensor's own lr and wd:
 *   buf ← g'                                   at step 1
 *   buf ← μ·buf + (1 − dampening)·g'           later steps
 *   W   ← W − lr·(g' + μ·buf)  (Nesterov)      or   W ← W − lr·buf
 * μ = 0 is plain SGD (buf is still written). A set skip flag in the clip record skips the step.
 *
 * Non-goals: masks (use maskedAdamW's), per-tensor momentum.
 * Dimensions: N arena elements, T tensors, K chunks (one workgroup each).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import { OPTIMIZER_CHUNK_PROLOGUE, optimizerControl } from './adamw.js';
import { GRAD_NORM_RECORD } from './grad-norm.js';
import type { SegmentTable } from './segments.js';

const WG = 256;

export const sgdMomentumKernel = defineKernel({
  name: 'sgd_momentum',
  bindings: [
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (K, 2): tensor, first arena element
    { name: 'ctl', type: 'array<u32>', access: 'read' }, // see optimizerControl
    { name: 'W', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
    { name: 'g', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'buf', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,) momentum buffer
  ],
  uniforms: [
    { name: 'chunkCount', type: 'u32' },
    { name: 'chunkSize', type: 'u32' },
    { name: 'tensors', type: 'u32' },
    { name: 'first', type: 'u32' },
    { name: 'momentum', type: 'f32' },
    { name: 'dampening', type: 'f32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p: { nesterov: boolean }, u) => grid1d(u.chunkCount),
  key: (p) => (p.nesterov ? 'nesterov' : 'heavy-ball'),
  wgsl: (p) => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
${OPTIMIZER_CHUNK_PROLOGUE}
  for (var e = start + 4u * lid; e < end; e += 4u * WG_X) {
    let j = e / 4u;
    let wo = W[j];
    let gv = g[j] * scale + wd * wo;
    var bn = gv;
    if (u.first == 0u) { bn = u.momentum * buf[j] + (1.0 - u.dampening) * gv; }
    let wn = wo - lr * ${p.nesterov ? '(gv + u.momentum * bn)' : 'bn'};
    if (e + 4u <= end) {
      W[j] = wn; buf[j] = bn;
    } else { // a tensor's partial last vec4: padding lanes are never written
      for (var k = 0u; k < end - e; k++) { W[j][k] = wn[k]; buf[j][k] = bn[k]; }
    }
  }
}`,
});

export interface SgdArenas {
  params: GpuBuffer; // (N,) updated in place
  grads: GpuBuffer; // (N,)
  momentumBuffer: GpuBuffer; // (N,) updated in place; read only from step 2 on
}

export interface SgdOptions {
  /** 1-based step number; step 1 initializes the momentum buffer with g'. */
  step: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  /** Clip record from `gradNormSquared`; omitted: scale 1. */
  clip?: GpuBuffer;
}

/** One SGD step over every tensor of `table`; `hyper` is f32 (T, 2): (lr, weight decay) per tensor. */
export function sgdMomentum(rt: Runtime, arenas: SgdArenas, table: SegmentTable, hyper: GpuBuffer, options: SgdOptions): void {
  const op = 'sgdMomentum';
  const n = table.arenaLength;
  const tensors = table.lengths.length;
  const { step, momentum = 0.9, dampening = 0, nesterov = false, clip } = options;
  if (!Number.isInteger(step) || step < 1) throw new Error(`${op}: step must be an integer ≥ 1, got ${step}`);
  if (!(momentum >= 0)) throw new Error(`${op}: momentum must be ≥ 0, got ${momentum}`);
  if (nesterov && (momentum === 0 || dampening !== 0)) throw new Error(`${op}: Nesterov needs momentum > 0 and zero dampening`);
  for (const [name, b] of Object.entries(arenas)) {
    if (b.size !== n * 4) throw new Error(`${op}: ${name} arena has ${b.size / 4} elements, the segment table ${n} (shapes [${b.size / 4}] and [${n}])`);
  }
  if (hyper.size < tensors * 8) {
    throw new Error(`${op}: hyper-parameters hold ${hyper.size / 4} floats, need (T, 2) for T = ${tensors} (shapes [${hyper.size / 4}] and [${tensors}, 2])`);
  }
  if (clip && clip.size < GRAD_NORM_RECORD.length * 4) throw new Error(`${op}: clip record has ${clip.size / 4} floats, need ${GRAD_NORM_RECORD.length}`);
  const maxBinding = rt.limits.maxStorageBufferBindingSize;
  if (n * 4 > maxBinding) throw new LimitError('maxStorageBufferBindingSize', n * 4, maxBinding, `${op}: arena of ${n} elements`);
  if (table.chunkCount === 0) return;
  const ctl = optimizerControl(rt, table, hyper, clip);
  const arena = (buffer: GpuBuffer) => ({ buffer, offset: 0, size: n * 4 });
  rt.dispatch(sgdMomentumKernel, { nesterov }, {
    buffers: { chunks: table.chunks, ctl, W: arena(arenas.params), g: arena(arenas.grads), buf: arena(arenas.momentumBuffer) },
    uniforms: {
      chunkCount: table.chunkCount,
      chunkSize: table.chunkSize,
      tensors,
      first: step === 1 ? 1 : 0,
      momentum,
      dampening,
    },
  });
  rt.release(ctl);
}
