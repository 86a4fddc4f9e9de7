/**
 * Reductions: sum, mean, max, min, sum of squares and argmax over one axis, a set of axes, or all
 * elements of an f32 tensor.
 *
 * Dimension legend: N elements; a reduction views the input as (O, R, I): O outer rows, R the
 * reduced extent, I inner (trailing) elements. The output is (O, I).
 *
 * - I = 1 (reducing the last axes, or everything): TX invocations reduce a chunk of TX·ITEMS
 *   elements of one row (register partials: each folds ITEMS strided elements, then a tree over the
 *   TX), TY = 64/TX rows or chunks per workgroup. Short rows take a small TX (R ≤ 64·TX), so many
 *   rows share a workgroup; long rows take TX = 64 and chunks whose (O, G) partials the same kernel
 *   folds again, so no invocation loops over more than ITEMS ≤ 1024 elements. ITEMS grows from 64
 *   while a pass would launch more than ~256 workgroups: per-workgroup cost (the tree's barriers)
 *   dominates on CPU implementations such as lavapipe (16M elements: 256 groups, then one).
 * - I > 1: an invocation folds a run of up to STRIDED_CHUNK elements of one (o, i) column (coalesced
 *   across i); longer columns give (O, G, I) partials folded again in further passes.
 * - Sums accumulate in f32 (per-lane partials, then a pairwise tree): error ~ (ITEMS/4 + log2 N)·ε·Σ|x|.
 * - NaN propagates through sum, mean, max, min and sumSquares (max/min check for NaN explicitly:
 *   WGSL's max()/min() may drop it). argmax treats NaN as the largest value; ties → lowest index.
 * - Empty reduce axis (R = 0): sum = 0, sumSquares = 0, mean = NaN, max = -Inf, min = +Inf, argmax =
 *   0xFFFFFFFF (no index). An empty output (O·I = 0) gives a zero-length buffer and no dispatch.
 * - argmax writes u32 indices (along the reduced axes, flattened row-major) into a u32 buffer; every
 *   other op writes f32.
 *
 * Non-goals: f16, fused epilogues, argmin, reducing non-adjacent axes with argmax.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import {
  REDUCE_STRIDED_CHUNK,
  REDUCE_WG,
  reduceRowsArgmaxKernel,
  reduceRowsKernel,
  reduceRowsVec4Kernel,
  reduceStridedArgmaxKernel,
  reduceStridedKernel,
  type ReduceCombine,
  type ReduceKernelParams,
} from './reduce-kernels.js';

export type ReduceOp = 'sum' | 'mean' | 'max' | 'min' | 'sumSquares' | 'argmax';

interface OpInfo {
  /** Combiner of the first pass and of every later pass. */
  readonly combine: ReduceCombine;
  /** The first pass squares each element before combining. */
  readonly square: boolean;
  /** The last pass multiplies by 1/R (mean). */
  readonly mean: boolean;
  /** Successive reduction of non-adjacent axis groups: the op applied to the next group. */
  readonly then: ReduceOp | null;
}

/** Every ReduceOp must appear here (a missing one is a compile error). */
export const REDUCE_OPS: { readonly [K in ReduceOp]: OpInfo } = {
  sum: { combine: 'sum', square: false, mean: false, then: 'sum' },
  mean: { combine: 'sum', square: false, mean: true, then: 'mean' },
  max: { combine: 'max', square: false, mean: false, then: 'max' },
  min: { combine: 'min', square: false, mean: false, then: 'min' },
  sumSquares: { combine: 'sum', square: true, mean: false, then: 'sum' },
  argmax: { combine: 'argmax', square: false, mean: false, then: null },
};


/** Row-kernel items per invocation grow from MIN_ITEMS (up to MAX_ITEMS) until a pass launches at
 * most ~TARGET_GROUPS workgroups. */
const MIN_ITEMS = 64;
const MAX_ITEMS = 1024;
const TARGET_GROUPS = 256;

export interface ReduceOptions {
  /** Axis or axes to reduce (negative counts from the end); omitted = all elements. */
  axis?: number | readonly number[];
  /** Keep reduced axes as size 1 in `reduceOutputShape` (the data layout is the same). */
  keepDims?: boolean;
}

function normalizeAxes(op: string, shape: readonly number[], axis: ReduceOptions['axis']): number[] {
  if (axis === undefined) return shape.map((_, i) => i);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  const out = new Set<number>();
  for (const a of list) {
    if (!Number.isInteger(a) || a < -shape.length || a >= shape.length) {
      throw new Error(`${op}: axis ${a} out of range for shape [${shape.join(', ')}]`);
    }
    const n = a < 0 ? a + shape.length : a;
    if (out.has(n)) throw new Error(`${op}: axis ${a} repeated (shape [${shape.join(', ')}], axes [${list.join(', ')}])`);
    out.add(n);
  }
  return [...out].sort((a, b) => a - b);
}

/** The shape of a reduction's output. */
export function reduceOutputShape(shape: readonly number[], options: ReduceOptions = {}): number[] {
  const axes = new Set(normalizeAxes('reduce', shape, options.axis));
  return shape.flatMap((d, i) => (axes.has(i) ? (options.keepDims ? [1] : []) : [d]));
}

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/**
 * Reduces `x` (f32, row-major `shape`) with `op` over `options.axis` (default: all elements).
 * Returns a new buffer of reduceOutputShape(shape, options) elements: f32, or u32 indices for argmax.
 * Non-adjacent axes reduce group by group (max of maxes, mean of equal-size means, sum of sums).
 */
export function reduce(rt: Runtime, x: GpuBuffer, shape: readonly number[], op: ReduceOp, options: ReduceOptions = {}): GpuBuffer {
  const name = `reduce(${op})`;
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${name}: invalid shape [${shape.join(', ')}]`);
  const n = prod(shape);
  const limit = rt.limits.maxStorageBufferBindingSize;
  if (n * 4 > limit) throw new LimitError('maxStorageBufferBindingSize', n * 4, limit, `${name} of shape [${shape.join(', ')}]`);
  if (x.size < n * 4) throw new Error(`${name}: buffer holds ${x.size / 4} elements, shape [${shape.join(', ')}] needs ${n}`);
  const axes = normalizeAxes(name, shape, options.axis);
  // Group adjacent axes into runs.
  const runs: number[][] = [];
  for (const a of axes) {
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1] === a - 1) last.push(a);
    else runs.push([a]);
  }
  if (runs.length > 1 && REDUCE_OPS[op].then === null) {
    throw new Error(`${name}: non-adjacent axes [${axes.join(', ')}] are not supported (shape [${shape.join(', ')}])`);
  }
  if (runs.length === 0) {
    // Nothing to reduce: mean/sum/max/min of one element is the element (squared for sumSquares).
    runs.push([]);
  }
  let cur = x;
  let curShape = [...shape];
  let curOp = op;
  // Reduce the last run first so earlier axis indices stay valid.
  for (let k = runs.length - 1; k >= 0; k--) {
    const run = runs[k]!;
    const lo = run[0] ?? curShape.length;
    const hi = run.length ? run[run.length - 1]! + 1 : lo;
    const O = prod(curShape.slice(0, lo));
    const R = prod(curShape.slice(lo, hi));
    const I = prod(curShape.slice(hi));
    const next = reduce3d(rt, cur, O, R, I, curOp);
    if (cur !== x) rt.release(cur);
    cur = next;
    curShape = [...curShape.slice(0, lo), ...curShape.slice(hi)];
    curOp = REDUCE_OPS[curOp].then ?? curOp;
  }
  return cur;
}

/** Reduces x viewed as (O, R, I) over R. Returns (O, I). */
function reduce3d(rt: Runtime, x: GpuBuffer, O: number, R: number, I: number, op: ReduceOp): GpuBuffer {
  const info = REDUCE_OPS[op];
  const out = rt.createBuffer(O * I * 4);
  if (O * I === 0) return out;
  const scale = R === 0 ? NaN : 1 / R;
  const argmax = info.combine === 'argmax';
  let vals = x;
  let idx: GpuBuffer | null = null;
  let len = R;
  let first = 1;
  for (;;) {
    // Row kernels: tx invocations per row chunk (short rows: fewer, and several rows per workgroup).
    // The strided kernels ignore tx and items; fixed values keep them to one pipeline per op.
    let tx = I === 1 ? 1 : REDUCE_WG;
    while (tx < REDUCE_WG && tx * MIN_ITEMS < len) tx *= 2;
    let items = MIN_ITEMS;
    while (I === 1 && tx === REDUCE_WG && items < MAX_ITEMS && Math.ceil(len / (tx * items)) * O > TARGET_GROUPS) items *= 2;
    const chunk = I === 1 ? tx * items : REDUCE_STRIDED_CHUNK;
    const G = Math.max(1, Math.ceil(len / chunk));
    const last = G === 1;
    const y = last && !argmax ? out : rt.createBuffer(O * G * I * 4);
    const yi = argmax ? (last ? out : rt.createBuffer(O * G * I * 4)) : null;
    const p: ReduceKernelParams = { combine: info.combine, square: info.square, mean: info.mean, items, tx, ty: REDUCE_WG / tx };
    if (I === 1) {
      if (argmax) {
        rt.dispatch(reduceRowsArgmaxKernel, p, {
          buffers: { x: vals, xi: idx ?? vals, y, yi: yi! },
          uniforms: { rows: O, R: len, G, first },
        });
      } else {
        rt.dispatch(len % 4 === 0 ? reduceRowsVec4Kernel : reduceRowsKernel, p, {
          buffers: { x: vals, y },
          uniforms: { rows: O, R: len, G, first, scale },
        });
      }
    } else if (argmax) {
      rt.dispatch(reduceStridedArgmaxKernel, undefined, {
        buffers: { x: vals, xi: idx ?? vals, y, yi: yi! },
        uniforms: { total: O * G * I, R: len, I, G, first },
      });
    } else {
      rt.dispatch(reduceStridedKernel, p, {
        buffers: { x: vals, y },
        uniforms: { total: O * G * I, R: len, I, G, first, scale },
      });
    }
    if (vals !== x) rt.release(vals);
    if (idx) rt.release(idx);
    if (last) {
      if (argmax) rt.release(y);
      return out;
    }
    vals = y;
    idx = yi;
    len = G;
    first = 0;
  }
}

export const reduceSum = (rt: Runtime, x: GpuBuffer, shape: readonly number[], options: ReduceOptions = {}) =>
  reduce(rt, x, shape, 'sum', options);
export const reduceMean = (rt: Runtime, x: GpuBuffer, shape: readonly number[], options: ReduceOptions = {}) =>
  reduce(rt, x, shape, 'mean', options);
export const reduceMax = (rt: Runtime, x: GpuBuffer, shape: readonly number[], options: ReduceOptions = {}) =>
  reduce(rt, x, shape, 'max', options);
export const reduceMin = (rt: Runtime, x: GpuBuffer, shape: readonly number[], options: ReduceOptions = {}) =>
  reduce(rt, x, shape, 'min', options);
export const reduceSumSquares = (rt: Runtime, x: GpuBuffer, shape: readonly number[], options: ReduceOptions = {}) =>
  reduce(rt, x, shape, 'sumSquares', options);
/** u32 indices of the maxima (NaN counts as largest; ties → lowest index; empty axis → 0xFFFFFFFF). */
export const reduceArgmax = (rt: Runtime, x: GpuBuffer, shape: readonly number[], options: ReduceOptions = {}) =>
  reduce(rt, x, shape, 'argmax', options);
