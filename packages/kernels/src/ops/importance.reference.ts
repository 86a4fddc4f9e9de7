/**
 * Float64 CPU reference of the importance kernels (importance.ts, importance-stats.ts), shared by the
 * tests and the bench. Arrays are whole arenas laid out by a SegmentLayout; only tensor elements are
 * read or written, so padding keeps whatever the caller put there.
 *
 * Legend: N arena elements, T tensors.
 */
import type { SegmentLayout } from './segments.js';

type Arr = Float32Array | Float64Array;

/** Per-tensor [mean, population std] of |x| (or x), (T, 2); an empty tensor gives 0, 0. Two-pass. */
export function importanceStatsRef(x: Arr, layout: SegmentLayout, { abs = true }: { abs?: boolean } = {}): Float64Array {
  const T = layout.lengths.length;
  const out = new Float64Array(2 * T);
  for (let t = 0; t < T; t++) {
    const off = layout.offsets[t]!;
    const n = layout.lengths[t]!;
    if (n === 0) continue;
    const val = (i: number) => (abs ? Math.abs(x[off + i]!) : x[off + i]!);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += val(i);
    const mean = sum / n;
    let m2 = 0;
    for (let i = 0; i < n; i++) m2 += (val(i) - mean) ** 2;
    out[2 * t] = mean;
    out[2 * t + 1] = Math.sqrt(m2 / n);
  }
  return out;
}

/** rank(x) per tensor: sigmoid((|x| − mean)/std); std = 0 → 0 (all-zero tensor) or 0.5 (constant). */
export function spiderRankRef(x: Arr, layout: SegmentLayout, out: Arr = new Float64Array(x.length)): Arr {
  const stats = importanceStatsRef(x, layout);
  layout.lengths.forEach((n, t) => {
    const off = layout.offsets[t]!;
    const mean = stats[2 * t]!;
    const std = stats[2 * t + 1]!;
    for (let i = off; i < off + n; i++) {
      out[i] = std > 0 ? 1 / (1 + Math.exp(-(Math.abs(x[i]!) - mean) / std)) : mean === 0 ? 0 : 0.5;
    }
  });
  return out;
}

export interface SpiderStepRef {
  /** G = rank(S) after the update (diagnostics for tests). */
  grank: Float64Array;
  /** c before normalization. */
  raw: Float64Array;
}

/**
 * One SPIDER step in float64, in place: s ← s + g; G = rank(s); c = G/(O+G) where G > O else 0;
 * c ← min(c / mean(nonzero c), 1) per tensor.
 */
export function spiderStepRef(g: Arr, s: Arr, o: Arr, c: Arr, layout: SegmentLayout): SpiderStepRef {
  layout.lengths.forEach((n, t) => {
    const off = layout.offsets[t]!;
    for (let i = off; i < off + n; i++) s[i] = s[i]! + g[i]!;
  });
  const grank = new Float64Array(s.length);
  spiderRankRef(s, layout, grank);
  const raw = new Float64Array(s.length);
  layout.lengths.forEach((n, t) => {
    const off = layout.offsets[t]!;
    let sum = 0;
    let cnt = 0;
    for (let i = off; i < off + n; i++) {
      const G = grank[i]!;
      const O = o[i]!;
      raw[i] = G > O ? G / (O + G) : 0;
      if (raw[i]! !== 0) {
        sum += raw[i]!;
        cnt++;
      }
    }
    const mean = cnt > 0 ? sum / cnt : 1;
    for (let i = off; i < off + n; i++) c[i] = Math.min(raw[i]! / mean, 1);
  });
  return { grank, raw };
}

/**
 * Hard-mask scores in float64, in place on the state arenas: 'magnitude' |w0|, 'snip' |w·g|,
 * 'grad_sum' s ← s + g then |s|, 'fisher' f ← f + g² then f.
 */
export function importanceScoresRef(
  mode: 'magnitude' | 'snip' | 'grad_sum' | 'fisher',
  arenas: { w0?: Arr; w?: Arr; g?: Arr; s?: Arr; f?: Arr; out: Arr },
  layout: SegmentLayout,
): Arr {
  const { w0, w, g, s, f, out } = arenas;
  layout.lengths.forEach((n, t) => {
    const off = layout.offsets[t]!;
    for (let i = off; i < off + n; i++) {
      if (mode === 'magnitude') out[i] = Math.abs(w0![i]!);
      else if (mode === 'snip') out[i] = Math.abs(w![i]! * g![i]!);
      else if (mode === 'grad_sum') out[i] = Math.abs((s![i] = s![i]! + g![i]!));
      else out[i] = f![i] = f![i]! + g![i]! * g![i]!;
    }
  });
  return out;
}
