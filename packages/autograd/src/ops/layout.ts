/**
 * Layout ops with backward rules: permute / transpose, slice / narrow, concat, indexSelect (gather
 * along an axis) and where(cond, a, b). All copy (tensors are contiguous; see tensor.ts) and move raw
 * 32-bit words, so permute, slice, concat and indexSelect also accept i32 tensors (not differentiable)
 * and refuse f16 storage tensors, which hold 16-bit halves: cast them to f32 first.
 *
 * Backward partners: permute ↔ permute by the inverse permutation, slice ↔ zero-padded copy,
 * concat ↔ slices, indexSelect ↔ deterministic scatter-add, where ↔ where(cond, dy, 0) and
 * where(cond, 0, dy) summed back over broadcast axes. where's condition gets no gradient.
 * Legend: R rank, A the axis operated on, J the number of selected indices.
 */
import {
  concat as concatKernel,
  concatBackward,
  fill,
  indexSelect as indexSelectKernel,
  indexSelectBackward,
  inversePermutation,
  permute as permuteKernel,
  slice as sliceKernel,
  sliceBackward,
  whereForward,
  broadcastShapes,
} from '@keel/kernels';
import { record } from '../tape.js';
import { Tensor } from '../tensor.js';
import type { RuleTable } from './registry.js';
import { assertDType, fmtShapes } from './saved.js';
import { sumToShape } from './shape.js';

/** Throws unless every tensor is live and holds 32-bit words (f32 or i32): the kernels move words. */
function live(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.isDisposed) throw new Error(`${op}: tensor #${t.id} [${t.shape}] was disposed`);
    // an f16 buffer holds half the bytes its shape implies; the kernel would read past its end
    if (t.dtype === 'f16') throw new Error(`${op}: got an f16 tensor [${t.shape}]; ${op} moves 32-bit f32 or i32 values, so cast(x, 'f32') first (f16 is a storage type)`);
  }
}

function normAxis(op: string, axis: number, rank: number, shape: readonly number[]): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw new Error(`${op}: axis ${axis} out of range for shape [${shape}]`);
  return axis < 0 ? axis + rank : axis;
}

// ------------------------------------------------------------------ permute / transpose

/** out.shape[a] = x.shape[perm[a]] (negative axes count from the end). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  live('permute', x);
  const p = perm.map((a) => (Number.isInteger(a) && a < 0 ? a + x.rank : a));
  const out = Tensor.fromBuffer(x.rt, permuteKernel(x.rt, x.buffer, x.shape, p), p.map((a) => x.shape[a]!), x.dtype);
  return record(out, 'permute', [x], { perm: p });
}

/** Swaps axes a and b (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  if (x.rank < 2) throw new Error(`transpose: needs rank ≥ 2, got shape [${x.shape}]`);
  const ia = normAxis('transpose', a, x.rank, x.shape);
  const ib = normAxis('transpose', b, x.rank, x.shape);
  const perm = x.shape.map((_, i) => (i === ia ? ib : i === ib ? ia : i));
  return permute(x, perm);
}

// ------------------------------------------------------------------ slice / narrow

/**
 * out = x[starts[0]:ends[0], …]. starts/ends may be shorter than the rank (missing axes are taken
 * whole) and negative (counted from the end of the axis); ends are exclusive.
 */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[] = []): Tensor {
  live('slice', x);
  if (starts.length > x.rank || ends.length > x.rank) {
    throw new Error(`slice: starts [${starts}] / ends [${ends}] have more entries than the rank of shape [${x.shape}]`);
  }
  const norm = (v: number | undefined, d: number, dflt: number) => (v === undefined ? dflt : v < 0 ? v + d : v);
  const s = x.shape.map((d, a) => norm(starts[a], d, 0));
  const e = x.shape.map((d, a) => norm(ends[a], d, d));
  const box = s.map((lo, a) => e[a]! - lo);
  const out = Tensor.fromBuffer(x.rt, sliceKernel(x.rt, x.buffer, x.shape, { starts: s, ends: e }), box, x.dtype);
  return record(out, 'slice', [x], { inShape: x.shape, starts: s, ends: e });
}

/** `length` entries of `axis` from `start` (PyTorch's narrow). */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normAxis('narrow', axis, x.rank, x.shape);
  const starts = x.shape.map((_, i) => (i === a ? start : 0));
  const ends = x.shape.map((d, i) => (i === a ? start + length : d));
  return slice(x, starts, ends);
}

// ------------------------------------------------------------------ concat

/** Concatenates along `axis` (negative from the end); other dimensions must agree, dtypes too. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  live('concat', ...xs);
  const first = xs[0]!;
  if (xs.some((t) => t.dtype !== first.dtype)) throw new Error(`concat: dtypes differ (${xs.map((t) => `${t.dtype}[${t.shape}]`).join(', ')})`);
  const a = normAxis('concat', axis, first.rank, first.shape);
  const r = concatKernel(first.rt, xs.map((t) => ({ buffer: t.buffer, shape: t.shape })), a);
  const out = Tensor.fromBuffer(first.rt, r.buffer, r.shape, first.dtype);
  return record(out, 'concat', xs, { axis: a, sizes: xs.map((t) => t.shape[a]!), outShape: r.shape });
}

// ------------------------------------------------------------------ indexSelect

/** out = x.index_select(axis, indices): indices are a 1-D i32 tensor (out-of-range → NaN). */
export function indexSelect(x: Tensor, axis: number, indices: Tensor): Tensor {
  const shapes = fmtShapes({ x, indices });
  live('indexSelect', x);
  assertDType('indexSelect', 'indices', indices, 'i32', shapes);
  if (indices.rank !== 1) throw new Error(`indexSelect: indices must be 1-D (${shapes})`);
  const a = normAxis('indexSelect', axis, x.rank, x.shape);
  const r = indexSelectKernel(x.rt, x.buffer, x.shape, a, indices.buffer, indices.size);
  const out = Tensor.fromBuffer(x.rt, r.buffer, r.shape, x.dtype);
  return record(out, 'indexSelect', [x, indices], { axis: a, inShape: x.shape, count: indices.size });
}

// ------------------------------------------------------------------ where

/**
 * cond ≠ 0 ? a : b, all three broadcast together (NumPy rules). cond is an f32 mask (e.g. from
 * gt/lt/eq; NaN counts as true) and gets no gradient; a and b get dy where the branch was taken.
 */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  const shapes = fmtShapes({ cond, a, b });
  assertDType('where', 'cond', cond, 'f32', shapes);
  assertDType('where', 'a', a, 'f32', shapes);
  assertDType('where', 'b', b, 'f32', shapes);
  const outShape = broadcastShapes('where', cond.shape, a.shape, b.shape);
  const buf = whereForward(cond.rt, cond.buffer, a.buffer, b.buffer, { condShape: cond.shape, aShape: a.shape, bShape: b.shape });
  return record(Tensor.fromBuffer(cond.rt, buf, outShape), 'where', [cond, a, b], { outShape });
}

// ------------------------------------------------------------------ backward rules

export const layoutRules: RuleTable<'permute' | 'slice' | 'concat' | 'indexSelect' | 'where'> = {
  permute(dy, ctx) {
    const inv = inversePermutation(ctx.perm);
    return [Tensor.fromBuffer(dy.rt, permuteKernel(dy.rt, dy.buffer, dy.shape, inv), inv.map((a) => dy.shape[a]!))];
  },
  slice(dy, ctx) {
    return [Tensor.fromBuffer(dy.rt, sliceBackward(dy.rt, dy.buffer, ctx.inShape, ctx), ctx.inShape)];
  },
  concat(dy, ctx, xs) {
    const parts = concatBackward(dy.rt, dy.buffer, ctx.outShape, ctx.sizes, ctx.axis);
    return parts.map((buf, i) => Tensor.fromBuffer(dy.rt, buf, xs[i]!.shape));
  },
  indexSelect(dy, ctx, [, indices]) {
    return [Tensor.fromBuffer(dy.rt, indexSelectBackward(dy.rt, dy.buffer, ctx.inShape, ctx.axis, indices!.buffer, ctx.count), ctx.inShape), null];
  },
  where(dy, ctx, [cond, a, b]) {
    const rt = dy.rt;
    const zero = rt.createBuffer(4);
    fill(rt, zero, 0, 1);
    const branch = (t: Tensor, taken: boolean): Tensor | null => {
      if (!t.requiresGrad) return null;
      const buf = taken
        ? whereForward(rt, cond!.buffer, dy.buffer, zero, { condShape: cond!.shape, aShape: ctx.outShape, bShape: [] })
        : whereForward(rt, cond!.buffer, zero, dy.buffer, { condShape: cond!.shape, aShape: [], bShape: ctx.outShape });
      const full = Tensor.fromBuffer(rt, buf, ctx.outShape);
      const g = sumToShape(full, t.shape);
      full.dispose();
      return g;
    };
    const grads = [null, branch(a!, true), branch(b!, false)];
    rt.release(zero);
    return grads;
  },
};
