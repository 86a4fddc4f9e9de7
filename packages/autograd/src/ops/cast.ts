/**
 * cast: f32 ↔ f16 storage conversion (needs `shader-f16`). f16 halves the memory of tensors that are
 * only read — e.g. a frozen base model — while every op computes in f32. Differentiable: the
 * gradient of a cast is the cast of the gradient back to the input's dtype.
 */
import { castF16ToF32, castF32ToF16 } from '@keel/kernels';
import { record } from '../tape.js';
import { Tensor } from '../tensor.js';

export function cast(x: Tensor, dtype: 'f32' | 'f16'): Tensor {
  if (x.isDisposed) throw new Error(`cast: tensor #${x.id} [${x.shape}] was disposed`);
  if (x.dtype === 'i32') throw new Error(`cast: i32 tensors cannot be cast (shape [${x.shape}])`);
  if (x.dtype === dtype) return x.detach();
  if (!x.rt.has('shader-f16')) {
    throw new Error(`cast to ${dtype}: this device did not grant 'shader-f16' (shape [${x.shape}])`);
  }
  const buf = dtype === 'f16' ? castF32ToF16(x.rt, x.buffer, { n: x.size }) : castF16ToF32(x.rt, x.buffer, { n: x.size });
  return record(Tensor.fromBuffer(x.rt, buf, x.shape, dtype), 'cast', [x], { from: x.dtype });
}
