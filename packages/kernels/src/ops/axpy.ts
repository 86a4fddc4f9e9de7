/**
 * axpy: y ← a·x + y over flat f32 arrays (gradient accumulation, SGD, the smoke test).
 * vec4 loads for the bulk, a scalar tail for the last n mod 4 elements.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

const WG = 256;

export const axpyKernel = defineKernel({
  name: 'axpy',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (N,)
    { name: 'y', type: 'array<f32>', access: 'read_write' }, // (N,)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'a', type: 'f32' },
  ],
  workgroupSize: () => [WG],
  // one invocation per 4 elements
  dispatch: (_p, u) => grid1d(Math.ceil(Math.ceil(u.n / 4) / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (gid.x + gid.y * nwg.x * WG_X) * 4u;
  if (i + 3u < u.n) {
    let xv = vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
    let yv = vec4<f32>(y[i], y[i + 1u], y[i + 2u], y[i + 3u]);
    let r = u.a * xv + yv;
    y[i] = r.x; y[i + 1u] = r.y; y[i + 2u] = r.z; y[i + 3u] = r.w;
  } else {
    for (var k = i; k < u.n; k++) { y[k] = u.a * x[k] + y[k]; }
  }
}`,
});

/** y ← a·x + y for the first `n` elements (default: all of y). */
export function axpy(rt: Runtime, a: number, x: GpuBuffer, y: GpuBuffer, n = y.size / 4): void {
  if (x.size < n * 4 || y.size < n * 4) {
    throw new RangeError(`axpy: n = ${n} exceeds x (${x.size / 4}) or y (${y.size / 4}) elements`);
  }
  rt.dispatch(axpyKernel, undefined, { buffers: { x, y }, uniforms: { n, a } });
}
