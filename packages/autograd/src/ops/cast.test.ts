import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backward, cast, mul, sum, tensor, tidy } from '../index.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

describe('cast (f16 storage)', () => {
  it('round-trips through f16 with half precision, Inf beyond 65504, and reads f16 back', async () => {
    if (!rt.has('shader-f16')) {
      expect(() => cast(tensor(rt, [1], [1]), 'f16')).toThrow(/did not grant 'shader-f16'/);
      return;
    }
    const values = [0, 1, -2.5, 3.14159, 1e-3, 65504, 1e5, -1e5, 6e-8];
    const x = tensor(rt, values, [3, 3]);
    const h = cast(x, 'f16');
    expect(h.dtype).toBe('f16');
    expect(h.buffer.size).toBe(Math.ceil(9 / 2) * 4);
    const back = Array.from(await h.toArray());
    const f32 = Array.from(await cast(h, 'f32').toArray());
    expect(f32).toEqual(back);
    values.forEach((v, i) => {
      if (Math.abs(v) > 65504) expect(back[i]).toBe(Math.sign(v) * Infinity);
      else expect(Math.abs(back[i]! - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -24));
    });
  });

  it('is differentiable: the gradient is cast back to the input dtype', async () => {
    if (!rt.has('shader-f16')) return;
    const x = tensor(rt, [0.5, -1.25, 2], [3], { requiresGrad: true });
    tidy(() => backward(sum(mul(cast(cast(x, 'f16'), 'f32'), 3))));
    expect(x.grad!.dtype).toBe('f32');
    expect(Array.from(await x.grad!.toArray())).toEqual([3, 3, 3]);
  });

  it('f16 tensors are rejected by compute ops with a hint to cast', () => {
    if (!rt.has('shader-f16')) return;
    const h = cast(tensor(rt, [1, 2], [2]), 'f16');
    expect(() => mul(h, 2)).toThrow(/expected an f32 tensor, got f16 \[2\]; f16 is a storage type: cast\(x, 'f32'\) first/);
    expect(() => cast(tensor(rt, Int32Array.from([1]), [1]), 'f16')).toThrow(/i32 tensors cannot be cast/);
  });
});
