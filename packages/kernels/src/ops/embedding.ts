/**
 * Embedding lookup: out[n, :] = table[ids[n], :], and its backward, the scatter-add
 * dtable[v, :] = Σ_{n : ids[n] = v} dy[n, :].
 *
 * ids are 32-bit integers, u32 or i32 (the same bits: a negative i32 reads as a u32 ≥ 2³¹ and so is
 * out of range). Out-of-range ids (≥ V, or negative) never read or write outside the table: the
 * forward writes a row of NaN for them (so a bad id poisons the loss instead of silently reading
 * row 0 or V − 1), and the backward ignores them.
 *
 * Deterministic backward without float atomics: the (id, n) pairs are sorted on the GPU (bitonic
 * sort, lexicographic on (id, n), so the order is unique), then invocation (v, c) binary-searches the
 * run of pairs with id = v and sums dy[n, c] over it in increasing n. Same inputs, same bits, on any
 * GPU; rows no id refers to come out exactly 0. Cost: O(P log² P) for the sort (P = N rounded up to a
 * power of two), then O(N·C + V·C) for the sums, independent of how skewed the ids are.
 *
 * Non-goals: padding_idx, max_norm renormalization, sparse gradients, f16 tables.
 *
 * Dimensions: V vocabulary rows, C channels, N looked-up ids (all leading axes flattened), P sort length.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

const WG = 256;
/** Elements one workgroup of the local bitonic kernel sorts in shared memory (2 per invocation). */
const LOCAL = 2 * WG;

interface VecParams {
  vec4: boolean;
}

/** out[n, :] = table[ids[n], :], or NaN when ids[n] ≥ V. One invocation per T element of out. */
export const embeddingForwardKernel = defineKernel({
  name: 'embedding_forward',
  bindings: [
    { name: 'table', type: 'array<T>', access: 'read' }, // (V, C)
    { name: 'ids', type: 'array<u32>', access: 'read' }, // (N,)
    { name: 'out', type: 'array<T>', access: 'read_write' }, // (N, C)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'cv', type: 'u32' }, // C in units of T
    { name: 'v', type: 'u32' },
    { name: 'nan', type: 'f32' }, // NaN (WGSL rejects a NaN constant)
  ],
  workgroupSize: () => [WG],
  dispatch: (_p: VecParams, u) => grid1d(Math.ceil((u.n * u.cv) / WG)),
  key: (p) => (p.vec4 ? 'v4' : 's'),
  wgsl: (p) => /* wgsl */ `
alias T = ${p.vec4 ? 'vec4<f32>' : 'f32'};
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i >= u.n * u.cv) { return; }
  let row = i / u.cv;
  let j = i - row * u.cv;
  let id = ids[row];
  if (id < u.v) {
    out[i] = table[id * u.cv + j];
  } else {
    out[i] = T(u.nan);
  }
}`,
});

/** pairs[p] = (ids[p], p) for p < N, (0xffffffff, p) padding up to P. */
export const embeddingSortInitKernel = defineKernel({
  name: 'embedding_sort_init',
  bindings: [
    { name: 'ids', type: 'array<u32>', access: 'read' }, // (N,)
    { name: 'pairs', type: 'array<vec2<u32>>', access: 'read_write' }, // (P,)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'p', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.p / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i >= u.p) { return; }
  pairs[i] = vec2<u32>(select(0xffffffffu, ids[min(i, u.n - 1u)], i < u.n), i);
}`,
});

const BITONIC_HELPERS = /* wgsl */ `
fn pair_less(a: vec2<u32>, b: vec2<u32>) -> bool { return a.x < b.x || (a.x == b.x && a.y < b.y); }
// The compare-exchange partner of invocation t at stride j: elements lo = 2j⌊t/j⌋ + t mod j, lo + j.
fn lo_index(t: u32, j: u32) -> u32 { return 2u * j * (t / j) + (t % j); }`;

/** One global bitonic step (stride j ≥ LOCAL) of the merge of size k; one invocation per pair. */
export const embeddingBitonicGlobalKernel = defineKernel({
  name: 'embedding_bitonic_global',
  bindings: [{ name: 'pairs', type: 'array<vec2<u32>>', access: 'read_write' }], // (P,)
  uniforms: [
    { name: 'p', type: 'u32' },
    { name: 'k', type: 'u32' },
    { name: 'j', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.p / 2 / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `${BITONIC_HELPERS}
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG_X;
  if (t >= u.p / 2u) { return; }
  let lo = lo_index(t, u.j);
  let hi = lo + u.j;
  let a = pairs[lo];
  let b = pairs[hi];
  let ascending = (lo & u.k) == 0u;
  if (pair_less(b, a) == ascending) { pairs[lo] = b; pairs[hi] = a; }
}`,
});

/**
 * Bitonic steps with stride < LOCAL, in shared memory: for each k in [k_lo, k_hi] (powers of two),
 * strides min(k, LOCAL)/2 … 1. Workgroup w owns elements [w·LOCAL, (w+1)·LOCAL) ∩ [0, P).
 */
export const embeddingBitonicLocalKernel = defineKernel({
  name: 'embedding_bitonic_local',
  bindings: [{ name: 'pairs', type: 'array<vec2<u32>>', access: 'read_write' }], // (P,)
  uniforms: [
    { name: 'p', type: 'u32' },
    { name: 'k_lo', type: 'u32' },
    { name: 'k_hi', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.p / LOCAL)),
  key: () => '',
  wgsl: () => /* wgsl */ `${BITONIC_HELPERS}
const LOCAL: u32 = ${LOCAL}u;
var<workgroup> sh: array<vec2<u32>, LOCAL>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let base = (wid.x + wid.y * nwg.x) * LOCAL;
  if (base >= u.p) { return; }
  let len = min(LOCAL, u.p - base); // P is a power of two: len is LOCAL or P
  for (var e = lid; e < LOCAL; e += WG_X) {
    if (e < len) { sh[e] = pairs[base + e]; }
  }
  workgroupBarrier();
  for (var k = u.k_lo; k <= u.k_hi; k <<= 1u) {
    for (var j = min(k, LOCAL) >> 1u; j > 0u; j >>= 1u) {
      let lo = lo_index(lid, j);
      if (lo + j < len) {
        let a = sh[lo];
        let b = sh[lo + j];
        let ascending = ((base + lo) & k) == 0u;
        if (pair_less(b, a) == ascending) { sh[lo] = b; sh[lo + j] = a; }
      }
      workgroupBarrier();
    }
  }
  for (var e = lid; e < LOCAL; e += WG_X) {
    if (e < len) { pairs[base + e] = sh[e]; }
  }
}`,
});

/**
 * dtable[v, j] = Σ dy[n, j] over the sorted pairs with id v, in increasing n (0 if there are none).
 * One invocation per T element of dtable; the run of id v is found by two binary searches.
 */
export const embeddingBackwardSumKernel = defineKernel({
  name: 'embedding_backward_sum',
  bindings: [
    { name: 'dy', type: 'array<T>', access: 'read' }, // (N, C)
    { name: 'pairs', type: 'array<vec2<u32>>', access: 'read' }, // (P,) sorted (id, n)
    { name: 'dtable', type: 'array<T>', access: 'read_write' }, // (V, C)
  ],
  uniforms: [
    { name: 'p', type: 'u32' }, // 0 when N = 0
    { name: 'cv', type: 'u32' },
    { name: 'v', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p: VecParams, u) => grid1d(Math.ceil((u.v * u.cv) / WG)),
  key: (p) => (p.vec4 ? 'v4' : 's'),
  wgsl: (p) => /* wgsl */ `
alias T = ${p.vec4 ? 'vec4<f32>' : 'f32'};
// First index in [0, P) whose id is ≥ key (P if none).
fn lower_bound(key: u32) -> u32 {
  var lo = 0u;
  var hi = u.p;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (pairs[mid].x < key) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i >= u.v * u.cv) { return; }
  let row = i / u.cv;
  let j = i - row * u.cv;
  let start = lower_bound(row);
  let end = lower_bound(row + 1u);
  var s = T(0.0);
  for (var q = start; q < end; q++) { s += dy[pairs[q].y * u.cv + j]; }
  dtable[i] = s;
}`,
});

function checkBytes(rt: Runtime, op: string, bytes: number, what: string): void {
  const limit = rt.limits.maxStorageBufferBindingSize;
  if (bytes > limit) throw new LimitError('maxStorageBufferBindingSize', bytes, limit, `${op} ${what}`);
}

export interface EmbeddingForwardOptions {
  /** [V, C]: the table's shape. The number of ids N is ids.size / 4. */
  shape: readonly [number, number];
}

/** out (N, C) = table[ids]; rows of NaN for ids outside [0, V). Saves nothing (backward needs ids). */
export function embeddingForward(rt: Runtime, table: GpuBuffer, ids: GpuBuffer, options: EmbeddingForwardOptions): GpuBuffer {
  const op = 'embeddingForward';
  const [v, c] = checkTableShape(op, options.shape);
  const n = ids.size / 4;
  if (table.size !== v * c * 4 || !Number.isInteger(n)) {
    throw new Error(`${op}: table must be [V, C] with 32-bit ids (shapes [${v}, ${c}] and table [${table.size / 4}], ids ${ids.size} bytes)`);
  }
  checkBytes(rt, op, n * c * 4, `output (N, C) = [${n}, ${c}]`);
  checkBytes(rt, op, v * c * 4, `table (V, C) = [${v}, ${c}]`);
  const out = rt.createBuffer(n * c * 4);
  if (n * c > 0) {
    const vec4 = c % 4 === 0;
    const cv = vec4 ? c / 4 : c;
    rt.dispatch(embeddingForwardKernel, { vec4 }, { buffers: { table, ids, out }, uniforms: { n, cv, v, nan: NaN } });
  }
  return out;
}

export interface EmbeddingBackwardOptions {
  /** [V, C]: the table's shape. */
  shape: readonly [number, number];
}

/**
 * dtable (V, C) = Σ of dy's rows per id, deterministic (sorted ids, sums in increasing n); ids outside
 * [0, V) contribute nothing.
 */
export function embeddingBackward(rt: Runtime, dy: GpuBuffer, ids: GpuBuffer, options: EmbeddingBackwardOptions): GpuBuffer {
  const op = 'embeddingBackward';
  const [v, c] = checkTableShape(op, options.shape);
  const n = ids.size / 4;
  if (!Number.isInteger(n) || dy.size !== n * c * 4) {
    throw new Error(`${op}: dy must be [N, C] for N ids (shapes [${v}, ${c}] and dy [${dy.size / 4}], ids [${ids.size / 4}])`);
  }
  const p = n > 0 ? Math.max(2, 2 ** Math.ceil(Math.log2(n))) : 0;
  checkBytes(rt, op, p * 8, `sort buffer for N = ${n}`);
  checkBytes(rt, op, v * c * 4, `dtable (V, C) = [${v}, ${c}]`);
  checkBytes(rt, op, n * c * 4, `dy (N, C) = [${n}, ${c}]`);
  const dtable = rt.createBuffer(v * c * 4);
  if (v * c === 0) return dtable;
  const pairs = rt.createBuffer(p * 8);
  if (n > 0) {
    rt.dispatch(embeddingSortInitKernel, undefined, { buffers: { ids, pairs }, uniforms: { n, p } });
    rt.dispatch(embeddingBitonicLocalKernel, undefined, { buffers: { pairs }, uniforms: { p, k_lo: 2, k_hi: Math.min(p, LOCAL) } });
    for (let k = 2 * LOCAL; k <= p; k *= 2) {
      for (let j = k / 2; j >= LOCAL; j /= 2) {
        rt.dispatch(embeddingBitonicGlobalKernel, undefined, { buffers: { pairs }, uniforms: { p, k, j } });
      }
      rt.dispatch(embeddingBitonicLocalKernel, undefined, { buffers: { pairs }, uniforms: { p, k_lo: k, k_hi: k } });
    }
  }
  const vec4 = c % 4 === 0;
  const cv = vec4 ? c / 4 : c;
  // With N = 0 nothing is bound for dy/pairs that the kernel reads (p = 0): every row sums to 0.
  rt.dispatch(embeddingBackwardSumKernel, { vec4 }, { buffers: { dy, pairs, dtable }, uniforms: { p, cv, v } });
  rt.release(pairs);
  return dtable;
}

function checkTableShape(op: string, shape: readonly number[]): [number, number] {
  if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${op}: shape must be [V, C] with integers ≥ 0 (shapes [${shape.join(', ')}])`);
  }
  return shape as [number, number];
}
