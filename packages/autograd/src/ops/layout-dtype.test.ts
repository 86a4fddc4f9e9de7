/**
 * Layout ops refuse f16 storage tensors at the autograd level, naming the op and the dtype and
 * saying what to do (cast to f32), instead of failing inside the kernel on a byte count.
 */
import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tensor } from '../creation.js';
import { cast } from './cast.js';
import { concat, indexSelect, narrow, permute, slice, transpose } from './layout.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

it('f16 tensors are refused naming the op and the dtype, with the cast to use', (ctx) => {
  if (!rt.has('shader-f16')) ctx.skip();
  const x = tensor(rt, [1, 2, 3, 4, 5, 6], [2, 3]);
  const h = cast(x, 'f16');
  const idx = tensor(rt, Int32Array.from([1, 0]), [2]);
  const live = rt.stats().liveBuffers;
  const calls: [string, () => unknown][] = [
    ['permute', () => permute(h, [1, 0])],
    ['permute', () => transpose(h)],
    ['slice', () => slice(h, [0, 0], [1, 3])],
    ['slice', () => narrow(h, 1, 0, 2)],
    ['concat', () => concat([x, h], 0)],
    ['indexSelect', () => indexSelect(h, 0, idx)],
  ];
  for (const [op, call] of calls) {
    expect(call).toThrow(new RegExp(`^${op}: got an f16 tensor \\[2,3\\]; ${op} moves 32-bit f32 or i32 values, so cast\\(x, 'f32'\\) first`));
  }
  // refused before any kernel ran: nothing was allocated
  expect(rt.stats().liveBuffers).toBe(live);
  // the suggested fix works
  const h32 = cast(h, 'f32');
  const back = permute(h32, [1, 0]);
  expect(back.shape).toEqual([3, 2]);
  for (const t of [x, h, idx, h32, back]) t.dispose();
});
