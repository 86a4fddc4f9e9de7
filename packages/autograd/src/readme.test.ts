// The README's training example, verbatim in substance: it must keep working.
import { getRuntime } from '@keel/kernels';
import { describe, expect, it } from 'vitest';
import { Activation, AdamW, Linear, Sequential, backward, crossEntropy, tensor, tidy } from './index.js';

describe('README example', () => {
  it('learns XOR with Linear/tanh/Linear, AdamW and crossEntropy', async () => {
    const rt = await getRuntime();
    const model = new Sequential(new Linear(rt, 2, 16, { seed: 1 }), new Activation('tanh'), new Linear(rt, 16, 2, { seed: 2 }));
    const opt = new AdamW(rt, model, { lr: 0.05, maxNorm: 1 });
    const x = tensor(rt, [0, 0, 0, 1, 1, 0, 1, 1], [4, 2]);
    const y = tensor(rt, Int32Array.from([0, 1, 1, 0]), [4]);
    const losses: number[] = [];
    for (let step = 0; step < 200; step++) {
      const loss = tidy(() => {
        const l = crossEntropy(model.forward(x), y);
        backward(l);
        return l.detach();
      });
      opt.step();
      opt.zeroGrad();
      if (step % 50 === 0 || step === 199) losses.push(await loss.item());
      loss.dispose();
    }
    expect(losses[0]).toBeGreaterThan(0.5);
    expect(losses.at(-1)).toBeLessThan(0.05);
  });
});
