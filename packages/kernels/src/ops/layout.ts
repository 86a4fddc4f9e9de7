/**
 * Layout ops: transpose/permute, slice, concat, pad, index-select (gather), fill — and their
 * backward counterparts, which are layout ops too (permute ↔ inverse permute, slice ↔ pad with
 * zeros, concat ↔ slices, index-select ↔ a deterministic scatter-add).
 *
 * One strided-copy kernel does most of the work: for every element of a copy box of shape
 * `box` (rank ≤ 6), dst[dstOffset + Σ i_a·dstStride_a] = src[srcOffset + Σ i_a·srcStride_a]. Elements
 * are moved as raw 32-bit words, so the same kernels serve f32, i32 and u32 buffers.
 *
 * Non-goals: views without copies (the autograd layer decides when a view suffices), f16 layouts.
 * Legend: N elements, R rank, A the axis operated on.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import { checkBuffer } from './elementwise.js';

export type Shape = readonly number[];
const MAX_RANK = 6;
const WG = 256;

const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);
export function contiguousStrides(shape: Shape): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let a = shape.length - 1; a >= 0; a--) {
    st[a] = acc;
    acc *= shape[a]!;
  }
  return st;
}

const dimNames = Array.from({ length: MAX_RANK }, (_, a) => a);
const stridedCopyKernel = defineKernel({
  name: 'strided_copy',
  bindings: [
    { name: 'src', type: 'array<u32>', access: 'read' }, // (any) raw 32-bit words
    { name: 'dst', type: 'array<u32>', access: 'read_write' }, // (any)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'src_off', type: 'u32' },
    { name: 'dst_off', type: 'u32' },
    ...dimNames.map((a) => ({ name: `d${a}` as const, type: 'u32' as const })),
    ...dimNames.map((a) => ({ name: `ss${a}` as const, type: 'u32' as const })),
    ...dimNames.map((a) => ({ name: `ds${a}` as const, type: 'u32' as const })),
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG_X;
  if (o >= u.n) { return; }
  // box dims are right-aligned in d0..d5 (leading dims are 1)
  let d = array<u32, 6>(u.d0, u.d1, u.d2, u.d3, u.d4, u.d5);
  let ss = array<u32, 6>(u.ss0, u.ss1, u.ss2, u.ss3, u.ss4, u.ss5);
  let ds = array<u32, 6>(u.ds0, u.ds1, u.ds2, u.ds3, u.ds4, u.ds5);
  var rem = o;
  var si = u.src_off;
  var di = u.dst_off;
  for (var a = 5; a >= 0; a--) {
    let i = rem % d[a];
    rem = rem / d[a];
    si += i * ss[a];
    di += i * ds[a];
  }
  dst[di] = src[si];
}`,
});

const fillKernel = defineKernel({
  name: 'fill',
  bindings: [{ name: 'dst', type: 'array<u32>', access: 'read_write' }], // (N,)
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'value', type: 'f32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i < u.n) { dst[i] = bitcast<u32>(u.value); }
}`,
});

function checkBinding(rt: Runtime, op: string, elements: number): void {
  const bytes = elements * 4;
  const max = rt.limits.maxStorageBufferBindingSize;
  if (bytes > max) throw new LimitError('maxStorageBufferBindingSize', bytes, max, `${op}: tensor of ${elements} elements`);
}

interface CopyBox {
  box: Shape;
  srcOffset: number;
  srcStrides: readonly number[];
  dstOffset: number;
  dstStrides: readonly number[];
}

/** Records dst[box] = src[box] for one strided box (see file header). */
export function stridedCopy(rt: Runtime, src: GpuBuffer, dst: GpuBuffer, c: CopyBox): void {
  if (c.box.length > MAX_RANK) throw new Error(`stridedCopy: rank ${c.box.length} exceeds ${MAX_RANK}`);
  const n = numel(c.box);
  if (n === 0) return;
  const pad = MAX_RANK - c.box.length;
  const u: Record<string, number> = { n, src_off: c.srcOffset, dst_off: c.dstOffset };
  for (let a = 0; a < MAX_RANK; a++) {
    const k = a - pad;
    u[`d${a}`] = k < 0 ? 1 : c.box[k]!;
    u[`ss${a}`] = k < 0 ? 0 : c.srcStrides[k]!;
    u[`ds${a}`] = k < 0 ? 0 : c.dstStrides[k]!;
  }
  rt.dispatch(stridedCopyKernel, undefined, { buffers: { src, dst }, uniforms: u as never });
}

/** Sets the first `n` elements of `buf` to `value` (f32 bits; 0 is 0 for every 32-bit type). */
export function fill(rt: Runtime, buf: GpuBuffer, value: number, n = buf.size / 4): void {
  if (n * 4 > buf.size) throw new RangeError(`fill: ${n} elements exceed a ${buf.size}-byte buffer`);
  rt.dispatch(fillKernel, undefined, { buffers: { dst: buf }, uniforms: { n, value } });
}

/** out = x.permute(perm): out.shape[a] = shape[perm[a]]. */
export function permute(rt: Runtime, x: GpuBuffer, shape: Shape, perm: readonly number[]): GpuBuffer {
  const r = shape.length;
  const seen = new Set(perm);
  if (perm.length !== r || seen.size !== r || perm.some((p) => !Number.isInteger(p) || p < 0 || p >= r)) {
    throw new Error(`permute: [${perm}] is not a permutation of the axes of shape [${shape}]`);
  }
  // the copy kernel bounds-checks nothing: a short buffer would read stale pool bytes past its end
  checkBuffer('permute', 'x', x, shape);
  checkBinding(rt, 'permute', numel(shape));
  const inStrides = contiguousStrides(shape);
  const outShape = perm.map((p) => shape[p]!);
  const out = rt.createBuffer(numel(shape) * 4);
  stridedCopy(rt, x, out, {
    box: outShape,
    srcOffset: 0,
    srcStrides: perm.map((p) => inStrides[p]!),
    dstOffset: 0,
    dstStrides: contiguousStrides(outShape),
  });
  return out;
}

/** The permutation undoing `perm` (the backward of permute is permute by it). */
export function inversePermutation(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, a) => (inv[p] = a));
  return inv;
}

/** Swaps the last two axes. */
export function transpose(rt: Runtime, x: GpuBuffer, shape: Shape): GpuBuffer {
  if (shape.length < 2) throw new Error(`transpose: needs rank ≥ 2, got shape [${shape}]`);
  checkBuffer('transpose', 'x', x, shape);
  const perm = shape.map((_, a) => a);
  perm[shape.length - 2] = shape.length - 1;
  perm[shape.length - 1] = shape.length - 2;
  return permute(rt, x, shape, perm);
}

export interface SliceSpec {
  /** Start per axis (default 0). */
  starts: readonly number[];
  /** Exclusive end per axis (default shape[a]). */
  ends: readonly number[];
}

function sliceBox(op: string, shape: Shape, s: SliceSpec): { box: number[]; offset: number } {
  if (s.starts.length !== shape.length || s.ends.length !== shape.length) {
    throw new Error(`${op}: starts [${s.starts}] / ends [${s.ends}] must have one entry per axis of shape [${shape}]`);
  }
  const strides = contiguousStrides(shape);
  let offset = 0;
  const box = shape.map((d, a) => {
    const lo = s.starts[a]!;
    const hi = s.ends[a]!;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > d || lo > hi) {
      throw new Error(`${op}: axis ${a} range [${lo}, ${hi}) is outside [0, ${d}] of shape [${shape}]`);
    }
    offset += lo * strides[a]!;
    return hi - lo;
  });
  return { box, offset };
}

/** out = x[starts[0]:ends[0], …]. */
export function slice(rt: Runtime, x: GpuBuffer, shape: Shape, spec: SliceSpec): GpuBuffer {
  const { box, offset } = sliceBox('slice', shape, spec);
  checkBuffer('slice', 'x', x, shape);
  checkBinding(rt, 'slice', numel(shape));
  const out = rt.createBuffer(numel(box) * 4);
  stridedCopy(rt, x, out, {
    box,
    srcOffset: offset,
    srcStrides: contiguousStrides(shape),
    dstOffset: 0,
    dstStrides: contiguousStrides(box),
  });
  return out;
}

/** Backward of slice: dx has the input's shape, zero outside the slice, dy inside. */
export function sliceBackward(rt: Runtime, dy: GpuBuffer, shape: Shape, spec: SliceSpec): GpuBuffer {
  const { box, offset } = sliceBox('sliceBackward', shape, spec);
  checkBuffer('sliceBackward', 'dy', dy, box);
  const dx = rt.createBuffer(numel(shape) * 4);
  fill(rt, dx, 0, numel(shape));
  stridedCopy(rt, dy, dx, {
    box,
    srcOffset: 0,
    srcStrides: contiguousStrides(box),
    dstOffset: offset,
    dstStrides: contiguousStrides(shape),
  });
  return dx;
}

/** Concatenates tensors along `axis`; all other dimensions must agree. */
export function concat(rt: Runtime, xs: readonly { buffer: GpuBuffer; shape: Shape }[], axis: number): { buffer: GpuBuffer; shape: number[] } {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  const first = xs[0]!.shape;
  if (!Number.isInteger(axis) || axis < 0 || axis >= first.length) {
    throw new Error(`concat: axis ${axis} out of range for rank ${first.length}`);
  }
  for (const x of xs) {
    if (x.shape.length !== first.length || x.shape.some((d, a) => a !== axis && d !== first[a])) {
      throw new Error(`concat: shapes ${xs.map((t) => `[${t.shape}]`).join(', ')} differ outside axis ${axis}`);
    }
  }
  xs.forEach((x, i) => checkBuffer('concat', `xs[${i}]`, x.buffer, x.shape));
  const outShape = [...first];
  outShape[axis] = xs.reduce((s, x) => s + x.shape[axis]!, 0);
  checkBinding(rt, 'concat', numel(outShape));
  const out = rt.createBuffer(numel(outShape) * 4);
  const outStrides = contiguousStrides(outShape);
  let at = 0;
  for (const x of xs) {
    stridedCopy(rt, x.buffer, out, {
      box: x.shape,
      srcOffset: 0,
      srcStrides: contiguousStrides(x.shape),
      dstOffset: at * outStrides[axis]!,
      dstStrides: outStrides,
    });
    at += x.shape[axis]!;
  }
  return { buffer: out, shape: outShape };
}

/** Backward of concat: the slices of dy along `axis`, one per input. */
export function concatBackward(rt: Runtime, dy: GpuBuffer, outShape: Shape, sizes: readonly number[], axis: number): GpuBuffer[] {
  let at = 0;
  return sizes.map((len) => {
    const starts = outShape.map((_, a) => (a === axis ? at : 0));
    const ends = outShape.map((d, a) => (a === axis ? at + len : d));
    at += len;
    return slice(rt, dy, outShape, { starts, ends });
  });
}

/** Constant padding: `pads[a] = [before, after]`. */
export function pad(rt: Runtime, x: GpuBuffer, shape: Shape, pads: readonly (readonly [number, number])[], value = 0): { buffer: GpuBuffer; shape: number[] } {
  if (pads.length !== shape.length || pads.some(([b, e]) => !Number.isInteger(b) || !Number.isInteger(e) || b < 0 || e < 0)) {
    throw new Error(`pad: pads ${JSON.stringify(pads)} must be one non-negative [before, after] per axis of shape [${shape}]`);
  }
  checkBuffer('pad', 'x', x, shape);
  const outShape = shape.map((d, a) => d + pads[a]![0] + pads[a]![1]);
  checkBinding(rt, 'pad', numel(outShape));
  const out = rt.createBuffer(numel(outShape) * 4);
  fill(rt, out, value, numel(outShape));
  const outStrides = contiguousStrides(outShape);
  stridedCopy(rt, x, out, {
    box: shape,
    srcOffset: 0,
    srcStrides: contiguousStrides(shape),
    dstOffset: pads.reduce((s, [b], a) => s + b * outStrides[a]!, 0),
    dstStrides: outStrides,
  });
  return { buffer: out, shape: outShape };
}

/** Backward of pad: the interior slice of dy. */
export function padBackward(rt: Runtime, dy: GpuBuffer, shape: Shape, pads: readonly (readonly [number, number])[]): GpuBuffer {
  if (pads.length !== shape.length) throw new Error(`padBackward: pads ${JSON.stringify(pads)} must be one [before, after] per axis of shape [${shape}]`);
  const outShape = shape.map((d, a) => d + pads[a]![0] + pads[a]![1]);
  checkBuffer('padBackward', 'dy', dy, outShape);
  return slice(rt, dy, outShape, { starts: pads.map(([b]) => b), ends: pads.map(([b], a) => b + shape[a]!) });
}

export { indexSelect, indexSelectBackward } from './index-select.js';
