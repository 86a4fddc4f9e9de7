/**
 * WGSL kernels of the top-k threshold (host side and the algorithm: topk.ts).
 *
 * Every element is reduced to its key = bits(|score|) = bits(score) & 0x7fffffff: non-negative floats
 * order like their bit patterns, so the k-th largest |score| is found digit by digit (4 radix passes of
 * 8 bits, most significant first). NaN keys (> 0x7f800000) are never counted and never selected.
 * Scores are bound as `array<u32>` so no float arithmetic (denormal flushing) ever touches them.
 *
 * Dimension legend: N elements (one window of the arena), C chunks (one workgroup each), G groups
 * (= tensors in per-tensor mode, 1 in global mode), R = 256 bins (radix of one 8-bit digit).
 *
 * Per-group state, STATE_WORDS u32 each:
 *   [0] prefix   key bits decided so far (after the last pass: the threshold key)
 *   [1] kRem     elements still to take among those matching the prefix (last pass: ties to take)
 *   [2] active   1 while the group selects at least one element
 *   [3] needOrder  1 when only some of the elements equal to the threshold are taken (ties by index)
 *
 * Chunk c (global chunk index) = chunks[2c] tensor, chunks[2c + 1] first arena element; its length is
 * min(chunkSize, tensor end − start). Dispatches cover a window of chunks [chunkBase, chunkBase +
 * chunkCount) whose elements lie in scores[winStart ..) (a bound buffer range; indices are local).
 */
import { defineKernel, grid1d } from '../runtime/kernel.js';

export const TOPK_RADIX = 256;
export const TOPK_STATE_WORDS = 4;
const SELECT_WG = 64;
const MASK_WG = 64;
const SCAN_WG = 256;
const NAN_BITS = '0x7fc00000u';

/** WGSL helpers shared by the per-chunk kernels: chunk lookup and key extraction. */
const chunkHelpers = /* wgsl */ `
struct Chunk { t: u32, local: u32, len: u32, g: u32 }
fn chunkInfo(cc: u32) -> Chunk {
  let t = chunks[2u * cc];
  let start = chunks[2u * cc + 1u];
  let end = segments[2u * t] + segments[2u * t + 1u];
  return Chunk(t, start - u.winStart, min(u.chunkSize, end - start), select(0u, t, u.perTensor == 1u));
}
// key = bits(|x|); keys above +Inf (0x7f800000) are NaN
fn keyOf(bits: u32) -> u32 { return bits & 0x7fffffffu; }
`;

const chunkUniforms = [
  { name: 'chunkBase', type: 'u32' },
  { name: 'chunkCount', type: 'u32' },
  { name: 'winStart', type: 'u32' },
  { name: 'chunkSize', type: 'u32' },
  { name: 'perTensor', type: 'u32' },
] as const;

/** Zeroes the histograms (G × R), sets each group's state from its k, and zeroes `zeroWords` mask words. */
export const topkInitKernel = defineKernel({
  name: 'topk_init',
  bindings: [
    { name: 'kIn', type: 'array<u32>', access: 'read' }, // (G,)
    { name: 'state', type: 'array<u32>', access: 'read_write' }, // (G, STATE_WORDS)
    { name: 'hist', type: 'array<u32>', access: 'read_write' }, // (G, R)
    { name: 'mask', type: 'array<u32>', access: 'read_write' }, // (ceil(N / 32),)
  ],
  uniforms: [
    { name: 'groups', type: 'u32' },
    { name: 'zeroWords', type: 'u32' },
    { name: 'threads', type: 'u32' },
  ],
  workgroupSize: () => [256],
  dispatch: (_p, u) => grid1d(Math.ceil(u.threads / 256)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i < u.groups * ${TOPK_RADIX}u) { hist[i] = 0u; }
  if (i < u.groups) {
    let s = i * ${TOPK_STATE_WORDS}u;
    state[s] = 0u;
    state[s + 1u] = kIn[i];
    state[s + 2u] = 1u;
    state[s + 3u] = 0u;
  }
  if (i < u.zeroWords) { mask[i] = 0u; }
}`,
});

/**
 * One radix pass, per chunk: counts digit (key >> shift) & 255 of the elements whose higher digits
 * equal the group's prefix ((key ^ prefix) & hiMask == 0) into a workgroup histogram, then adds the
 * non-zero bins to the group's global histogram (integer atomics: order-independent, deterministic).
 * Each thread merges runs of equal digits before touching workgroup memory: typical scores share a
 * few exponents, so pass 0 costs about one atomic per run. (A 16-bin variant counting in registers
 * with no per-element atomics was measured slower on lavapipe: twice the passes over the data.)
 */
export const topkHistogramKernel = defineKernel({
  name: 'topk_histogram',
  bindings: [
    { name: 'scores', type: 'array<u32>', access: 'read' }, // (N,) f32 bits, window
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segments', type: 'array<u32>', access: 'read' }, // (T, 2)
    { name: 'state', type: 'array<u32>', access: 'read' }, // (G, STATE_WORDS)
    { name: 'hist', type: 'array<atomic<u32>>', access: 'read_write' }, // (G, R)
  ],
  uniforms: [...chunkUniforms, { name: 'shift', type: 'u32' }, { name: 'hiMask', type: 'u32' }],
  workgroupSize: () => [TOPK_RADIX],
  dispatch: (_p, u) => grid1d(u.chunkCount),
  key: () => '',
  wgsl: () => /* wgsl */ `
${chunkHelpers}
var<workgroup> wh: array<atomic<u32>, ${TOPK_RADIX}>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  atomicStore(&wh[lid], 0u);
  workgroupBarrier();
  var g = 0u;
  if (c < u.chunkCount) {
    let ch = chunkInfo(u.chunkBase + c);
    g = ch.g;
    let s = g * ${TOPK_STATE_WORDS}u;
    let prefix = state[s];
    // an inactive group matches nothing: its loop bound is 0
    let len = select(0u, ch.len, state[s + 2u] != 0u);
    // run-length aggregation: skewed digits (exponents in pass 0) cost one atomic per run, not per element
    var run = 0u;
    var runDigit = 0u;
    for (var i = lid; i < len; i += WG_X) {
      let key = keyOf(scores[ch.local + i]);
      if (key <= 0x7f800000u && ((key ^ prefix) & u.hiMask) == 0u) {
        let d = (key >> u.shift) & 255u;
        if (d != runDigit) {
          if (run != 0u) { atomicAdd(&wh[runDigit], run); }
          runDigit = d;
          run = 0u;
        }
        run += 1u;
      }
    }
    if (run != 0u) { atomicAdd(&wh[runDigit], run); }
  }
  workgroupBarrier();
  if (c < u.chunkCount) {
    let v = atomicLoad(&wh[lid]);
    if (v != 0u) { atomicAdd(&hist[g * ${TOPK_RADIX}u + lid], v); }
  }
}`,
});

/**
 * After a histogram pass, per group: walks the bins from the top until the running count reaches kRem,
 * appends that digit to the prefix, subtracts the elements above it from kRem, and zeroes the bins for
 * the next pass. Pass 0 first clamps k to the number of non-NaN elements. The last pass writes the
 * threshold (NaN bits when nothing is selected) and whether ties need index order.
 */
export const topkSelectKernel = defineKernel({
  name: 'topk_select',
  bindings: [
    { name: 'state', type: 'array<u32>', access: 'read_write' }, // (G, STATE_WORDS)
    { name: 'hist', type: 'array<u32>', access: 'read_write' }, // (G, R)
    { name: 'threshold', type: 'array<u32>', access: 'read_write' }, // (G,) f32 bits
  ],
  uniforms: [
    { name: 'groups', type: 'u32' },
    { name: 'shift', type: 'u32' },
    { name: 'first', type: 'u32' },
    { name: 'last', type: 'u32' },
  ],
  workgroupSize: () => [SELECT_WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.groups / SELECT_WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * WG_X;
  if (g >= u.groups) { return; }
  let s = g * ${TOPK_STATE_WORDS}u;
  let b = g * ${TOPK_RADIX}u;
  var kRem = state[s + 1u];
  if (u.first == 1u) {
    var total = 0u;
    for (var d = 0u; d < ${TOPK_RADIX}u; d++) { total += hist[b + d]; }
    kRem = min(kRem, total);
    if (kRem == 0u) { state[s + 2u] = 0u; }
  }
  if (state[s + 2u] != 0u) {
    // find digit d: (count of bins above d) < kRem <= (count of bins at or above d)
    var above = 0u;
    var d = ${TOPK_RADIX - 1}u;
    loop {
      let c = hist[b + d];
      if (above + c >= kRem || d == 0u) { break; }
      above += c;
      d -= 1u;
    }
    let prefix = state[s] | (d << u.shift);
    kRem -= above;
    state[s] = prefix;
    state[s + 1u] = kRem;
    if (u.last == 1u) {
      state[s + 3u] = select(0u, 1u, kRem < hist[b + d]);
      threshold[g] = prefix;
    }
  } else if (u.last == 1u) {
    threshold[g] = ${NAN_BITS};
  }
  for (var d = 0u; d < ${TOPK_RADIX}u; d++) { hist[b + d] = 0u; }
}`,
});

/** Per chunk: how many elements equal the group's threshold (0 without reading when ties need no order). */
export const topkTieCountKernel = defineKernel({
  name: 'topk_tie_count',
  bindings: [
    { name: 'scores', type: 'array<u32>', access: 'read' }, // (N,) f32 bits, window
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segments', type: 'array<u32>', access: 'read' }, // (T, 2)
    { name: 'state', type: 'array<u32>', access: 'read' }, // (G, STATE_WORDS)
    { name: 'ties', type: 'array<u32>', access: 'read_write' }, // (C,) counts | (C,) exclusive scan | (G,) bases
  ],
  uniforms: chunkUniforms,
  workgroupSize: () => [256],
  dispatch: (_p, u) => grid1d(u.chunkCount),
  key: () => '',
  wgsl: () => /* wgsl */ `
${chunkHelpers}
var<workgroup> total: atomic<u32>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  if (lid == 0u) { atomicStore(&total, 0u); }
  workgroupBarrier();
  if (c < u.chunkCount) {
    let ch = chunkInfo(u.chunkBase + c);
    let s = ch.g * ${TOPK_STATE_WORDS}u;
    let thr = state[s];
    let len = select(0u, ch.len, state[s + 2u] != 0u && state[s + 3u] != 0u);
    var n = 0u;
    for (var i = lid; i < len; i += WG_X) {
      n += select(0u, 1u, keyOf(scores[ch.local + i]) == thr);
    }
    if (n != 0u) { atomicAdd(&total, n); }
  }
  workgroupBarrier();
  if (c < u.chunkCount && lid == 0u) { ties[u.chunkBase + c] = atomicLoad(&total); }
}`,
});

/**
 * One workgroup: exclusive scan of the per-chunk tie counts in chunk (= index) order into
 * ties[C + c], and per group the scan value at its first chunk into ties[2C + g], so a chunk's ties
 * before it within its group are ties[C + c] − ties[2C + g]. Groups own contiguous chunk ranges.
 */
export const topkTieScanKernel = defineKernel({
  name: 'topk_tie_scan',
  bindings: [
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'ties', type: 'array<u32>', access: 'read_write' }, // (2C + G,)
  ],
  uniforms: [
    { name: 'chunkTotal', type: 'u32' },
    { name: 'perTensor', type: 'u32' },
  ],
  workgroupSize: () => [SCAN_WG],
  dispatch: () => [1, 1, 1],
  key: () => '',
  wgsl: () => /* wgsl */ `
var<workgroup> part: array<u32, WG_X>;
fn groupOf(c: u32) -> u32 { return select(0u, chunks[2u * c], u.perTensor == 1u); }
@compute @workgroup_size(WG_X)
fn main(@builtin(local_invocation_index) lid: u32) {
  let C = u.chunkTotal;
  let per = (C + WG_X - 1u) / WG_X;
  let c0 = min(lid * per, C);
  let c1 = min(c0 + per, C);
  var sum = 0u;
  for (var c = c0; c < c1; c++) { sum += ties[c]; }
  part[lid] = sum;
  workgroupBarrier();
  var run = 0u;
  for (var j = 0u; j < lid; j++) { run += part[j]; }
  for (var c = c0; c < c1; c++) {
    ties[C + c] = run;
    let g = groupOf(c);
    if (c == 0u || groupOf(c - 1u) != g) { ties[2u * C + g] = run; }
    run += ties[c];
  }
}`,
});

/**
 * Per chunk: the packed mask. Element i is selected iff key > threshold key (and not NaN), or key ==
 * threshold key and it is among the first kRem such elements of its group in index order. Only the
 * chunk where that cut falls needs an in-chunk scan of per-thread tie counts. Each thread owns a
 * contiguous run of whole 32-element words (chunk starts are multiples of 32), so no word is shared.
 */
export const topkMaskKernel = defineKernel({
  name: 'topk_mask',
  bindings: [
    { name: 'scores', type: 'array<u32>', access: 'read' }, // (N,) f32 bits, window
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segments', type: 'array<u32>', access: 'read' }, // (T, 2)
    { name: 'state', type: 'array<u32>', access: 'read' }, // (G, STATE_WORDS)
    { name: 'ties', type: 'array<u32>', access: 'read' }, // (2C + G,)
    { name: 'mask', type: 'array<u32>', access: 'read_write' }, // (ceil(N / 32),) window
  ],
  uniforms: [...chunkUniforms, { name: 'chunkTotal', type: 'u32' }],
  workgroupSize: () => [MASK_WG],
  dispatch: (_p, u) => grid1d(u.chunkCount),
  key: () => '',
  wgsl: () => /* wgsl */ `
${chunkHelpers}
var<workgroup> part: array<u32, WG_X>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  var ch = Chunk(0u, 0u, 0u, 0u);
  var thr = 0u;
  var isActive = false;
  var need = 0u;      // ties the group takes
  var before = 0u;    // ties of the group in earlier chunks
  var allTies = true; // every tie of this chunk is taken
  var cut = false;    // the cut falls inside this chunk
  if (c < u.chunkCount) {
    let cc = u.chunkBase + c;
    ch = chunkInfo(cc);
    let s = ch.g * ${TOPK_STATE_WORDS}u;
    thr = state[s];
    isActive = state[s + 2u] != 0u;
    need = state[s + 1u];
    if (state[s + 3u] != 0u) {
      before = ties[u.chunkTotal + cc] - ties[2u * u.chunkTotal + ch.g];
      let mine = ties[cc];
      allTies = before + mine <= need;
      cut = before < need && !allTies;
    }
  }
  let words = (ch.len + 31u) / 32u;
  let per = (words + WG_X - 1u) / WG_X;
  let w0 = min(lid * per, words);
  let w1 = min(w0 + per, words);
  var n = 0u;
  if (cut) {
    for (var i = w0 * 32u; i < min(w1 * 32u, ch.len); i++) {
      n += select(0u, 1u, keyOf(scores[ch.local + i]) == thr);
    }
  }
  part[lid] = n;
  workgroupBarrier();
  var ord = before;
  for (var j = 0u; j < lid; j++) { ord += part[j]; }
  for (var w = w0; w < w1; w++) {
    var bits = 0u;
    let e0 = w * 32u;
    let e1 = min(e0 + 32u, ch.len);
    if (isActive) {
      for (var i = e0; i < e1; i++) {
        let key = keyOf(scores[ch.local + i]);
        var take = key > thr && key <= 0x7f800000u;
        if (key == thr) {
          take = allTies || (cut && ord < need);
          ord += 1u;
        }
        if (take) { bits |= 1u << (i - e0); }
      }
    }
    mask[ch.local / 32u + w] = bits;
  }
}`,
});
