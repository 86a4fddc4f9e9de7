/** Shape ops: reshape (a view) and expand (broadcast copy), with their backward partners. */
import { contiguousStrides, reduceToShape, stridedCopy } from '@keel/kernels';
import { record } from '../tape.js';
import { Tensor, numel } from '../tensor.js';

/** Same storage, new shape; one dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const inferred = shape.filter((d) => d === -1).length;
  if (inferred > 1) throw new Error(`reshape: at most one -1 allowed, got [${shape}]`);
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const out = shape.map((d) => (d === -1 ? (known === 0 ? 0 : x.size / known) : d));
  if (numel(out) !== x.size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: cannot view [${x.shape}] (${x.size} elements) as [${shape}]`);
  }
  if (x.isDisposed) throw new Error(`reshape: tensor #${x.id} [${x.shape}] was disposed`);
  const view = new Tensor(x.storage, out, x.dtype);
  return record(view, 'reshape', [x], { inShape: x.shape });
}

/** Broadcasts x to `shape` (NumPy rules: dims of size 1 stretch, new leading dims are added). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const off = shape.length - x.rank;
  if (off < 0 || x.shape.some((d, a) => d !== 1 && d !== shape[a + off])) {
    throw new Error(`expand: cannot broadcast [${x.shape}] to [${shape}]`);
  }
  const strides = contiguousStrides(x.shape);
  const srcStrides = shape.map((_, a) => (a < off || x.shape[a - off] === 1 ? 0 : strides[a - off]!));
  const out = Tensor.fromBuffer(x.rt, x.rt.createBuffer(numel(shape) * 4), shape, x.dtype);
  stridedCopy(x.rt, x.buffer, out.buffer, { box: shape, srcOffset: 0, srcStrides, dstOffset: 0, dstStrides: contiguousStrides(shape) });
  return record(out, 'expand', [x], { inShape: x.shape });
}

/** Sums `dy` (shape `from`) down to `to` — the gradient of a broadcast. Untracked. */
export function sumToShape(dy: Tensor, to: readonly number[]): Tensor {
  if (dy.shape.length === to.length && dy.shape.every((d, a) => d === to[a])) return dy.detach();
  return Tensor.fromBuffer(dy.rt, reduceToShape(dy.rt, dy.buffer, dy.shape, to), to);
}
