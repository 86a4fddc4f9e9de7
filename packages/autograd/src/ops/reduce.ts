/** Reductions over axes: sum and mean are differentiable; max/min/argmax are not (yet) on the tape. */
import { reduce, reduceOutputShape, type ReduceOp } from '@keel/kernels';
import { record, untracked } from '../tape.js';
import { Tensor } from '../tensor.js';
import { assertF32 } from './elementwise.js';

export interface ReduceAxes {
  /** Axis or axes (negative from the end); omitted = all. */
  axis?: number | readonly number[];
  keepDims?: boolean;
}

function reduceTracked(op: 'sum' | 'mean', x: Tensor, o: ReduceAxes): Tensor {
  assertF32(op, x);
  const axis = o.axis;
  const keptShape = reduceOutputShape(x.shape, { ...(axis !== undefined ? { axis } : {}), keepDims: true });
  const outShape = reduceOutputShape(x.shape, { ...(axis !== undefined ? { axis } : {}), keepDims: !!o.keepDims });
  const buf = reduce(x.rt, x.buffer, x.shape, op, axis !== undefined ? { axis } : {});
  const count = x.size / Math.max(1, keptShape.reduce((a, b) => a * b, 1));
  return record(Tensor.fromBuffer(x.rt, buf, outShape), 'reduce', [x], { op, inShape: x.shape, keptShape, count });
}

export const sum = (x: Tensor, o: ReduceAxes = {}): Tensor => reduceTracked('sum', x, o);
export const mean = (x: Tensor, o: ReduceAxes = {}): Tensor => reduceTracked('mean', x, o);

/** Untracked reductions (max, min, argmax as i32-valued u32 indices). */
export function reduceUntracked(op: Exclude<ReduceOp, 'sum' | 'mean'>, x: Tensor, o: ReduceAxes = {}): Tensor {
  assertF32(op, x);
  const axis = o.axis;
  const outShape = reduceOutputShape(x.shape, { ...(axis !== undefined ? { axis } : {}), keepDims: !!o.keepDims });
  const buf = reduce(x.rt, x.buffer, x.shape, op, axis !== undefined ? { axis } : {});
  return untracked(Tensor.fromBuffer(x.rt, buf, outShape, op === 'argmax' ? 'i32' : 'f32'), op, [x]);
}
export const max = (x: Tensor, o: ReduceAxes = {}): Tensor => reduceUntracked('max', x, o);
export const min = (x: Tensor, o: ReduceAxes = {}): Tensor => reduceUntracked('min', x, o);
export const argmax = (x: Tensor, o: ReduceAxes = {}): Tensor => reduceUntracked('argmax', x, o);
