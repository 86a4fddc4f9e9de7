/**
 * WGSL kernels of the top-k threshold (host side and the algorithm: topk.ts).
 *
 * Every element is reduced to its key = bits(|score|) = bits(score) & 0x7fffffff: non-negative floats
 * order like their bit patterns, so the k-th largest |score| is found digit by digit (TOPK_DIGITS: 12,
 * 11 and 8 bits, most significant first). NaN keys (> 0x7f800000) are never counted and never selected.
 * Scores are bound as `array<u32>` so no float arithmetic (denormal flushing) ever touches them.
 *
 * Dimension legend: N elements (one window of the arena), C chunks (one workgroup each), G groups
 * (= tensors in per-tensor mode, 1 in global mode), R = 4096 bins (the widest digit).
 *
 * Per-group state, STATE_WORDS u32 each:
 *   [0] prefix   key bits decided so far (after the last pass: the threshold key)
 *   [1] kRem     elements still to take among those matching the prefix (last pass: ties to take)
 *   [2] active   1 while the group selects at least one element
 *   [3] needOrder  1 when only some of the elements equal to the threshold are taken (ties by index);
 *                  2 when that cut is already known as an arena index, [7] (topk-ties.ts)
 *   [4] bracketed  1 when the candidates in [lo, hi] were copied out and hold the threshold
 *                  (topk-compact.ts); the radix passes then read the candidates, not the scores
 *   [5] lo, [6] hi   the bracket (keys) estimated from a sample; [7] last tie index taken
 *   [8] the first-digit bin the bracket refines (or 0xffffffff), [9] sample keys above that bin
 *
 * Chunk c (global chunk index) = chunks[2c] tensor, chunks[2c + 1] first arena element; its length is
 * min(chunkSize, tensor end − start). Dispatches cover a window of chunks [chunkBase, chunkBase +
 * chunkCount) whose elements lie in scores[winStart ..) (a bound buffer range; indices are local).
 */
import { defineKernel, grid1d } from '../runtime/kernel.js';

/** Bins of the widest digit (the first pass: key bits 30..19). */
export const TOPK_RADIX = 4096;
export const TOPK_STATE_WORDS = 10;
/** Digit schedule, most significant first: [shift, bits] covering key bits 30..0. */
export const TOPK_DIGITS: readonly (readonly [number, number])[] = [
  [19, 12],
  [8, 11],
  [0, 8],
];
const SELECT_WG = 64;
const MASK_WG = 64;
const NAN_BITS = '0x7fc00000u';

/** WGSL helpers shared by the per-chunk kernels: chunk lookup and key extraction. */
export const chunkHelpers = /* wgsl */ `
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

export const chunkUniforms = [
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
    { name: 'candCount', type: 'array<u32>', access: 'read_write' }, // (2,) candidates, elements above
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
    state[s + 4u] = 0u;
  }
  if (i < 2u) { candCount[i] = 0u; }
  if (i < u.zeroWords) { mask[i] = 0u; }
}`,
});

/**
 * One radix pass over the data, per chunk: counts digit (key >> shift) & (2^bits − 1) of the elements
 * whose higher digits equal the group's prefix ((key ^ prefix) & hiMask == 0) into a workgroup
 * histogram, then adds the non-zero bins to the group's global histogram (integer atomics:
 * order-independent, deterministic). Each thread merges runs of equal digits before touching workgroup
 * memory. With `skip` = 1 the pass does nothing when the group is bracketed (the candidate pass
 * of topk-compact.ts runs instead).
 */
export const topkHistogramKernel = defineKernel({
  name: 'topk_histogram',
  bindings: [
    { name: 'scores', type: 'array<u32>', access: 'read' }, // (N,) f32 bits, window
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segments', type: 'array<u32>', access: 'read' }, // (T, 2)
    { name: 'state', type: 'array<u32>', access: 'read' }, // (G, STATE_WORDS)
    { name: 'hist', type: 'array<atomic<u32>>', access: 'read_write' }, // (G, RADIX)
  ],
  uniforms: [...chunkUniforms, { name: 'shift', type: 'u32' }, { name: 'hiMask', type: 'u32' }, { name: 'skip', type: 'u32' }],
  workgroupSize: () => [256],
  dispatch: (_p, u) => grid1d(u.chunkCount),
  key: (p: { bits: number }) => String(p.bits),
  wgsl: (p) => /* wgsl */ `
${chunkHelpers}
const BINS = ${1 << p.bits}u;
var<workgroup> wh: array<atomic<u32>, BINS>;
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  // skipped passes (bracketed group) leave before any barrier; the condition is workgroup-uniform
  if (u.skip == 1u && c < u.chunkCount && state[chunkInfo(u.chunkBase + c).g * ${TOPK_STATE_WORDS}u + 4u] != 0u) { return; }
  for (var d = lid; d < BINS; d += WG_X) { atomicStore(&wh[d], 0u); }
  workgroupBarrier();
  var g = 0u;
  if (c < u.chunkCount) {
    let ch = chunkInfo(u.chunkBase + c);
    g = ch.g;
    let s = g * ${TOPK_STATE_WORDS}u;
    let prefix = state[s];
    // an inactive (or bracketed, with skip) group matches nothing: its loop bound is 0
    let len = select(0u, ch.len, state[s + 2u] != 0u && (u.skip == 0u || state[s + 4u] == 0u));
    var run = 0u;
    var runDigit = 0u;
    for (var i = lid; i < len; i += WG_X) {
      let key = keyOf(scores[ch.local + i]);
      if (key <= 0x7f800000u && ((key ^ prefix) & u.hiMask) == 0u) {
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
  }
  workgroupBarrier();
  if (c < u.chunkCount) {
    for (var d = lid; d < BINS; d += WG_X) {
      let v = atomicLoad(&wh[d]);
      if (v != 0u) { atomicAdd(&hist[g * ${TOPK_RADIX}u + d], v); }
    }
  }
}`,
});

/**
 * After a histogram pass, per group: walks the 2^bits bins from the top until the running count
 * reaches kRem, appends that digit to the prefix, subtracts the elements above it from kRem, and
 * zeroes the bins for the next pass. Pass 0 first clamps k to the number of counted elements. The
 * last pass writes the threshold (NaN bits when nothing is selected) and whether ties need index order.
 */
export const topkSelectKernel = defineKernel({
  name: 'topk_select',
  bindings: [
    { name: 'state', type: 'array<u32>', access: 'read_write' }, // (G, STATE_WORDS)
    { name: 'hist', type: 'array<u32>', access: 'read_write' }, // (G, RADIX)
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
  key: (p: { bits: number }) => String(p.bits),
  wgsl: (p) => /* wgsl */ `
const BINS = ${1 << p.bits}u;
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * WG_X;
  if (g >= u.groups) { return; }
  let s = g * ${TOPK_STATE_WORDS}u;
  let b = g * ${TOPK_RADIX}u;
  var kRem = state[s + 1u];
  if (u.first == 1u) {
    var total = 0u;
    for (var d = 0u; d < BINS; d++) { total += hist[b + d]; }
    kRem = min(kRem, total);
    if (kRem == 0u) { state[s + 2u] = 0u; }
  }
  if (state[s + 2u] != 0u) {
    // find digit d: (count of bins above d) < kRem <= (count of bins at or above d)
    var above = 0u;
    var d = BINS - 1u;
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
  for (var d = 0u; d < BINS; d++) { hist[b + d] = 0u; }
}`,
});

/**
 * Per chunk: the packed mask. Element i is selected iff key > threshold key (and not NaN), or key ==
 * threshold key and it is among the first kRem such elements of its group in index order: ties up to
 * the arena index state[7] when that is known (state[3] = 2), else from the tie scan (topk-ties.ts),
 * where only the chunk the cut falls in needs an in-chunk scan of per-thread tie counts (each thread
 * then owns a contiguous run of whole words). Other chunks interleave words across threads with no
 * barrier. Chunk starts are multiples of 32, so no mask word is shared between threads or chunks.
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
  var tieEnd = 0u;    // ties at window indices below tieEnd are taken (cut known by index)
  var cut = false;    // the cut falls inside this chunk
  if (c < u.chunkCount) {
    let cc = u.chunkBase + c;
    ch = chunkInfo(cc);
    let s = ch.g * ${TOPK_STATE_WORDS}u;
    thr = state[s];
    isActive = state[s + 2u] != 0u;
    need = state[s + 1u];
    if (state[s + 3u] == 2u) {
      allTies = false;
      let last = state[s + 7u]; // arena index of the last tie taken
      tieEnd = select(0u, last - u.winStart + 1u, last >= u.winStart);
    }
    if (state[s + 3u] == 1u) {
      before = ties[u.chunkTotal + cc] - ties[2u * u.chunkTotal + ch.g];
      let mine = ties[cc];
      allTies = before + mine <= need;
      cut = before < need && !allTies;
    }
  }
  let words = (ch.len + 31u) / 32u;
  if (!cut) {
    // no in-chunk order needed (workgroup-uniform): interleaved words, branch-free bits, no barrier
    for (var w = lid; w < words; w += WG_X) {
      var bits = 0u;
      let e0 = w * 32u;
      if (isActive) {
        for (var b = 0u; b < min(32u, ch.len - e0); b++) {
          let key = keyOf(scores[ch.local + e0 + b]);
          let tie = key == thr && (allTies || ch.local + e0 + b < tieEnd);
          bits |= select(0u, 1u << b, (key > thr && key <= 0x7f800000u) || tie);
        }
      }
      mask[ch.local / 32u + w] = bits;
    }
    return;
  }
  let per = (words + WG_X - 1u) / WG_X;
  let w0 = min(lid * per, words);
  let w1 = min(w0 + per, words);
  var n = 0u;
  for (var i = w0 * 32u; i < min(w1 * 32u, ch.len); i++) {
    n += select(0u, 1u, keyOf(scores[ch.local + i]) == thr);
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
          take = allTies || ord < need;
          ord += 1u;
        }
        if (take) { bits |= 1u << (i - e0); }
      }
    }
    mask[ch.local / 32u + w] = bits;
  }
}`,
});
