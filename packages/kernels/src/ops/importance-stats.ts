/**
 * Segmented per-tensor statistics over a multi-tensor arena (see segments.ts), the shared machinery
 * of the importance kernels (importance.ts).
 *
 * `segmentStats` gives, per tensor, the mean and population std of |x| (or x) in two dispatches and
 * no CPU round trip:
 *   1. moments: workgroup w reduces chunk w to (mean, M2) — each invocation sums its elements shifted
 *      by its first value (exact for clustered data, e.g. 1e3 ± 1), then the workgroup tree-combines
 *      the invocations' (n, mean, M2) with Chan's parallel formula. The same pass can first apply
 *      x ← x + g (SPIDER's running gradient sum) and take the statistics of the updated values.
 *   2. combine: workgroup t folds the chunk partials of tensor t, again with Chan's formula, in a fixed
 *      order (deterministic, no atomics). A 'sums' variant adds (sum, count) partials instead.
 *
 * Non-goals: statistics across tensors, medians/quantiles (top-k thresholds live elsewhere).
 *
 * Legend: N arena elements (padding included), T tensors, C chunks (= workgroups of one dispatch).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { BufferBinding, Runtime } from '../runtime/runtime.js';
import type { SegmentTable } from './segments.js';

/** Invocations per chunk workgroup (fewer for tiny chunk sizes). */
const CHUNK_WG = 64;
/** Invocations per tensor in the combine kernel. */
const COMBINE_WG = 64;

export interface ImportanceChunkParams {
  /** Workgroup size (a power of two: the tree reductions halve it); see importanceChunkParams. */
  readonly wg: number;
}

/** Kernel params for a table: the chunk size only matters through the workgroup size. */
export function importanceChunkParams(table: SegmentTable): ImportanceChunkParams {
  return { wg: Math.min(CHUNK_WG, 2 ** Math.floor(Math.log2(table.chunkSize / 4))) };
}

/** The uniforms every chunk kernel takes: chunk count, chunk size, vec4 loads per invocation. */
export function importanceChunkUniforms(table: SegmentTable): { nchunks: number; chunk: number; items: number } {
  const { wg } = importanceChunkParams(table);
  return { nchunks: table.chunkCount, chunk: table.chunkSize, items: Math.ceil(table.chunkSize / 4 / wg) };
}

/** Uniform declarations matching importanceChunkUniforms. */
export const IMPORTANCE_CHUNK_UNIFORMS = [
  { name: 'nchunks', type: 'u32' },
  { name: 'chunk', type: 'u32' },
  { name: 'items', type: 'u32' },
] as const;

/**
 * WGSL shared by every chunk kernel: the chunk lookup. Needs bindings `chunks` and `segs`.
 * A chunk covers arena elements [first, first + n), n ≤ u.chunk; first is a multiple of 4, so the chunk
 * is vec4 index range [first / 4, ...) and only its last vec4 may be partial.
 */
export function importanceChunkWgsl(): string {
  return /* wgsl */ `
struct Chunk { t: u32, first: u32, n: u32 }
fn loadChunk(w: u32) -> Chunk {
  let t = chunks[2u * w];
  let first = chunks[2u * w + 1u];
  let end = segs[2u * t] + segs[2u * t + 1u];
  return Chunk(t, first, min(u.chunk, end - first));
}
// lanes of the vec4 starting at element e that lie inside a chunk of n elements
fn laneMask(e: u32, n: u32) -> vec4<bool> {
  return vec4<u32>(e, e + 1u, e + 2u, e + 3u) < vec4<u32>(n);
}
// (n, mean, M2) ⊕ (n, mean, M2): Chan, Golub & LeVeque's pairwise update
fn chan(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let n = a.x + b.x;
  let d = b.y - a.y;
  let f = b.x / n;
  return vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}`;
}

/**
 * WGSL folding `sh[0 .. WG_X)` with the associative `op(a, b)` in a fixed order, then running `final`
 * (which sees the result as `r`) on invocation 0. Two levels of eight: two barriers instead of a
 * log2(WG_X)-deep tree (barriers are what CPU backends pay for), serial chains of at most eight.
 */
export function importanceFoldWgsl(op: string, final: string): string {
  return /* wgsl */ `workgroupBarrier();
  if (tid * 8u < WG_X) {
    var r = sh[tid * 8u];
    for (var j = 1u; j < min(8u, WG_X); j++) { r = ${op}(r, sh[tid * 8u + j]); }
    sh[tid * 8u] = r;
  }
  workgroupBarrier();
  if (tid == 0u) {
    var r = sh[0];
    for (var j = 8u; j < WG_X; j += 8u) { r = ${op}(r, sh[j]); }
    ${final}
  }`;
}

/**
 * Validates an arena buffer against a table and returns the binding covering exactly the arena.
 * Throws an Error naming `op` for a too-small buffer and a LimitError above the binding limit.
 */
export function importanceArena(rt: Runtime, op: string, name: string, buf: GpuBuffer, table: SegmentTable): BufferBinding {
  const need = table.arenaLength;
  if (buf.isReleased) throw new Error(`${op}: arena '${name}' was released`);
  if (buf.size < need * 4) {
    throw new Error(
      `${op}: arena '${name}' has ${Math.floor(buf.size / 4)} elements but the segment table needs ${need} ` +
        `(shapes [${Math.floor(buf.size / 4)}] and [${need}])`,
    );
  }
  const max = rt.limits.maxStorageBufferBindingSize;
  if (need * 4 > max) throw new LimitError('maxStorageBufferBindingSize', need * 4, max, `${op} arena '${name}'`);
  return { buffer: buf, offset: 0, size: Math.max(need * 4, 16) };
}

interface MomentsParams extends ImportanceChunkParams {
  readonly abs: boolean;
  readonly accumulate: boolean;
}

function momentsWgsl(p: MomentsParams): string {
  // accumulate: x ← x + g (written back lane by lane on the partial tail, never into padding)
  const load = p.accumulate
    ? `var xv = x[base + v] + g[base + v];
    if (full) { x[base + v] = xv; } else { for (var j = 0u; j < 4u; j++) { if (m[j]) { x[base + v][j] = xv[j]; } } }`
    : `let xv = x[base + v];`;
  return /* wgsl */ `
${importanceChunkWgsl()}
var<workgroup> sh: array<vec3<f32>, WG_X>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= u.nchunks) { return; }
  let c = loadChunk(w);
  let base = c.first / 4u;
  // shifted sums: d = a − k0 with k0 this invocation's first value; mean = k0 + Σd/n, M2 = Σd² − (Σd)²/n
  var k0 = 0.0;
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var cnt = 0u;
  for (var k = 0u; k < u.items; k++) {
    let v = tid + k * WG_X;
    let e = 4u * v;
    if (e >= c.n) { break; }
    let full = e + 4u <= c.n;
    let m = laneMask(e, c.n);
    ${load}
    let a = ${p.abs ? 'abs(xv)' : 'xv'};
    if (k == 0u) { k0 = a.x; }
    var d = a - k0;
    if (!full) { d = select(vec4<f32>(0.0), d, m); } // padding lanes (maybe NaN) never enter
    s1 += d;
    s2 += d * d;
    cnt += min(4u, c.n - e);
  }
  let n = f32(cnt);
  let t1 = s1.x + s1.y + s1.z + s1.w;
  let t2 = s2.x + s2.y + s2.z + s2.w;
  var acc = vec3<f32>(0.0);
  if (cnt > 0u) { acc = vec3<f32>(n, k0 + t1 / n, max(t2 - t1 * t1 / n, 0.0)); }
  sh[tid] = acc;
  ${importanceFoldWgsl('chan', 'part[2u * w] = r.y;\n    part[2u * w + 1u] = r.z;')}
}`;
}

const momentsCommon = {
  uniforms: IMPORTANCE_CHUNK_UNIFORMS,
  workgroupSize: (p: MomentsParams) => [p.wg] as const,
  dispatch: (_p: MomentsParams, u: Readonly<Record<'nchunks', number>>) => grid1d(u.nchunks),
  key: (p: MomentsParams) => `wg${p.wg}|abs${+p.abs}|acc${+p.accumulate}`,
  wgsl: momentsWgsl,
};

/** Chunk partials (mean, M2) of |x| or x. */
export const importanceMomentsKernel = defineKernel({
  name: 'importance_moments',
  bindings: [
    { name: 'x', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'part', type: 'array<f32>', access: 'read_write' }, // (C, 2) mean, M2
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2) tensor, first element
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2) offset, length
  ],
  ...momentsCommon,
});

/** x ← x + g, then chunk partials (mean, M2) of the updated |x| or x, in one pass. */
export const importanceAccumMomentsKernel = defineKernel({
  name: 'importance_accum_moments',
  bindings: [
    { name: 'x', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
    { name: 'g', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'part', type: 'array<f32>', access: 'read_write' }, // (C, 2) mean, M2
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2)
  ],
  ...momentsCommon,
});

interface CombineParams {
  /** 'moments': partials are (mean, M2) → (mean, std). 'sums': partials are (sum, count) → (sum, count). */
  readonly mode: 'moments' | 'sums';
}

/** Per-tensor fold of chunk partials; workgroup t handles tensor t. */
export const importanceCombineKernel = defineKernel({
  name: 'importance_combine',
  bindings: [
    { name: 'part', type: 'array<f32>', access: 'read' }, // (C, 2)
    { name: 'stats', type: 'array<f32>', access: 'read_write' }, // (T, 2)
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2)
  ],
  uniforms: [
    { name: 'ntensors', type: 'u32' },
    ...IMPORTANCE_CHUNK_UNIFORMS,
  ],
  workgroupSize: () => [COMBINE_WG],
  dispatch: (_p, u) => grid1d(u.ntensors),
  key: (p: CombineParams) => p.mode,
  wgsl: (p: CombineParams) => {
    const moments = p.mode === 'moments';
    return /* wgsl */ `
${importanceChunkWgsl()}
var<workgroup> sh: array<vec3<f32>, WG_X>;
var<workgroup> shCount: array<u32, WG_X>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= u.ntensors) { return; }
  let off = segs[2u * t];
  let len = segs[2u * t + 1u];
  let nch = (len + u.chunk - 1u) / u.chunk;
  // first chunk of tensor t: lower bound of t in the (sorted) chunk table
  var lo = 0u;
  var hi = u.nchunks;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (chunks[2u * mid] < t) { lo = mid + 1u; } else { hi = mid; }
  }
  var acc = vec3<f32>(0.0); // moments: (n, mean, M2); sums: (sum, -, -) and count
  var count = 0u;
  for (var j = tid; j < nch; j += WG_X) {
    let c = lo + j;
    ${
      moments
        ? `let n = f32(min(u.chunk, off + len - chunks[2u * c + 1u]));
    acc = chan(acc, vec3<f32>(n, part[2u * c], part[2u * c + 1u]));`
        : `acc.x += part[2u * c];
    count += u32(part[2u * c + 1u]);`
    }
  }
  sh[tid] = acc;
  shCount[tid] = count;
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      ${
        moments
          ? 'sh[tid] = chan(sh[tid], sh[tid + s]);'
          : `sh[tid].x += sh[tid + s].x;
      shCount[tid] += shCount[tid + s];`
      }
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    let r = sh[0];
    ${
      moments
        ? `stats[2u * t] = r.y;
    stats[2u * t + 1u] = select(0.0, sqrt(r.z / r.x), r.x > 0.0);`
        : `stats[2u * t] = r.x;
    stats[2u * t + 1u] = f32(shCount[0]);`
    }
  }
}`;
  },
});

/**
 * Folds chunk partials `part` (C, 2) into per-tensor results (T, 2); see the combine kernel's modes.
 * With no tensors, its one dispatched workgroup exits at once.
 */
export function importanceCombine(rt: Runtime, part: GpuBuffer, table: SegmentTable, mode: 'moments' | 'sums'): GpuBuffer {
  const T = table.lengths.length;
  const stats = rt.createBuffer(Math.max(T, 1) * 8);
  rt.dispatch(
    importanceCombineKernel,
    { mode },
    { buffers: { part, stats, chunks: table.chunks, segs: table.segments }, uniforms: { ntensors: T, ...importanceChunkUniforms(table) } },
  );
  return stats;
}

export interface SegmentStatsOptions {
  /** Statistics of |x| (default true) or of x. */
  abs?: boolean;
  /** Before the statistics, x ← x + accumulate (same pass); the statistics are of the updated x. */
  accumulate?: GpuBuffer;
  /** Op name used in error messages (default 'segmentStats'). */
  op?: string;
}

/**
 * Per-tensor mean and population std of |x| (or x) over the arena `x`: returns a new (T, 2) f32
 * buffer [mean, std] per tensor (an empty tensor gives 0, 0). With `accumulate: g`, first updates
 * x ← x + g in the same pass. Two dispatches, no readback.
 */
export function segmentStats(rt: Runtime, x: GpuBuffer, table: SegmentTable, options: SegmentStatsOptions = {}): GpuBuffer {
  const op = options.op ?? 'segmentStats';
  const abs = options.abs ?? true;
  const xb = importanceArena(rt, op, 'x', x, table);
  const part = rt.createBuffer(Math.max(table.chunkCount, 1) * 8);
  const params = { ...importanceChunkParams(table), abs, accumulate: options.accumulate !== undefined };
  const common = { part, chunks: table.chunks, segs: table.segments };
  const uniforms = importanceChunkUniforms(table);
  if (options.accumulate) {
    if (options.accumulate === x) throw new Error(`${op}: the accumulated arena must not be x itself`);
    const g = importanceArena(rt, op, 'g', options.accumulate, table);
    rt.dispatch(importanceAccumMomentsKernel, params, { buffers: { x: xb, g, ...common }, uniforms });
  } else {
    rt.dispatch(importanceMomentsKernel, params, { buffers: { x: xb, ...common }, uniforms });
  }
  const stats = importanceCombine(rt, part, table, 'moments');
  rt.release(part);
  return stats;
}
