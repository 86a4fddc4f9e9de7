/**
 * Bad input to the layout kernels (issue 8): each case must fail on the host with an error naming
 * the op, the operand and the shape, before anything is dispatched. The strided-copy and gather
 * kernels index their bindings without bounds checks, and the pool hands out buffers larger than
 * asked (256-byte buckets), so a buffer shorter than its stated shape would otherwise be read past
 * its end: stale bytes of an earlier tensor, not an error.
 *
 * The other op families' shape, dtype and limit checks are tested next to each op (ops/*.test.ts);
 * this file covers what those leave out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuBuffer } from './runtime/buffer-pool.js';
import { LimitError } from './runtime/errors.js';
import { Runtime } from './runtime/runtime.js';
import { concat, indexSelect, indexSelectBackward, pad, padBackward, permute, slice, sliceBackward, transpose } from './ops/layout.js';

let rt: Runtime;
/** 4 floats (16 bytes): too short for every (4, 4) shape below. */
let short: GpuBuffer;
/** 16 floats: exactly a (4, 4) tensor. */
let whole: GpuBuffer;
/** Two valid i32 indices. */
let idx: GpuBuffer;
beforeAll(async () => {
  rt = await Runtime.create();
  short = rt.upload(new Float32Array(4));
  whole = rt.upload(Float32Array.from({ length: 16 }, (_, i) => i));
  idx = rt.upload(Int32Array.from([0, 1]));
});
afterAll(() => rt.destroy());

describe('layout ops reject a buffer shorter than its shape', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['permute', () => permute(rt, short, [4, 4], [1, 0]), /^permute: x of shape \[4,4\] needs 64 bytes, buffer has 16$/],
    ['transpose', () => transpose(rt, short, [4, 4]), /^transpose: x of shape \[4,4\] needs 64 bytes, buffer has 16$/],
    ['slice', () => slice(rt, short, [4, 4], { starts: [0, 0], ends: [1, 1] }), /^slice: x of shape \[4,4\] needs 64 bytes, buffer has 16$/],
    ['sliceBackward', () => sliceBackward(rt, short, [8, 8], { starts: [0, 0], ends: [4, 4] }), /^sliceBackward: dy of shape \[4,4\] needs 64 bytes, buffer has 16$/],
    ['concat', () => concat(rt, [{ buffer: whole, shape: [4, 4] }, { buffer: short, shape: [4, 4] }], 0), /^concat: xs\[1\] of shape \[4,4\] needs 64 bytes, buffer has 16$/],
    ['pad', () => pad(rt, short, [4, 4], [[1, 1], [0, 0]]), /^pad: x of shape \[4,4\] needs 64 bytes, buffer has 16$/],
    ['padBackward', () => padBackward(rt, whole, [4, 4], [[1, 1], [1, 1]]), /^padBackward: dy of shape \[6,6\] needs 144 bytes, buffer has 64$/],
    ['indexSelect (gather)', () => indexSelect(rt, short, [4, 4], 0, idx, 2), /^indexSelect: x of shape \[4,4\] needs 64 bytes, buffer has 16$/],
    ['indexSelectBackward', () => indexSelectBackward(rt, short, [4, 4], 1, idx, 2), /^indexSelectBackward: dy of shape \[4,2,1\] needs 32 bytes, buffer has 16$/],
  ];
  it.each(cases)('%s', (_, call, message) => {
    const live = rt.stats().liveBuffers;
    expect(call).toThrow(message);
    expect(rt.stats().liveBuffers).toBe(live); // failed before allocating its output
  });
});

describe('layout ops name the bad argument', () => {
  it('gather: an axis outside the shape, or fewer indices than asked for', () => {
    expect(() => indexSelect(rt, whole, [4, 4], 2, idx, 2)).toThrow(/^indexSelect: axis 2 out of range for shape \[4,4\]$/);
    expect(() => indexSelect(rt, whole, [4, 4], 0, idx, 3)).toThrow(/^indexSelect: indices buffer holds 2 < 3 entries$/);
    expect(() => indexSelectBackward(rt, whole, [4, 4], 0, idx, 3)).toThrow(/^indexSelectBackward: indices buffer holds 2 < 3 entries$/);
    expect(() => indexSelectBackward(rt, whole, [4, 4], 0, idx, -1)).toThrow(/^indexSelectBackward: count must be a non-negative integer, got -1$/);
  });

  it('pad: pads that do not match the rank or are negative', () => {
    expect(() => pad(rt, whole, [4, 4], [[1, 1]])).toThrow(/^pad: pads \[\[1,1\]\] must be one non-negative \[before, after\] per axis of shape \[4,4\]$/);
    expect(() => pad(rt, whole, [4, 4], [[0, 0], [-1, 0]])).toThrow(/^pad: pads \[\[0,0\],\[-1,0\]\] must be one non-negative/);
    expect(() => padBackward(rt, whole, [4, 4], [[0, 0]])).toThrow(/^padBackward: pads \[\[0,0\]\] must be one \[before, after\] per axis of shape \[4,4\]$/);
  });

  it('a shape with a negative or fractional dimension', () => {
    expect(() => permute(rt, whole, [4, -4], [1, 0])).toThrow(/^permute: invalid shape \[4,-4\] for x$/);
    expect(() => slice(rt, whole, [2.5, 4], { starts: [0, 0], ends: [1, 1] })).toThrow(/^slice: invalid shape \[2.5,4\] for x$/);
  });

  it('an output above maxStorageBufferBindingSize is a LimitError, raised before allocating', () => {
    const max = rt.limits.maxStorageBufferBindingSize;
    const live = rt.stats().liveBuffers;
    const call = () => pad(rt, whole, [16], [[0, max / 4]]);
    expect(call).toThrow(LimitError);
    expect(call).toThrow(new RegExp(`^pad: tensor of ${16 + max / 4} elements: ${(16 + max / 4) * 4} exceeds the device limit maxStorageBufferBindingSize = ${max}$`));
    expect(rt.stats().liveBuffers).toBe(live);
  });
});
