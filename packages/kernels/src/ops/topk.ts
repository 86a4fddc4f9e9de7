/**
 * Top-k threshold and mask: the exact k-th largest |score| and a packed mask selecting exactly k
 * elements (gradient sparsification, magnitude pruning), over up to ~100M elements.
 *
 * Algorithm (no sort, no CPU round trip; kernels in topk-kernels.ts, topk-compact.ts, topk-ties.ts):
 * the key of an element is the bit pattern of |score|, which orders non-negative floats. Three radix
 * passes (digits of 12, 11 and 8 bits, most significant first) each histogram the current digit of the
 * elements whose higher digits match the prefix found so far, then a select kernel picks the bin
 * holding the k-th element and updates the prefix and the remaining k in a small GPU state buffer.
 * With one group (global mode, or one tensor) the passes do not read all N: a sample bracket [lo, hi]
 * is estimated, one register-only pass counts the keys above hi and copies the (key, index) pairs in
 * [lo, hi] into a small candidate buffer, and if the bracket provably holds the k-th key the radix
 * passes run over the candidates (else, e.g. for heavy ties, over all N as in per-tensor mode). The
 * mask takes every element above the threshold and, of the elements equal to it, the lowest indices
 * first: for bracketed groups the last tie taken is found by ranking the tied candidates' indices;
 * otherwise a per-chunk tie count, one exclusive scan across chunks (a separate dispatch, never a
 * decoupled look-back), and a final pass where only the chunk containing the cut scans inside itself.
 * When the group takes all of its ties (the usual case for continuous data) no tie pass reads data.
 *
 * Rules: exactly min(k, non-NaN count) elements are selected. NaN scores are never selected and never
 * counted. |−0| = 0. k = 0 (or no non-NaN element) selects nothing and gives a NaN threshold. ±Inf
 * are the largest keys. Ties at the threshold: lowest indices win (in arena order for global mode).
 *
 * Modes: 'global' (one threshold over all elements, or over all tensors of a segment table) and
 * 'tensor' (one threshold per tensor of a segment table, all tensors in the same dispatches; without
 * a table the buffer is one tensor). Mask bit i (word i >> 5, bit i & 31) is arena element i; padding
 * between tensors is never selected.
 *
 * Large inputs: storage bindings are capped (maxStorageBufferBindingSize); every per-chunk kernel is
 * dispatched once per window of at most `maxChunkElements` elements bound as a buffer range, all
 * windows accumulating into the same histograms. Window starts are multiples of 2048 elements so the
 * scores and mask ranges both meet the 256-byte offset alignment.
 *
 * Non-goals: returning indices or values (compact with the mask), k-th smallest, f16 scores.
 * Dimension legend: N elements (arena length with a table), T tensors, G groups (T or 1), C chunks.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { createSegmentTable, releaseSegments, type SegmentTable } from './segments.js';
import {
  TOPK_SAMPLE_PER_CHUNK,
  topkBracketKernel,
  topkCandHistogramKernel,
  topkCheckKernel,
  topkCompactKernel,
  topkSampleHistogramKernel,
} from './topk-compact.js';
import {
  TOPK_DIGITS,
  TOPK_RADIX,
  TOPK_STATE_WORDS,
  topkHistogramKernel,
  topkInitKernel,
  topkMaskKernel,
  topkSelectKernel,
} from './topk-kernels.js';
import { topkTieCountKernel, topkTieCutKernel, topkTieScanKernel } from './topk-ties.js';

/** How many to select: a count (per tensor: one count, or one per tensor) or a fraction of each. */
export type TopkAmount = { k: number | readonly number[] } | { fraction: number };

export interface TopkOptions {
  mode: 'tensor' | 'global';
  /** Segment table of the arena `scores` holds (see segments.ts); without it, scores is one tensor. */
  table?: SegmentTable;
  /** Elements of `scores` to use without a table (default: all of it). */
  n?: number;
  /** Most elements bound at once (default: the device's binding limit). Tests force it small. */
  maxChunkElements?: number;
}

export interface TopkResult {
  /** f32 (G,): the k-th largest |score| per group (G = T in tensor mode, else 1); NaN if none selected. */
  threshold: GpuBuffer;
  /** u32 (ceil(N / 32),): bit i of word i >> 5 set iff element i is selected. */
  mask: GpuBuffer;
  /** Number of groups (thresholds). */
  groups: number;
}

/** Elements a workgroup handles without a table (a multiple of 2048 so windows stay aligned). */
const PLAIN_CHUNK = 65536;
/** Window starts are multiples of this many elements: 2048 / 32 mask words × 4 bytes = 256 bytes. */
const WINDOW_ALIGN = 2048;
/** Candidate capacity = N / CAND_FRACTION (one group): larger first-pass bins use the full-data passes. */
const CAND_FRACTION = 8;
const MIN_CAP = 16384;

interface Window {
  chunkBase: number;
  chunkCount: number;
  winStart: number;
  winLen: number;
}

/** Per-group k from the amount: k_t = ceil(fraction · len_t) for fractions; counts are validated. */
export function topkCounts(amount: TopkAmount, groupLengths: readonly number[]): number[] {
  if ('fraction' in amount) {
    const f = amount.fraction;
    if (typeof f !== 'number' || !(f > 0 && f <= 1)) {
      throw new Error(`topkThreshold: fraction must be in (0, 1], got ${String(f)}`);
    }
    return groupLengths.map((len) => Math.min(len, Math.ceil(f * len)));
  }
  const ks = typeof amount.k === 'number' ? groupLengths.map(() => amount.k as number) : [...amount.k];
  if (ks.length !== groupLengths.length) {
    throw new Error(`topkThreshold: ${ks.length} counts k for ${groupLengths.length} groups (lengths [${groupLengths.join(', ')}])`);
  }
  for (const k of ks) {
    if (!Number.isInteger(k) || k < 0) throw new Error(`topkThreshold: k must be a non-negative integer, got ${k}`);
  }
  return ks.map((k, g) => Math.min(k, groupLengths[g]!));
}

/** Splits chunks into windows of at most `maxElems` elements starting at WINDOW_ALIGN multiples. */
function planWindows(starts: Int32Array | number[], lens: (c: number) => number, maxElems: number): Window[] {
  const out: Window[] = [];
  let c = 0;
  const C = starts.length;
  while (c < C) {
    const winStart = Math.floor(starts[c]! / WINDOW_ALIGN) * WINDOW_ALIGN;
    let end = c;
    let winEnd = winStart;
    while (end < C && starts[end]! + lens(end) - winStart <= maxElems) {
      winEnd = starts[end]! + lens(end);
      end++;
    }
    if (end === c) {
      throw new Error(
        `topkThreshold: maxChunkElements = ${maxElems} cannot hold chunk ${c} (${lens(c)} elements at ${starts[c]}); ` +
          `use at least the table's chunkSize + ${WINDOW_ALIGN}`,
      );
    }
    out.push({ chunkBase: c, chunkCount: end - c, winStart, winLen: winEnd - winStart });
    c = end;
  }
  return out;
}

/**
 * Threshold and mask of the top-k |scores|. Records GPU work only; read `threshold` to get the value.
 * The caller releases both returned buffers.
 */
export function topkThreshold(rt: Runtime, scores: GpuBuffer, amount: TopkAmount, options: TopkOptions): TopkResult {
  const { mode, table } = options;
  if (mode !== 'tensor' && mode !== 'global') throw new Error(`topkThreshold: mode must be 'tensor' or 'global', got ${String(mode)}`);
  const maxBindElems = Math.floor(rt.limits.maxStorageBufferBindingSize / 4);
  const maxElems = Math.floor(Math.min(options.maxChunkElements ?? maxBindElems, maxBindElems) / WINDOW_ALIGN) * WINDOW_ALIGN;
  if (!(maxElems >= WINDOW_ALIGN)) {
    throw new Error(`topkThreshold: maxChunkElements must be at least ${WINDOW_ALIGN}, got ${String(options.maxChunkElements)}`);
  }

  let lengths: number[];
  let N: number;
  if (table) {
    if (options.n !== undefined) throw new Error('topkThreshold: pass n or table, not both');
    if (table.chunkSize % 32 !== 0) {
      throw new Error(`topkThreshold: the segment table's chunkSize must be a multiple of 32, got ${table.chunkSize}`);
    }
    lengths = [...table.lengths];
    N = table.arenaLength;
  } else {
    N = options.n ?? Math.floor(scores.size / 4);
    if (!Number.isInteger(N) || N < 0) throw new Error(`topkThreshold: n must be a non-negative integer, got ${N}`);
    lengths = [N];
  }
  if (scores.size < N * 4) {
    throw new Error(`topkThreshold: scores hold ${Math.floor(scores.size / 4)} elements, need ${N} (shapes [${Math.floor(scores.size / 4)}] and [${N}])`);
  }
  const perTensor = mode === 'tensor' && lengths.length > 1;
  const groupLengths = perTensor ? lengths : [lengths.reduce((a, b) => a + b, 0)];
  const ks = topkCounts(amount, groupLengths);
  const G = groupLengths.length;
  const words = Math.ceil(N / 32);
  const mask = rt.createBuffer(Math.max(words, 1) * 4);
  const threshold = rt.createBuffer(G * 4);

  // Chunks: the table's, or PLAIN_CHUNK-sized ones over [0, N).
  const plainChunk = Math.min(PLAIN_CHUNK, maxElems);
  const own = table ? null : N > 0 ? createSegmentTable(rt, [N], plainChunk) : null;
  const tab = table ?? own;
  const C = tab?.chunkCount ?? 0;
  if (C === 0) {
    rt.write(threshold, new Float32Array(G).fill(NaN));
    rt.write(mask, new Uint32Array(Math.max(words, 1)));
    return { threshold, mask, groups: G };
  }
  const t = tab!;
  const starts: number[] = [];
  const chunkLen: number[] = [];
  t.offsets.forEach((off, ti) => {
    for (let s = 0; s < t.lengths[ti]!; s += t.chunkSize) {
      starts.push(off + s);
      chunkLen.push(Math.min(t.chunkSize, t.lengths[ti]! - s));
    }
  });
  const windows = planWindows(starts, (c) => chunkLen[c]!, maxElems);
  const maskBindBytes = rt.limits.maxStorageBufferBindingSize;
  if (table && words * 4 > maskBindBytes) {
    throw new LimitError('maxStorageBufferBindingSize', words * 4, maskBindBytes, 'topkThreshold: mask of the arena');
  }

  const kIn = rt.upload(Uint32Array.from(ks));
  const state = rt.createBuffer(G * TOPK_STATE_WORDS * 4);
  const hist = rt.createBuffer(G * TOPK_RADIX * 4);
  const ties = rt.createBuffer((2 * C + G) * 4);
  // One group with k > 0: bracket the threshold from a sample and copy out the keys in the bracket
  // (topk-compact.ts). cap bounds the candidates; a failed bracket falls back to the full passes.
  const cap = G === 1 && ks[0]! > 0 ? Math.min(N, Math.max(Math.ceil(N / CAND_FRACTION), MIN_CAP), Math.floor(maskBindBytes / 8)) : 0;
  const candCount = rt.createBuffer(8);
  const cand = rt.createBuffer(Math.max(cap, 1) * 8);
  const zeroWords = table ? words : 0;
  rt.dispatch(topkInitKernel, undefined, {
    buffers: { kIn, state, hist, mask: { buffer: mask, offset: 0, size: Math.min(mask.size, maskBindBytes) }, candCount },
    uniforms: { groups: G, zeroWords, threads: Math.max(G * TOPK_RADIX, zeroWords) },
  });

  const common = { chunkSize: t.chunkSize, perTensor: perTensor ? 1 : 0 };
  const scoreRange = (w: Window) => ({ buffer: scores, offset: w.winStart * 4, size: w.winLen * 4 });
  const maskRange = (w: Window) => ({ buffer: mask, offset: w.winStart / 8, size: Math.ceil(w.winLen / 32) * 4 });
  const chunkUniforms = (w: Window) => ({ ...common, chunkBase: w.chunkBase, chunkCount: w.chunkCount, winStart: w.winStart });
  if (cap > 0) {
    // sample rank of k with a margin of ~4 standard deviations (binomial), as counts from the top
    const sampled = chunkLen.reduce((acc, len) => acc + Math.min(len, TOPK_SAMPLE_PER_CHUNK), 0);
    const kS = (ks[0]! * sampled) / groupLengths[0]!;
    const margin = 4 * Math.sqrt(kS) + 8;
    const win = (w: Window) => ({ chunkBase: w.chunkBase, chunkCount: w.chunkCount, winStart: w.winStart, chunkSize: t.chunkSize });
    const ranks = { rHi: Math.max(0, Math.floor(kS - margin)), rLo: Math.ceil(kS + margin) };
    for (const level of [0, 1] as const) {
      for (const w of windows) {
        rt.dispatch(topkSampleHistogramKernel, { level }, {
          buffers: { scores: scoreRange(w), chunks: t.chunks, segments: t.segments, state, hist },
          uniforms: win(w),
        });
      }
      rt.dispatch(topkBracketKernel, { level }, { buffers: { state, hist }, uniforms: ranks });
    }
    for (const w of windows) {
      rt.dispatch(topkCompactKernel, undefined, {
        buffers: { scores: scoreRange(w), chunks: t.chunks, segments: t.segments, state, candCount, cand },
        uniforms: { ...win(w), cap },
      });
    }
    rt.dispatch(topkCheckKernel, undefined, { buffers: { state, candCount }, uniforms: { cap } });
  }
  TOPK_DIGITS.forEach(([shift, bits], p) => {
    const hiMask = p === 0 ? 0 : (0xffffffff << (shift + bits)) >>> 0;
    if (cap > 0) {
      rt.dispatch(topkCandHistogramKernel, { bits }, { buffers: { state, candCount, cand, hist }, uniforms: { cap, shift, hiMask } });
    }
    for (const w of windows) {
      rt.dispatch(topkHistogramKernel, { bits }, {
        buffers: { scores: scoreRange(w), chunks: t.chunks, segments: t.segments, state, hist },
        uniforms: { ...chunkUniforms(w), shift, hiMask, skip: cap > 0 ? 1 : 0 },
      });
    }
    rt.dispatch(topkSelectKernel, { bits }, {
      buffers: { state, hist, threshold },
      uniforms: { groups: G, shift, first: p === 0 ? 1 : 0, last: p === TOPK_DIGITS.length - 1 ? 1 : 0 },
    });
  });
  if (cap > 0) rt.dispatch(topkTieCutKernel, undefined, { buffers: { state, candCount, cand }, uniforms: {} });
  for (const w of windows) {
    rt.dispatch(topkTieCountKernel, undefined, {
      buffers: { scores: scoreRange(w), chunks: t.chunks, segments: t.segments, state, ties },
      uniforms: chunkUniforms(w),
    });
  }
  rt.dispatch(topkTieScanKernel, undefined, {
    buffers: { chunks: t.chunks, ties },
    uniforms: { chunkTotal: C, perTensor: common.perTensor },
  });
  for (const w of windows) {
    rt.dispatch(topkMaskKernel, undefined, {
      buffers: { scores: scoreRange(w), chunks: t.chunks, segments: t.segments, state, ties, mask: maskRange(w) },
      uniforms: { ...chunkUniforms(w), chunkTotal: C },
    });
  }
  for (const b of [kIn, state, hist, ties, candCount, cand]) rt.release(b);
  if (own) releaseSegments(rt, own);
  return { threshold, mask, groups: G };
}
