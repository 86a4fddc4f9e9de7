/**
 * index-select (gather along one axis) and its backward, a deterministic scatter-add.
 *
 * x viewed as (O, A, I) around the axis: O = product of dims before it, A = the axis, I = after.
 * out (O, J, I): out[o, j, i] = x[o, idx[j], i]. An index outside [0, A) yields NaN, so a bad index is
 * visible in every result that depends on it instead of silently reading a neighbour.
 *
 * Backward: dx[o, a, i] = Σ_{j : idx[j] = a} dy[o, j, i], summed in j order, with no atomics (WGSL has
 * no f32 atomics, and atomics would make the sum order nondeterministic). Each output element scans
 * the J indices: O(J) per element, fine for short index lists. Gathers along the first axis (O = 1)
 * with many indices — e.g. splicing image tokens into a (B·T, C) sequence — reuse the embedding
 * backward instead (sort the indices once, then each row sums its run): the scan cost 140 ms per
 * step there (J = 960, A = 1,472, C = 128), the sort a few ms.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import { checkBuffer } from './elementwise.js';
import { embeddingBackward } from './embedding.js';
import type { Shape } from './layout.js';

const WG = 256;
const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

const gatherKernel = defineKernel({
  name: 'index_select',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (O, A, I)
    { name: 'idx', type: 'array<i32>', access: 'read' }, // (J,)
    { name: 'out', type: 'array<f32>', access: 'read_write' }, // (O, J, I)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'A', type: 'u32' },
    { name: 'J', type: 'u32' },
    { name: 'I', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG_X;
  if (e >= u.n) { return; }
  let i = e % u.I;
  let j = (e / u.I) % u.J;
  let o = e / (u.I * u.J);
  let a = idx[j];
  if (a < 0 || u32(a) >= u.A) {
    var nan_bits = 0x7fc00000u; // a var: WGSL rejects a NaN constant expression
    out[e] = bitcast<f32>(nan_bits);
    return;
  }
  out[e] = x[(o * u.A + u32(a)) * u.I + i];
}`,
});

const scatterAddKernel = defineKernel({
  name: 'index_select_backward',
  bindings: [
    { name: 'dy', type: 'array<f32>', access: 'read' }, // (O, J, I)
    { name: 'idx', type: 'array<i32>', access: 'read' }, // (J,)
    { name: 'dx', type: 'array<f32>', access: 'read_write' }, // (O, A, I)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'A', type: 'u32' },
    { name: 'J', type: 'u32' },
    { name: 'I', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG_X;
  if (e >= u.n) { return; }
  let i = e % u.I;
  let a = i32((e / u.I) % u.A);
  let o = e / (u.I * u.A);
  var acc = 0.0;
  for (var j = 0u; j < u.J; j++) {
    if (idx[j] == a) { acc += dy[(o * u.J + j) * u.I + i]; }
  }
  dx[e] = acc;
}`,
});

function axisView(op: string, shape: Shape, axis: number): { O: number; A: number; I: number } {
  if (!Number.isInteger(axis) || axis < 0 || axis >= shape.length) {
    throw new Error(`${op}: axis ${axis} out of range for shape [${shape}]`);
  }
  return { O: numel(shape.slice(0, axis)), A: shape[axis]!, I: numel(shape.slice(axis + 1)) };
}

/** out = x.index_select(axis, indices); `indices` is an i32 buffer of `count` entries. */
export function indexSelect(rt: Runtime, x: GpuBuffer, shape: Shape, axis: number, indices: GpuBuffer, count: number): { buffer: GpuBuffer; shape: number[] } {
  const { O, A, I } = axisView('indexSelect', shape, axis);
  checkBuffer('indexSelect', 'x', x, shape);
  if (indices.size < count * 4) throw new Error(`indexSelect: indices buffer holds ${indices.size / 4} < ${count} entries`);
  const outShape = [...shape];
  outShape[axis] = count;
  const n = O * count * I;
  const out = rt.createBuffer(n * 4);
  if (n > 0) {
    rt.dispatch(gatherKernel, undefined, { buffers: { x, idx: indices, out }, uniforms: { n, A, J: count, I } });
  }
  return { buffer: out, shape: outShape };
}

/** dx (the input's shape) = scatter-add of dy rows into their source positions. */
export function indexSelectBackward(rt: Runtime, dy: GpuBuffer, shape: Shape, axis: number, indices: GpuBuffer, count: number): GpuBuffer {
  const { O, A, I } = axisView('indexSelectBackward', shape, axis);
  if (!Number.isInteger(count) || count < 0) throw new Error(`indexSelectBackward: count must be a non-negative integer, got ${count}`);
  if (indices.size < count * 4) throw new Error(`indexSelectBackward: indices buffer holds ${indices.size / 4} < ${count} entries`);
  checkBuffer('indexSelectBackward', 'dy', dy, [O, count, I]);
  if (O === 1 && count >= 64 && indices.size === count * 4) return embeddingBackward(rt, dy, indices, { shape: [A, I] });
  const n = O * A * I;
  const dx = rt.createBuffer(n * 4);
  if (n > 0) {
    rt.dispatch(scatterAddKernel, undefined, { buffers: { dy, idx: indices, dx }, uniforms: { n, A, J: count, I } });
  }
  return dx;
}
