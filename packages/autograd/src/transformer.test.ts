/**
 * End-to-end check of @keel/autograd: a 1-block pre-norm transformer assembled only from the
 * package's public exports (index.ts) learns a synthetic sequence task.
 *
 * Task ("copy the previous token"): x is T random tokens in [0, V); the target at position t ≥ 1 is
 * x[t − 1], position 0 is ignored (ignoreIndex). No token statistics help (tokens are uniform and
 * independent), so the model must route information between positions: causal attention with
 * rotary positions has to put its weight on the key one step back. Chance accuracy is 1/V = 10 %.
 *
 * Dimension legend: B batch, T tokens, V vocabulary, C model width, H heads, D head dim (C = H·D),
 * F the MLP's hidden width.
 * Non-goals: speed, larger models, checkpoints (covered elsewhere).
 */
import { Runtime } from '@keel/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  Linear,
  Module,
  add,
  attention,
  backward,
  cosineSchedule,
  crossEntropy,
  embedding,
  gelu,
  noGrad,
  ones,
  permute,
  randn,
  reshape,
  rmsNorm,
  rope,
  seededRandom,
  tensor,
  tidy,
  type Parameter,
  type Tensor,
} from './index.js';

const V = 10;
const C = 32;
const H = 4;
const D = C / H;
const F = 64;
const T = 12;
const IGNORE = -100;

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

/** One pre-norm block plus embedding and LM head; every sub-layer seeded from `seed`. */
class TinyTransformer extends Module {
  readonly tokEmb: Parameter; // (V, C)
  readonly norm1: Parameter; // (C,)
  readonly norm2: Parameter; // (C,)
  readonly normF: Parameter; // (C,)
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly head: Linear;

  constructor(rt: Runtime, seed: number) {
    super();
    this.tokEmb = this.param('tok_emb', randn(rt, [V, C], seed, { std: 1 }));
    this.norm1 = this.param('norm1', ones(rt, [C]));
    this.q = this.module('q_proj', new Linear(rt, C, C, { bias: false, seed: seed + 1 }));
    this.k = this.module('k_proj', new Linear(rt, C, C, { bias: false, seed: seed + 2 }));
    this.v = this.module('v_proj', new Linear(rt, C, C, { bias: false, seed: seed + 3 }));
    this.o = this.module('o_proj', new Linear(rt, C, C, { seed: seed + 4 }));
    this.norm2 = this.param('norm2', ones(rt, [C]));
    this.fc1 = this.module('fc1', new Linear(rt, C, F, { seed: seed + 5 }));
    this.fc2 = this.module('fc2', new Linear(rt, F, C, { seed: seed + 6 }));
    this.normF = this.param('norm_f', ones(rt, [C]));
    this.head = this.module('lm_head', new Linear(rt, C, V, { seed: seed + 7 }));
  }

  /** (B, T, C) → (B, H, T, D). */
  private split(x: Tensor): Tensor {
    const [B, Tn] = x.shape as [number, number, number];
    return permute(reshape(x, [B, Tn, H, D]), [0, 2, 1, 3]);
  }

  /** ids (B, T) i32 → logits (B, T, V). */
  forward(ids: Tensor): Tensor {
    const [B, Tn] = ids.shape as [number, number];
    let x = embedding(this.tokEmb, ids); // (B, T, C)
    // attention sub-layer
    const h = rmsNorm(x, this.norm1);
    const q = rope(this.split(this.q.forward(h)), { layout: 'BHTD' });
    const k = rope(this.split(this.k.forward(h)), { layout: 'BHTD' });
    const v = this.split(this.v.forward(h));
    const a = attention(q, k, v, { causal: true }); // (B, H, T, D)
    const merged = reshape(permute(a, [0, 2, 1, 3]), [B, Tn, C]);
    x = add(x, this.o.forward(merged));
    // MLP sub-layer
    const m = this.fc2.forward(gelu(this.fc1.forward(rmsNorm(x, this.norm2))));
    x = add(x, m);
    return this.head.forward(rmsNorm(x, this.normF));
  }
}

/** `n` sequences of T uniform tokens and their previous-token targets (position 0 ignored). */
function copyPrevBatch(n: number, rand: () => number): { ids: Int32Array; targets: Int32Array } {
  const ids = new Int32Array(n * T);
  const targets = new Int32Array(n * T);
  for (let i = 0; i < n * T; i++) ids[i] = Math.floor(rand() * V);
  for (let b = 0; b < n; b++) {
    for (let t = 0; t < T; t++) targets[b * T + t] = t === 0 ? IGNORE : ids[b * T + t - 1]!;
  }
  return { ids, targets };
}

/** Fraction of non-ignored positions whose argmax (on the CPU) equals the target. */
function accuracy(logits: Float32Array, targets: Int32Array): number {
  let hit = 0;
  let count = 0;
  for (let r = 0; r < targets.length; r++) {
    if (targets[r] === IGNORE) continue;
    let best = 0;
    for (let c = 1; c < V; c++) if (logits[r * V + c]! > logits[r * V + best]!) best = c;
    hit += best === targets[r] ? 1 : 0;
    count++;
  }
  return hit / count;
}

describe('transformer', () => {
  it('a 1-block transformer (embedding → rmsNorm → rope + causal attention → MLP → LM head) learns copy-previous-token to ≥ 95 % held-out accuracy', async () => {
    const STEPS = 300;
    const BATCH = 32;
    const model = new TinyTransformer(rt, 1234);
    const opt = new AdamW(rt, model, { lr: 1e-2, weightDecay: 0, maxNorm: 1, schedule: cosineSchedule({ warmup: 20, total: STEPS, minRatio: 0.1 }) });
    const trainRand = seededRandom(42);

    // crossEntropy takes logits (B, T, V) against targets (B, T) directly
    const lossOf = (ids: Tensor, targets: Tensor) => crossEntropy(model.forward(ids), targets, { ignoreIndex: IGNORE });
    const batchTensors = (n: number, rand: () => number) => {
      const { ids, targets } = copyPrevBatch(n, rand);
      return { ids: tensor(rt, ids, [n, T]), targets: tensor(rt, targets, [n, T]), cpuTargets: targets };
    };

    const t0 = performance.now();
    let initialLoss = NaN;
    let finalLoss = NaN;
    let live10 = { liveBuffers: -1, liveBytes: -1 };
    for (let s = 0; s < STEPS; s++) {
      const loss = tidy(() => {
        const { ids, targets } = batchTensors(BATCH, trainRand);
        const l = lossOf(ids, targets);
        backward(l);
        return l.detach();
      });
      opt.step();
      opt.zeroGrad();
      if (s === 0) initialLoss = await loss.item();
      if (s === STEPS - 1) finalLoss = await loss.item();
      loss.dispose();
      if (s === 10) {
        await rt.sync();
        const { liveBuffers, liveBytes } = rt.stats();
        live10 = { liveBuffers, liveBytes };
      }
    }
    await rt.sync();
    const { liveBuffers, liveBytes } = rt.stats();
    const liveEnd = { liveBuffers, liveBytes };
    const trainSeconds = (performance.now() - t0) / 1000;

    // held-out: fresh sequences from a different seed, positions t ≥ 1, argmax on the CPU
    const test = batchTensors(256, seededRandom(9001));
    const logits = noGrad(() => tidy(() => model.forward(test.ids)));
    const acc = accuracy((await logits.toArray()) as Float32Array, test.cpuTargets);
    console.log(
      `copy-prev transformer: loss ${initialLoss.toFixed(3)} → ${finalLoss.toPrecision(4)}, held-out acc ${(acc * 100).toFixed(2)} %, ` +
        `${STEPS} steps in ${trainSeconds.toFixed(2)} s, live buffers step 10 ${live10.liveBuffers} / end ${liveEnd.liveBuffers}`,
    );

    expect(Math.abs(initialLoss - Math.log(V))).toBeLessThan(0.5); // ≈ ln 10 before training
    expect(finalLoss).toBeLessThan(0.1 * initialLoss);
    expect(acc).toBeGreaterThanOrEqual(0.95); // the stated bar; chance is 10 %
    expect(liveEnd).toEqual(live10); // flat from step 10 to the end: nothing leaks per step
    for (const t of [logits, test.ids, test.targets]) t.dispose();
    opt.dispose();
    model.dispose();
  }, 60_000);
});
