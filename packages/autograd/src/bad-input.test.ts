/**
 * Bad input at the tensor level (issue 8) that the per-op tests leave out: reductions over an axis
 * the tensor lacks, a wrong dtype for a reduction, a tensor larger than the device can hold, and
 * f16 storage tensors passed to the layout ops (which move 32-bit words: before the kernels checked
 * their buffers, permuting an f16 tensor silently read past its end and returned stale bytes).
 *
 * The shape and dtype checks of elementwise, matmul, softmax, cross-entropy, norms, embedding, rope,
 * attention and the other layout ops are tested next to each op (ops/*.test.ts, autograd.test.ts).
 */
import { LimitError, Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensor, zeros } from './creation.js';
import { cast } from './ops/cast.js';
import { concat, indexSelect, permute, slice, transpose } from './ops/layout.js';
import { argmax, max, mean, sum } from './ops/reduce.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

describe('reductions', () => {
  it('name an axis the shape lacks, or a repeated one', () => {
    const x = tensor(rt, [1, 2, 3, 4, 5, 6], [2, 3]);
    expect(() => sum(x, { axis: 2 })).toThrow(/^reduce: axis 2 out of range for shape \[2, 3\]$/);
    expect(() => mean(x, { axis: -3 })).toThrow(/^reduce: axis -3 out of range for shape \[2, 3\]$/);
    expect(() => max(x, { axis: [1, -1] })).toThrow(/^reduce: axis -1 repeated \(shape \[2, 3\], axes \[1, -1\]\)$/);
    x.dispose();
  });

  it('reject an i32 tensor, naming the op and the shape', () => {
    const ids = tensor(rt, Int32Array.from([3, 1, 2]), [3]);
    expect(() => sum(ids)).toThrow(/^sum: expected an f32 tensor, got i32 \[3\]$/);
    expect(() => argmax(ids)).toThrow(/^argmax: expected an f32 tensor, got i32 \[3\]$/);
    ids.dispose();
  });
});

describe('device limits', () => {
  it('a tensor over maxBufferSize is a LimitError naming the limit, before any GPU allocation', () => {
    const max = rt.limits.maxBufferSize;
    const n = Math.floor(max / 4) + 1;
    const live = rt.stats().liveBuffers;
    const call = () => zeros(rt, [n]);
    expect(call).toThrow(LimitError);
    expect(call).toThrow(new RegExp(`buffer of ${n * 4} bytes: ${n * 4} exceeds the device limit maxBufferSize = ${max}$`));
    expect(rt.stats().liveBuffers).toBe(live);
  });
});

describe('f16 storage tensors in layout ops', () => {
  // the layout kernels move 32-bit words; an f16 buffer holds half the bytes its shape implies
  it('fail naming the op and the shape instead of reading past the buffer', () => {
    if (!rt.has('shader-f16')) {
      expect(() => cast(tensor(rt, [1], [1]), 'f16')).toThrow(/did not grant 'shader-f16'/);
      return;
    }
    const h = cast(tensor(rt, [1, 2, 3, 4, 5, 6], [2, 3]), 'f16');
    const idx = tensor(rt, Int32Array.from([1, 0]), [2]);
    expect(() => permute(h, [1, 0])).toThrow(/permute: .*\[2,3\]/);
    expect(() => transpose(h)).toThrow(/(permute|transpose): .*\[2,3\]/);
    expect(() => slice(h, [0, 0], [1, 3])).toThrow(/slice: .*\[2,3\]/);
    expect(() => concat([h, h], 0)).toThrow(/concat: .*\[2,3\]/);
    expect(() => indexSelect(h, 0, idx)).toThrow(/indexSelect: .*\[2,3\]/);
    h.dispose();
    idx.dispose();
  });
});
