import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backward } from '../backward.js';
import { seededRandom, tensor } from '../creation.js';
import { mlp } from '../layers.js';
import { add, exp, log, mul, neg, sub } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import { AdamW } from './adamw.js';
import { cosineSchedule } from './schedule.js';
import { SGD } from './sgd.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

/** XOR-like 2-D task: label +1 where x0·x1 > 0, else −1; points within 0.05 of an axis are dropped. */
function xorData(n: number, seed: number): { x: Float32Array; y: Float32Array } {
  const r = seededRandom(seed);
  const x = new Float32Array(2 * n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; ) {
    const a = 2 * r() - 1;
    const b = 2 * r() - 1;
    if (Math.abs(a) < 0.05 || Math.abs(b) < 0.05) continue;
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = a * b > 0 ? 1 : -1;
    i++;
  }
  return { x, y };
}

/** Logistic loss mean(log(1 + exp(−y·z))) from existing ops. */
const logisticLoss = (z: Tensor, y: Tensor): Tensor => mean(log(add(exp(neg(mul(z, y))), 1)));

async function accuracy(z: Tensor, y: Float32Array): Promise<number> {
  const zs = await z.toArray();
  return y.reduce((s, yi, i) => s + (Math.sign(zs[i]!) === yi ? 1 : 0), 0) / y.length;
}

describe('training', () => {
  it('a 2-layer MLP (Linear → tanh → Linear) with AdamW + cosine schedule learns XOR to ≥ 97 % train and ≥ 95 % test accuracy in 300 steps', async () => {
    const train = xorData(256, 1);
    const test = xorData(256, 2);
    const net = mlp(rt, [2, 32, 1], { activation: 'tanh', seed: 7 });
    const opt = new AdamW(rt, net, { lr: 0.03, weightDecay: 0, schedule: cosineSchedule({ warmup: 10, total: 300, minRatio: 0.1 }), maxNorm: 5 });
    const x = tensor(rt, train.x, [256, 2]);
    const y = tensor(rt, train.y, [256, 1]);
    const xt = tensor(rt, test.x, [256, 2]);
    const initial = await tidy(() => logisticLoss(net.forward(x), y)).item();
    const t0 = performance.now();
    for (let s = 0; s < 300; s++) {
      tidy(() => {
        backward(logisticLoss(net.forward(x), y));
      });
      opt.step();
      opt.zeroGrad();
    }
    const final = await tidy(() => logisticLoss(net.forward(x), y)).item();
    const seconds = (performance.now() - t0) / 1000;
    const trainAcc = await accuracy(tidy(() => net.forward(x)), train.y);
    const testAcc = await accuracy(tidy(() => net.forward(xt)), test.y);
    console.log(`XOR MLP: loss ${initial.toFixed(3)} → ${final.toFixed(4)}, train ${trainAcc}, test ${testAcc}, 300 steps in ${seconds.toFixed(2)} s`);
    expect(initial).toBeGreaterThan(0.6); // ≈ log 2 before training
    expect(final).toBeLessThan(0.1);
    expect(trainAcc).toBeGreaterThanOrEqual(0.97);
    expect(testAcc).toBeGreaterThanOrEqual(0.95);
    for (const t of [x, y, xt]) t.dispose();
    opt.dispose();
    net.dispose();
  });

  it('1,000 training steps (tidy per step, SGD step, zeroGrad) keep live GPU buffers and bytes flat', async () => {
    const net = mlp(rt, [4, 8, 1], { activation: 'gelu', seed: 3 });
    const opt = new SGD(rt, net, { lr: 0.05, momentum: 0.9, maxNorm: 1, schedule: cosineSchedule({ warmup: 5, total: 1000 }) });
    const r = seededRandom(5);
    const x = tensor(rt, Array.from({ length: 64 }, () => r() - 0.5), [16, 4]);
    const target = tensor(rt, Array.from({ length: 16 }, () => r() - 0.5), [16, 1]);
    const trainStep = () => {
      tidy(() => {
        const d = sub(net.forward(x), target);
        backward(mean(mul(d, d)));
      });
      opt.step();
      opt.zeroGrad();
    };
    trainStep(); // warm-up: the optimizer's zero source and clip record are created here
    await rt.sync();
    const before = rt.stats();
    for (let s = 1; s < 1000; s++) trainStep();
    await rt.sync();
    const after = rt.stats();
    expect(await opt.lastGradNorm()).toBeGreaterThan(0);
    expect(after.liveBuffers).toBe(before.liveBuffers);
    expect(after.liveBytes).toBe(before.liveBytes);
    for (const t of [x, target]) t.dispose();
    opt.dispose();
    net.dispose();
  });
});
