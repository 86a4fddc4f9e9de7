/**
 * Fused importance kernels over multi-tensor arenas (segments.ts): SPIDER's allocation (see
 * shared/reference/spider.md) and the hard-mask family's scores, one dispatch per pass covering every
 * tensor of a model.
 *
 * SPIDER, per tensor (every statistic is per tensor):
 *   rank(x) = sigmoid((|x| − mean|x|) / std|x|)   (population std). When std|x| = 0: an all-zero
 *     tensor ranks 0 everywhere (spider.md); a constant non-zero tensor ranks 0.5 everywhere (every
 *     z-score is 0/0; keel takes the limit "all entries equally important", sigmoid(0)).
 *   spiderInit: O = rank(W0)                               — stats pass + rank pass
 *   spiderStep: S ← S + g, G = rank(S)                     — S update fused with the |S| statistics
 *               c = G / (O + G) where G > O, else 0        — fused with per-chunk (Σc, #c≠0)
 *               c ← min(c / mean(c over c ≠ 0), 1)          — a per-tensor fold and a normalize pass
 * Scores (importanceScores), one fused elementwise pass specialized by mode:
 *   'magnitude' |W0| · 'snip' |W·g| · 'grad_sum' S ← S + g, |S| · 'fisher' F ← F + g², F
 *
 * Padding elements between tensors are never written. Non-goals: top-k thresholds and masking
 * (applied by the optimizer), the W ← W0 + c ⊙ (W − W0) blend (fused into the AdamW pass).
 *
 * Legend: N arena elements (padding included), T tensors, C chunks (= workgroups of a dispatch).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import {
  importanceArena,
  IMPORTANCE_CHUNK_UNIFORMS,
  importanceChunkParams,
  importanceChunkUniforms,
  importanceChunkWgsl,
  importanceCombine,
  importanceFoldWgsl,
  segmentStats,
  type ImportanceChunkParams,
} from './importance-stats.js';
import type { SegmentTable } from './segments.js';

export type ImportanceMode = 'magnitude' | 'snip' | 'grad_sum' | 'fisher';

const RANK_WGSL = /* wgsl */ `
// sigmoid of the per-tensor z-score of a = |x|; std = 0: 0 for an all-zero tensor, else 0.5
// (inv = 1 / std, hoisted out of the element loop)
fn rank4(a: vec4<f32>, mean: f32, sd: f32, inv: f32) -> vec4<f32> {
  if (sd > 0.0) {
    let z = clamp((a - mean) * inv, vec4<f32>(-80.0), vec4<f32>(80.0));
    return 1.0 / (1.0 + exp(-z));
  }
  return vec4<f32>(select(0.5, 0.0, mean == 0.0));
}`;

/** Writes vec4 `r` to `arr[i]`, only the lanes in mask `m` when the vec4 is the chunk's partial tail. */
const store = (arr: string, r: string) =>
  `if (full) { ${arr}[i] = ${r}; } else { for (var j = 0u; j < 4u; j++) { if (m[j]) { ${arr}[i][j] = ${r}[j]; } } }`;

/** A chunk kernel: workgroup w walks chunk w in vec4s; `body` sees i (vec4 index) and m (lane mask). */
function chunkLoop(p: ImportanceChunkParams, pre: string, body: string, post = ''): string {
  return /* wgsl */ `
${importanceChunkWgsl()}
${RANK_WGSL}
@compute @workgroup_size(WG_X)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= u.nchunks) { return; }
  let ch = loadChunk(w);
  let base = ch.first / 4u;
  ${pre}
  for (var k = 0u; k < u.items; k++) {
    let v = tid + k * WG_X;
    let e = 4u * v;
    if (e >= ch.n) { break; }
    let full = e + 4u <= ch.n;
    let m = laneMask(e, ch.n);
    let i = base + v;
    ${body}
  }
  ${post}
}`;
}

const chunkCommon = {
  uniforms: IMPORTANCE_CHUNK_UNIFORMS,
  workgroupSize: (p: ImportanceChunkParams) => [p.wg] as const,
  dispatch: (_p: ImportanceChunkParams, u: Readonly<Record<'nchunks', number>>) => grid1d(u.nchunks),
};

/** out = rank(x) per tensor, given stats (T, 2) = mean, std of |x|. */
export const spiderRankKernel = defineKernel({
  name: 'spider_rank',
  bindings: [
    { name: 'x', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'stats', type: 'array<f32>', access: 'read' }, // (T, 2) mean, std of |x|
    { name: 'out', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2)
  ],
  ...chunkCommon,
  key: (p: ImportanceChunkParams) => `wg${p.wg}`,
  wgsl: (p: ImportanceChunkParams) =>
    chunkLoop(p, 'let mean = stats[2u * ch.t]; let sd = stats[2u * ch.t + 1u]; let inv = 1.0 / sd;', `let r = rank4(abs(x[i]), mean, sd, inv);\n    ${store('out', 'r')}`),
});

/** G = rank(S); c = G/(O+G) where G > O else 0; chunk partials (Σc, #nonzero). */
export const spiderAllocKernel = defineKernel({
  name: 'spider_alloc',
  bindings: [
    { name: 's', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,) running gradient sum
    { name: 'o', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,) rank(W0)
    { name: 'stats', type: 'array<f32>', access: 'read' }, // (T, 2) mean, std of |S|
    { name: 'c', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,) allocation
    { name: 'part', type: 'array<f32>', access: 'read_write' }, // (C, 2) Σc, #(c > 0)
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2)
  ],
  ...chunkCommon,
  key: (p: ImportanceChunkParams) => `wg${p.wg}`,
  wgsl: (p: ImportanceChunkParams) =>
    `var<workgroup> sh: array<vec2<f32>, WG_X>; // Σc, #(c > 0) (exact: a chunk has < 2^24 elements)
fn add2(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> { return a + b; }\n` +
    chunkLoop(
      p,
      'let mean = stats[2u * ch.t]; let sd = stats[2u * ch.t + 1u]; let inv = 1.0 / sd; var sum = 0.0; var cnt = 0u;',
      `let G = rank4(abs(s[i]), mean, sd, inv);
    let O = o[i];
    let keep = (G > O) & m;
    let r = select(vec4<f32>(0.0), G / (O + G), keep);
    ${store('c', 'r')}
    sum += (r.x + r.y) + (r.z + r.w);
    cnt += dot(select(vec4<u32>(0u), vec4<u32>(1u), keep), vec4<u32>(1u));`,
      `sh[tid] = vec2<f32>(sum, f32(cnt));
  ${importanceFoldWgsl('add2', 'part[2u * w] = r.x;\n    part[2u * w + 1u] = r.y;')}`,
    ),
});

/** c ← min(c / mean(nonzero c), 1) per tensor, given sums (T, 2) = Σc, #(c > 0). */
export const spiderNormalizeKernel = defineKernel({
  name: 'spider_normalize',
  bindings: [
    { name: 'c', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
    { name: 'sums', type: 'array<f32>', access: 'read' }, // (T, 2) Σc, #(c > 0)
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2)
  ],
  ...chunkCommon,
  key: (p: ImportanceChunkParams) => `wg${p.wg}`,
  wgsl: (p: ImportanceChunkParams) =>
    chunkLoop(
      p,
      // no nonzero entry: every c is 0 and stays 0
      `let cnt = sums[2u * ch.t + 1u];
  if (cnt == 0.0) { return; }
  let mean = sums[2u * ch.t] / cnt;`,
      `let r = min(c[i] / mean, vec4<f32>(1.0));\n    ${store('c', 'r')}`,
    ),
});

interface ScoreParams extends ImportanceChunkParams {
  readonly mode: ImportanceMode;
}

/** Stateless scores: 'magnitude' out = |a| (a = W0); 'snip' out = |a·b| (a = W, b = g). */
export const importanceScoresKernel = defineKernel({
  name: 'importance_scores',
  bindings: [
    { name: 'out', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
    { name: 'a', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'b', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2)
  ],
  ...chunkCommon,
  key: (p: ScoreParams) => `wg${p.wg}|${p.mode}`,
  wgsl: (p: ScoreParams) =>
    // magnitude binds W0 as both a and b; '_ = &b' keeps b in the pipeline layout
    chunkLoop(p, p.mode === 'snip' ? '' : '_ = &b;', `let r = ${p.mode === 'snip' ? 'abs(a[i] * b[i])' : 'abs(a[i])'};\n    ${store('out', 'r')}`),
});

/** Stateful scores: 'grad_sum' state ← state + g, out = |state|; 'fisher' state ← state + g², out = state. */
export const importanceAccumScoresKernel = defineKernel({
  name: 'importance_accum_scores',
  bindings: [
    { name: 'state', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,) S or F
    { name: 'g', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'out', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
    { name: 'chunks', type: 'array<u32>', access: 'read' }, // (C, 2)
    { name: 'segs', type: 'array<u32>', access: 'read' }, // (T, 2)
  ],
  ...chunkCommon,
  key: (p: ScoreParams) => `wg${p.wg}|${p.mode}`,
  wgsl: (p: ScoreParams) => {
    const fisher = p.mode === 'fisher';
    return chunkLoop(
      p,
      '',
      `let gv = g[i];
    let sv = state[i] + ${fisher ? 'gv * gv' : 'gv'};
    ${store('state', 'sv')}
    let r = ${fisher ? 'sv' : 'abs(sv)'};
    ${store('out', 'r')}`,
    );
  },
});

function distinct(op: string, named: Record<string, GpuBuffer>): void {
  const seen = new Map<GpuBuffer, string>();
  for (const [name, buf] of Object.entries(named)) {
    const other = seen.get(buf);
    if (other) throw new Error(`${op}: arenas '${other}' and '${name}' must be different buffers`);
    seen.set(buf, name);
  }
}

export interface SpiderInitOptions {
  /** Pre-trained weights W0, an arena laid out by `table`. */
  w0: GpuBuffer;
  table: SegmentTable;
  /** Where to write O (an arena); allocated when absent (its padding is then undefined, and never read). */
  out?: GpuBuffer;
}

/** SPIDER's pre-trained importance O = rank(W0), per tensor. Three dispatches, no readback. */
export function spiderInit(rt: Runtime, { w0, table, out }: SpiderInitOptions): GpuBuffer {
  const op = 'spiderInit';
  const x = importanceArena(rt, op, 'w0', w0, table);
  const o = out ?? rt.createBuffer(table.arenaLength * 4);
  if (o === w0) throw new Error(`${op}: arenas 'w0' and 'out' must be different buffers`);
  const ob = importanceArena(rt, op, 'out', o, table);
  if (table.chunkCount === 0) return o;
  const stats = segmentStats(rt, w0, table, { abs: true, op });
  rt.dispatch(
    spiderRankKernel,
    importanceChunkParams(table),
    { buffers: { x, stats, out: ob, chunks: table.chunks, segs: table.segments }, uniforms: importanceChunkUniforms(table) },
  );
  rt.release(stats);
  return o;
}

export interface SpiderStepOptions {
  /** This step's (clipped) raw gradients. */
  g: GpuBuffer;
  /** Running signed gradient sum, updated in place: S ← S + g. */
  s: GpuBuffer;
  /** O = rank(W0) from spiderInit. */
  o: GpuBuffer;
  /** Output: the final allocation c ∈ [0, 1] (normalized and clamped). */
  c: GpuBuffer;
  table: SegmentTable;
  /** Optional output, (T, 2) f32: per tensor (Σc before normalizing, #(c > 0)) — the density of the step's allocation. */
  sums?: GpuBuffer;
}

/**
 * One SPIDER step: S ← S + g, G = rank(S), c = G/(O+G) where G > O else 0, then per tensor
 * c ← min(c / mean(nonzero c), 1). Five dispatches (S update + |S| partials, fold, allocation +
 * (Σc, count) partials, fold, normalize), no readback.
 */
export function spiderStep(rt: Runtime, { g, s, o, c, table, sums: sumsOut }: SpiderStepOptions): void {
  const op = 'spiderStep';
  distinct(op, { g, s, o, c });
  const sb = importanceArena(rt, op, 's', s, table);
  const ob = importanceArena(rt, op, 'o', o, table);
  const cb = importanceArena(rt, op, 'c', c, table);
  importanceArena(rt, op, 'g', g, table);
  if (table.chunkCount === 0) return;
  const params = importanceChunkParams(table);
  const uniforms = importanceChunkUniforms(table);
  const tables = { chunks: table.chunks, segs: table.segments };
  const stats = segmentStats(rt, s, table, { abs: true, accumulate: g, op });
  const part = rt.createBuffer(table.chunkCount * 8);
  rt.dispatch(spiderAllocKernel, params, { buffers: { s: sb, o: ob, stats, c: cb, part, ...tables }, uniforms });
  const sums = importanceCombine(rt, part, table, 'sums');
  rt.dispatch(spiderNormalizeKernel, params, { buffers: { c: cb, sums, ...tables }, uniforms });
  if (sumsOut) {
    if (sumsOut.size < table.lengths.length * 8) throw new Error(`${op}: sums holds ${sumsOut.size} bytes, needs ${table.lengths.length * 8} for (T = ${table.lengths.length}, 2) f32`);
    rt.copy(sums, sumsOut, table.lengths.length * 8);
  }
  rt.release(stats);
  rt.release(part);
  rt.release(sums);
}

export interface ImportanceScoresOptions {
  mode: ImportanceMode;
  /** 'magnitude': pre-trained weights. */
  w0?: GpuBuffer;
  /** 'snip': current weights. */
  w?: GpuBuffer;
  /** 'snip', 'grad_sum', 'fisher': this step's gradients. */
  g?: GpuBuffer;
  /** 'grad_sum': running gradient sum, updated in place (S ← S + g). */
  s?: GpuBuffer;
  /** 'fisher': running squared-gradient sum, updated in place (F ← F + g²). */
  f?: GpuBuffer;
  /** Scores arena (written for every tensor element, padding untouched). */
  out: GpuBuffer;
  table: SegmentTable;
}

/** Importance scores for the hard-mask family, one fused pass over every tensor. Returns `out`. */
export function importanceScores(rt: Runtime, options: ImportanceScoresOptions): GpuBuffer {
  const { mode, out, table } = options;
  const op = `importanceScores(${mode})`;
  const need = (name: 'w0' | 'w' | 'g' | 's' | 'f'): GpuBuffer => {
    const b = options[name];
    if (!b) throw new Error(`${op}: mode '${mode}' needs arena '${name}'`);
    return b;
  };
  const params = { ...importanceChunkParams(table), mode };
  const uniforms = importanceChunkUniforms(table);
  const tables = { chunks: table.chunks, segs: table.segments };
  const arena = (name: string, b: GpuBuffer) => importanceArena(rt, op, name, b, table);
  if (mode === 'magnitude' || mode === 'snip') {
    const [a, b] = mode === 'snip' ? [need('w'), need('g')] : [need('w0'), need('w0')];
    distinct(op, mode === 'snip' ? { w: a, g: b, out } : { w0: a, out });
    const bufs = { out: arena('out', out), a: arena(mode === 'snip' ? 'w' : 'w0', a), b: arena(mode === 'snip' ? 'g' : 'w0', b) };
    if (table.chunkCount > 0) rt.dispatch(importanceScoresKernel, params, { buffers: { ...bufs, ...tables }, uniforms });
  } else if (mode === 'grad_sum' || mode === 'fisher') {
    const stateName = mode === 'fisher' ? 'f' : 's';
    const state = need(stateName);
    const g = need('g');
    distinct(op, { [stateName]: state, g, out });
    const bufs = { state: arena(stateName, state), g: arena('g', g), out: arena('out', out) };
    if (table.chunkCount > 0) rt.dispatch(importanceAccumScoresKernel, params, { buffers: { ...bufs, ...tables }, uniforms });
  } else {
    throw new Error(`importanceScores: unknown mode '${String(mode)}'`);
  }
  return out;
}
