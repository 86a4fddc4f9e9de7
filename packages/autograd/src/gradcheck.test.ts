import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randn, tensor } from './creation.js';
import { gradcheck } from './gradcheck.js';
import { mul, tanh } from './ops/elementwise.js';
import { matmul } from './ops/linalg.js';
import { backwardRules } from './ops/rules.js';
import { sum } from './ops/reduce.js';
import type { BackwardRule } from './ops/registry.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

describe('gradcheck', () => {
  it('passes on correct rules and reports the errors it saw; leaves .grad untouched', async () => {
    const a = randn(rt, [3, 5], 1, { requiresGrad: true });
    const b = randn(rt, [5, 2], 2, { requiresGrad: true });
    const c = randn(rt, [3, 2], 3);
    const prev = tensor(rt, new Float32Array(15).fill(7), [3, 5]);
    a.grad = prev;
    const r = await gradcheck((x, y, z) => mul(tanh(matmul(x!, y!)), z!), [a, b, c], { names: ['A', 'B', 'C'] });
    expect(r.inputs.map((i) => i.name)).toEqual(['A [3,5]', 'B [5,2]']);
    expect(r.inputs.every((i) => i.maxAbsError < 5e-3)).toBe(true);
    expect(a.grad).toBe(prev);
    expect(b.grad).toBeNull();
    expect(Array.from(await a.toArray())).toEqual(Array.from(await randn(rt, [3, 5], 1).toArray()));
  });

  it('fails on a deliberately wrong backward rule, naming the input and the worst element', async () => {
    const x = randn(rt, [2, 3], 4, { requiresGrad: true });
    const rules = backwardRules as unknown as Record<string, BackwardRule<'unary'>>;
    const original = rules.unary!;
    // tanh' = 1 − y²; this wrong rule doubles the gradient of element [1,2] only.
    rules.unary = (dy, ctx, inputs) => {
      const [g] = original(dy, ctx, inputs);
      const bump = tensor(rt, [1, 1, 1, 1, 1, 2], [2, 3]);
      const out = mul(g!, bump);
      g!.dispose();
      bump.dispose();
      return [out];
    };
    try {
      await expect(gradcheck((t) => tanh(t!), [x], { names: ['x'] })).rejects.toThrow(
        /gradcheck: gradient of x \[2,3\] differs from finite differences; worst element \[1,2\] \(flat 5\)/,
      );
    } finally {
      rules.unary = original;
    }
    await gradcheck((t) => tanh(t!), [x]);
  });

  it('fails when the truncation error (large eps) exceeds the tolerance, and checks its arguments', async () => {
    const x = randn(rt, [4], 5, { requiresGrad: true });
    await expect(gradcheck((t) => sum(mul(mul(t!, t!), t!)), [x], { eps: 0.3, atol: 0, rtol: 1e-6 })).rejects.toThrow(/gradcheck: gradient of input 0 \[4\]/);
    await expect(gradcheck((t) => tanh(t!), [randn(rt, [2], 6)])).rejects.toThrow(/no input requires gradients/);
    const y = tanh(x);
    await expect(gradcheck((t) => tanh(t!), [y])).rejects.toThrow(/input 0 \[4\] requires gradients but is not a leaf/);
  });
});
