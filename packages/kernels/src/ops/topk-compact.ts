/**
 * Sample bracketing and candidate compaction for the top-k threshold (one group only: global mode,
 * or a single tensor). Host side: topk.ts; shared state layout: topk-kernels.ts.
 *
 * A per-element histogram of all N keys costs one workgroup atomic per element, which is the slow
 * part on CPU-emulated GPUs. Instead: (1) histogram the first-pass digit (key bits 30..19) of a
 * sample (the first SAMPLE_PER_CHUNK elements of every chunk) and pick a key bracket [lo, hi] around
 * the sample rank of k with a safety margin; (2) one pass over all N with register work only: count
 * the keys above hi and copy the keys in [lo, hi] into a candidate buffer; (3) check the bracket:
 * above < k ≤ above + inside and inside ≤ cap. If it holds, the radix passes run over the candidates
 * only (rank k − above); if not (an unlucky sample, or heavy ties), they run over all N as before.
 * Either way the result is exact. Candidate order is not deterministic and does not need to be: the
 * passes only count, and when the cut splits the ties at the threshold, the last tie taken is found by
 * ranking the tied candidates' arena indices (topkTieCutKernel, topk-ties.ts) instead of a tie count over all N.
 *
 * Non-goals: per-tensor mode (each group would need its own bracket and candidate range).
 * Dimension legend: N elements (one window), C chunks, M candidates (M ≤ cap), S sample size.
 */
import { defineKernel, grid1d } from '../runtime/kernel.js';

/** Candidates one workgroup of the candidate histogram handles. */
export const TOPK_CAND_PER_WG = 8192;
/** Sampled elements at the start of every chunk, and chunks per sample-histogram workgroup. */
export const TOPK_SAMPLE_PER_CHUNK = 1024;
const SAMPLE_CHUNKS = 8;
const FIRST_SHIFT = 19;
const FIRST_BINS = 4096;

const windowUniforms = [
  { name: 'chunkBase', type: 'u32' },
  { name: 'chunkCount', type: 'u32' },
  { name: 'winStart', type: 'u32' },
  { name: 'chunkSize', type: 'u32' },
] as const;

/** WGSL: chunk cc's first element (local to the window) and length. */
const chunkRange = /* wgsl */ `
fn chunkRange(cc: u32) -> vec2<u32> {
  let t = chunks[2u * cc];
  let start = chunks[2u * cc + 1u];
  let end = segments[2u * t] + segments[2u * t + 1u];
  return vec2<u32>(start - u.winStart, min(u.chunkSize, end - start));
}`;

/**
 * Sample histogram over the first SAMPLE_PER_CHUNK elements of each chunk (NaN skipped). Level 0: of
 * key >> 19 (the first digit). Level 1: of the next 12 bits (key >> 7) & 4095, only for keys in the
 * first-digit bin state[8] (nothing when state[8] = 0xffffffff).
 */
export const topkSampleHistogramKernel = defineKernel({
  name: 'topk_sample_histogram',
  bindings: [
    { name: 'scores', type: 'array<u32>', access: 'read' }, // (N,) f32 bits, window
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segments', type: 'array<u32>', access: 'read' }, // (T, 2)
    { name: 'state', type: 'array<u32>', access: 'read' }, // (1, STATE_WORDS)
    { name: 'hist', type: 'array<atomic<u32>>', access: 'read_write' }, // (RADIX,)
  ],
  uniforms: windowUniforms,
  workgroupSize: () => [256],
  dispatch: (_p, u) => grid1d(Math.ceil(u.chunkCount / SAMPLE_CHUNKS)),
  key: (p: { level: 0 | 1 }) => String(p.level),
  wgsl: (p) => /* wgsl */ `
${chunkRange}
var<workgroup> wh: array<atomic<u32>, ${FIRST_BINS}>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  let bin = state[8];
  ${p.level === 1 ? 'if (bin == 0xffffffffu) { return; } // uniform: no refinement' : ''}
  for (var d = lid; d < ${FIRST_BINS}u; d += WG_X) { atomicStore(&wh[d], 0u); }
  workgroupBarrier();
  let c0 = min(w * ${SAMPLE_CHUNKS}u, u.chunkCount);
  let c1 = min(c0 + ${SAMPLE_CHUNKS}u, u.chunkCount);
  for (var c = c0; c < c1; c++) {
    let r = chunkRange(u.chunkBase + c);
    for (var e = lid; e < min(r.y, ${TOPK_SAMPLE_PER_CHUNK}u); e += WG_X) {
      let key = scores[r.x + e] & 0x7fffffffu;
      ${
        p.level === 0
          ? `if (key <= 0x7f800000u) { atomicAdd(&wh[key >> ${FIRST_SHIFT}u], 1u); }`
          : `if (key <= 0x7f800000u && (key >> ${FIRST_SHIFT}u) == bin) { atomicAdd(&wh[(key >> 7u) & 4095u], 1u); }`
      }
    }
  }
  workgroupBarrier();
  for (var d = lid; d < ${FIRST_BINS}u; d += WG_X) {
    let v = atomicLoad(&wh[d]);
    if (v != 0u) { atomicAdd(&hist[d], v); }
  }
}`,
});

/**
 * One thread, from a sample histogram (zeroing its bins). Level 0: hi = top of the bin holding sample
 * rank rHi (counted from the top; +Inf when rHi = 0), lo = bottom of the bin holding rank rLo (0 past
 * the sample); the rLo bin is then refined (state[8], and the sample count above it in state[9]).
 * Level 1: within that bin's 4096 sub-bins, narrows lo, and hi when rank rHi falls in the bin too.
 */
export const topkBracketKernel = defineKernel({
  name: 'topk_bracket',
  bindings: [
    { name: 'state', type: 'array<u32>', access: 'read_write' }, // (1, STATE_WORDS)
    { name: 'hist', type: 'array<u32>', access: 'read_write' }, // (RADIX,)
  ],
  uniforms: [
    { name: 'rHi', type: 'u32' },
    { name: 'rLo', type: 'u32' },
  ],
  workgroupSize: () => [1],
  dispatch: () => [1, 1, 1],
  key: (p: { level: 0 | 1 }) => String(p.level),
  wgsl: (p) =>
    p.level === 0
      ? /* wgsl */ `
@compute @workgroup_size(1)
fn main() {
  var lo = 0u;
  var hi = 0x7f800000u;
  var cum = 0u;
  var haveHi = u.rHi == 0u;
  state[8] = 0xffffffffu;
  for (var d = ${FIRST_BINS - 1}i; d >= 0; d--) {
    let h = hist[d];
    hist[d] = 0u;
    if (!haveHi && cum + h > u.rHi) {
      hi = min(((u32(d) + 1u) << ${FIRST_SHIFT}u) - 1u, 0x7f800000u);
      haveHi = true;
    }
    if (cum <= u.rLo && cum + h > u.rLo) {
      lo = u32(d) << ${FIRST_SHIFT}u;
      state[8] = u32(d);
      state[9] = cum;
    }
    cum += h;
  }
  state[5] = lo;
  state[6] = hi;
}`
      : /* wgsl */ `
@compute @workgroup_size(1)
fn main() {
  let bin = state[8];
  if (bin == 0xffffffffu) { return; }
  let above = state[9];
  let top = bin << ${FIRST_SHIFT}u;
  var cum = above;
  for (var d = ${FIRST_BINS - 1}i; d >= 0; d--) {
    let h = hist[d];
    hist[d] = 0u;
    if (u.rHi != 0u && cum <= u.rHi && cum + h > u.rHi) { state[6] = top | (((u32(d) + 1u) << 7u) - 1u); }
    if (cum <= u.rLo && cum + h > u.rLo) { state[5] = top | (u32(d) << 7u); }
    cum += h;
  }
}`,
});

/**
 * Per chunk, register work only: counts keys above hi and appends (key, arena index) of the keys in
 * [lo, hi] to `cand` (NaN
 * never). Each thread counts in registers, the workgroup reserves one range with a single global
 * atomic, then each thread writes its keys: the first four from positions kept in registers, any
 * more by re-reading its elements after the fourth (from cache). Writes past
 * `cap` are dropped; the count still grows, so the check sees the overflow.
 */
export const topkCompactKernel = defineKernel({
  name: 'topk_compact',
  bindings: [
    { name: 'scores', type: 'array<u32>', access: 'read' }, // (N,) f32 bits, window
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segments', type: 'array<u32>', access: 'read' }, // (T, 2)
    { name: 'state', type: 'array<u32>', access: 'read' }, // (1, STATE_WORDS)
    { name: 'candCount', type: 'array<atomic<u32>>', access: 'read_write' }, // (2,) inside, above
    { name: 'cand', type: 'array<u32>', access: 'read_write' }, // (cap, 2) key, arena index
  ],
  uniforms: [...windowUniforms, { name: 'cap', type: 'u32' }],
  workgroupSize: () => [256],
  dispatch: (_p, u) => grid1d(u.chunkCount),
  key: () => '',
  wgsl: () => /* wgsl */ `
${chunkRange}
var<workgroup> wgCount: atomic<u32>;
var<workgroup> wgAbove: atomic<u32>;
var<workgroup> wgBase: u32;
// candidate o = (key, arena index) of window element base + i; dropped past cap
fn emit(o: u32, i: u32, base: u32) {
  if (o < u.cap) {
    cand[2u * o] = scores[base + i] & 0x7fffffffu;
    cand[2u * o + 1u] = u.winStart + base + i;
  }
}
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  if (lid == 0u) {
    atomicStore(&wgCount, 0u);
    atomicStore(&wgAbove, 0u);
  }
  workgroupBarrier();
  var r = vec2<u32>(0u, 0u);
  if (c < u.chunkCount) { r = chunkRange(u.chunkBase + c); }
  let lo = state[5];
  let hi = state[6];
  var n = 0u;
  var above = 0u;
  // the first KEEP matches' positions stay in registers; later ones are found by re-reading
  var p0 = 0u;
  var p1 = 0u;
  var p2 = 0u;
  var p3 = 0u;
  for (var i = lid; i < r.y; i += WG_X) {
    let key = scores[r.x + i] & 0x7fffffffu;
    let inside = key >= lo && key <= hi;
    p0 = select(p0, i, inside && n == 0u);
    p1 = select(p1, i, inside && n == 1u);
    p2 = select(p2, i, inside && n == 2u);
    p3 = select(p3, i, inside && n == 3u);
    n += select(0u, 1u, inside);
    above += select(0u, 1u, key > hi && key <= 0x7f800000u);
  }
  var off = 0u;
  if (n != 0u) { off = atomicAdd(&wgCount, n); }
  if (above != 0u) { atomicAdd(&wgAbove, above); }
  workgroupBarrier();
  if (lid == 0u) {
    let total = atomicLoad(&wgCount);
    wgBase = select(0u, atomicAdd(&candCount[0], total), total != 0u);
    let up = atomicLoad(&wgAbove);
    if (up != 0u) { atomicAdd(&candCount[1], up); }
  }
  workgroupBarrier();
  if (n != 0u) {
    let o = wgBase + off;
    if (n > 0u) { emit(o + 0u, p0, r.x); }
    if (n > 1u) { emit(o + 1u, p1, r.x); }
    if (n > 2u) { emit(o + 2u, p2, r.x); }
    if (n > 3u) { emit(o + 3u, p3, r.x); }
    var left = n - min(n, 4u);
    var q = o + 4u;
    for (var i = p3 + WG_X; left != 0u; i += WG_X) {
      let key = scores[r.x + i] & 0x7fffffffu;
      if (key >= lo && key <= hi) {
        emit(q, i, r.x);
        q += 1u;
        left -= 1u;
      }
    }
  }
}`,
});

/**
 * One thread: the bracket holds the threshold iff above < k ≤ above + inside and inside ≤ cap; then
 * state[4] = 1 and the rank becomes k − above among the candidates. k = 0 always fails (the full
 * passes handle it).
 */
export const topkCheckKernel = defineKernel({
  name: 'topk_check',
  bindings: [
    { name: 'state', type: 'array<u32>', access: 'read_write' }, // (1, STATE_WORDS)
    { name: 'candCount', type: 'array<u32>', access: 'read' }, // (2,) inside, above
  ],
  uniforms: [{ name: 'cap', type: 'u32' }],
  workgroupSize: () => [1],
  dispatch: () => [1, 1, 1],
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(1)
fn main() {
  let k = state[1];
  let inside = candCount[0];
  let above = candCount[1];
  if (above < k && k - above <= inside && inside <= u.cap) {
    state[4] = 1u;
    state[1] = k - above;
  }
}`,
});

/**
 * A later radix pass over the candidates: like topkHistogramKernel (digit (key >> shift) & (2^bits −
 * 1) of the keys matching the prefix under hiMask) but over cand[0 .. candCount[0]). Does nothing unless
 * the group is bracketed. Dispatched for `cap` candidates; workgroups past the count exit early.
 */
export const topkCandHistogramKernel = defineKernel({
  name: 'topk_cand_histogram',
  bindings: [
    { name: 'state', type: 'array<u32>', access: 'read' }, // (1, STATE_WORDS)
    { name: 'candCount', type: 'array<u32>', access: 'read' }, // (1,) candidate count M
    { name: 'cand', type: 'array<u32>', access: 'read' }, // (cap, 2) key, arena index
    { name: 'hist', type: 'array<atomic<u32>>', access: 'read_write' }, // (1, RADIX)
  ],
  uniforms: [
    { name: 'cap', type: 'u32' },
    { name: 'shift', type: 'u32' },
    { name: 'hiMask', type: 'u32' },
  ],
  workgroupSize: () => [256],
  dispatch: (_p, u) => grid1d(Math.ceil(u.cap / TOPK_CAND_PER_WG)),
  key: (p: { bits: number }) => String(p.bits),
  wgsl: (p) => /* wgsl */ `
const BINS = ${1 << p.bits}u;
var<workgroup> wh: array<atomic<u32>, BINS>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  let live = state[2] != 0u && state[4] != 0u;
  let m = select(0u, candCount[0], live);
  let start = min(w * ${TOPK_CAND_PER_WG}u, m);
  let end = min(start + ${TOPK_CAND_PER_WG}u, m);
  if (start == end) { return; } // uniform across the workgroup
  for (var d = lid; d < BINS; d += WG_X) { atomicStore(&wh[d], 0u); }
  workgroupBarrier();
  let prefix = state[0];
  var run = 0u;
  var runDigit = 0u;
  for (var i = start + lid; i < end; i += WG_X) {
    let key = cand[2u * i];
    if (((key ^ prefix) & u.hiMask) == 0u) {
      let d = (key >> u.shift) & (BINS - 1u);
      if (d != runDigit) {
        if (run != 0u) { atomicAdd(&wh[runDigit], run); }
        runDigit = d;
        run = 0u;
      }
      run += 1u;
    }
  }
  if (run != 0u) { atomicAdd(&wh[runDigit], run); }
  workgroupBarrier();
  for (var d = lid; d < BINS; d += WG_X) {
    let v = atomicLoad(&wh[d]);
    if (v != 0u) { atomicAdd(&hist[d], v); }
  }
}`,
});
