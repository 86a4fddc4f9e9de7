/**
 * Tie kernels of the top-k threshold (host side: topk.ts; state layout: topk-kernels.ts). When the cut
 * at the threshold takes only some of the elements equal to it, the lowest indices win. Two ways:
 * for a bracketed group (topk-compact.ts) every tie is a candidate, so one workgroup ranks the tied
 * candidates' arena indices and records the last one taken; otherwise (or with too many ties) a
 * per-chunk tie count over all N and one exclusive scan across chunks let the mask kernel find the cut.
 *
 * Non-goals: ties in any other order than by index.
 * Dimension legend: N elements (one window), C chunks, G groups, M candidates.
 */
import { defineKernel, grid1d } from '../runtime/kernel.js';
import { chunkHelpers, chunkUniforms, TOPK_STATE_WORDS } from './topk-kernels.js';

const SCAN_WG = 256;

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
  if (c < u.chunkCount) {
    // ties need no order (the usual case): no reads, no barriers; the condition is workgroup-uniform
    let s0 = chunkInfo(u.chunkBase + c).g * ${TOPK_STATE_WORDS}u;
    if (state[s0 + 2u] == 0u || state[s0 + 3u] != 1u) {
      if (lid == 0u) { ties[u.chunkBase + c] = 0u; }
      return;
    }
  }
  if (lid == 0u) { atomicStore(&total, 0u); }
  workgroupBarrier();
  if (c < u.chunkCount) {
    let ch = chunkInfo(u.chunkBase + c);
    let s = ch.g * ${TOPK_STATE_WORDS}u;
    let thr = state[s];
    let len = select(0u, ch.len, state[s + 2u] != 0u && state[s + 3u] == 1u);
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

/** Most ties the index ranking handles; more fall back to the tie count over all N (above). */
const MAX_RANKED_TIES = 2048;

/**
 * One workgroup, after the last radix pass of a bracketed group whose cut splits the ties: gathers
 * the arena indices of the candidates equal to the threshold and finds the need-th smallest (rank by
 * counting smaller indices; indices are distinct). Writes it to state[7] and sets state[3] = 2, so
 * the mask takes ties with index ≤ state[7] and the tie count over all N is skipped.
 */
export const topkTieCutKernel = defineKernel({
  name: 'topk_tie_cut',
  bindings: [
    { name: 'state', type: 'array<u32>', access: 'read_write' }, // (1, STATE_WORDS)
    { name: 'candCount', type: 'array<u32>', access: 'read' }, // (2,) inside, above
    { name: 'cand', type: 'array<u32>', access: 'read' }, // (cap, 2) key, arena index
  ],
  uniforms: [],
  workgroupSize: () => [256],
  dispatch: () => [1, 1, 1],
  key: () => '',
  wgsl: () => /* wgsl */ `
var<workgroup> tieIdx: array<u32, ${MAX_RANKED_TIES}>;
var<workgroup> tieN: atomic<u32>;
var<workgroup> go: u32;
@compute @workgroup_size(WG_X)
fn main(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) {
    atomicStore(&tieN, 0u);
    go = select(0u, 1u, state[2] != 0u && state[3] == 1u && state[4] != 0u);
  }
  if (workgroupUniformLoad(&go) == 0u) { return; } // nothing to rank
  let thr = state[0];
  let m = candCount[0];
  for (var i = lid; i < m; i += WG_X) {
    if (cand[2u * i] == thr) {
      let t = atomicAdd(&tieN, 1u);
      if (t < ${MAX_RANKED_TIES}u) { tieIdx[t] = cand[2u * i + 1u]; }
    }
  }
  workgroupBarrier();
  let T = atomicLoad(&tieN);
  if (T > ${MAX_RANKED_TIES}u) { return; }
  let need = state[1]; // 1 <= need < T
  for (var t = lid; t < T; t += WG_X) {
    let idx = tieIdx[t];
    var rank = 0u;
    for (var j = 0u; j < T; j++) { rank += select(0u, 1u, tieIdx[j] < idx); }
    if (rank + 1u == need) {
      state[7] = idx;
      state[3] = 2u;
    }
  }
}`,
});
