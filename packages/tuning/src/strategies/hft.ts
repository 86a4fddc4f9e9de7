/**
 * Half Fine-Tuning (HFT, Hui et al. 2024, one of the survey's iterative selective methods): training
 * is split into rounds of `round` steps; at the start of each round a seeded random half of the
 * trainable tensors is frozen for the whole round and the other half updates. Keeping half of the
 * pre-trained parameters untouched at any time is what protects the old abilities; every tensor still
 * trains in about half of the rounds.
 *   round r covers steps r·round + 1 … (r + 1)·round (steps 1-based);
 *   frozen(r) = floor(T / 2) tensors, drawn by a Fisher–Yates shuffle seeded by (seed, r)
 * (`hftFrozen`, a pure function, so a run's schedule is known in advance).
 *
 * On the device: whole-tensor freezing is a bit mask in MaskedAdamW (frozen tensors keep W, m and v
 * bit-identical — what PyTorch does for a parameter with requires_grad off: no update, no moment
 * decay). Tensor offsets are 64-element aligned, so the mask is whole words per tensor: built on the
 * CPU once per round (N/32 words, no readback) in the optimizer's onGradients hook of the round's first
 * step and handed over with setBitMaskBuffer. W0 for disable/merge: selective.ts's snapshots.
 *
 * maskDensity: 0 for the tensors the round of the last step freezes, 1 for the others; 1 for every
 * tensor before the first step (no round has begun). Known on the CPU (the frozen set is recorded when
 * the round's mask is built), so nothing is read back.
 *
 * Dimension legend: N arena elements (padding included), T trainable tensors.
 * Non-goals: the paper's per-block balancing (half of each layer's attention and of its MLP
 * matrices; here the half is drawn over all selected tensors), skipping the frozen half's backward.
 */
import { MaskedAdamW, type Parameter } from '@keel/autograd';
import type { SegmentLayout } from '@keel/kernels';
import { z } from 'zod';
import { selectiveInstance } from './selective.js';
import { runningEntry } from './spider.js';
import type { StrategyDefinition, StrategyInstance } from './strategy.js';
import { selectParameters, targetPatterns } from './targets.js';

export const hftConfigSchema = z
  .object({
    /** Parameter or module name globs whose tensors take part (as `full`). */
    targets: targetPatterns.default(['**']),
    /** Steps per round: how long one random half stays frozen. */
    round: z.number().int('round must be a whole number of steps').min(1, 'round must be at least 1 step').default(100),
    /** Seed of the halves drawn each round. */
    seed: z.number().int('seed must be an integer').nonnegative('seed must be ≥ 0').default(0),
  })
  .strict();

export type HftConfig = z.infer<typeof hftConfigSchema>;

/** mulberry32: a small seeded generator of uniform floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** MurmurHash3's 32-bit finalizer: spreads every input bit over the output. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Which of `count` tensors round `r` (0-based) freezes: exactly floor(count / 2), seeded by (seed, r). */
export function hftFrozen(count: number, seed: number, r: number): boolean[] {
  const rand = mulberry32(fmix32(fmix32(seed) ^ Math.imul(r + 1, 0x9e3779b1)));
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const frozen = new Array<boolean>(count).fill(false);
  for (const i of order.slice(0, Math.floor(count / 2))) frozen[i] = true;
  return frozen;
}

/** Packed arena bit mask (word e >> 5, bit e & 31) setting every element of the tensors not frozen. */
export function wholeTensorMask(layout: SegmentLayout, frozen: readonly boolean[]): Uint32Array {
  const words = new Uint32Array(Math.max(1, Math.ceil(layout.arenaLength / 32)));
  layout.lengths.forEach((n, t) => {
    if (frozen[t]) return;
    const first = layout.offsets[t]! / 32; // offsets are multiples of 64 elements
    const full = Math.floor(n / 32);
    words.fill(0xffffffff, first, first + full);
    if (n % 32) words[first + full] = (2 ** (n % 32) - 1) >>> 0;
  });
  return words;
}

export const hftStrategy: StrategyDefinition<HftConfig> = {
  name: 'hft',
  paradigm: 'selective',
  description: 'Half Fine-Tuning: every `round` steps a seeded random half of the trainable tensors is frozen, the other half trains',
  schema: hftConfigSchema,
  mergeable: true,
  apply(model, config) {
    const params = selectParameters(model, config.targets, 'hft');
    const base = selectiveInstance('hft', params);
    const optimizers: MaskedAdamW[] = [];
    let frozen: ReadonlySet<Parameter> = new Set(); // the current round's, for maskDensity
    let roundOf: number | null = null; // its index; null before the first step
    let live = true;
    const detach = () => {
      for (const o of optimizers) o.onGradients(null);
      optimizers.length = 0;
      live = false;
    };
    const instance: StrategyInstance = {
      ...base,
      createOptimizer(ps, options) {
        const opt = new MaskedAdamW(ps[0]!.rt, ps, options);
        opt.onGradients(({ step }) => {
          if ((step - 1) % config.round !== 0) return;
          roundOf = (step - 1) / config.round;
          const round = hftFrozen(ps.length, config.seed, roundOf);
          frozen = new Set(ps.filter((_, t) => round[t]));
          opt.setBitMaskBuffer(opt.rt.upload(wholeTensorMask(opt.table, round)), opt.table);
        });
        optimizers.push(opt);
        return opt;
      },
      // The optimizer's state holds the round's mask; the round index restores the frozen set maskDensity reports.
      async runningState() {
        const r = roundOf === null ? -1 : roundOf;
        return new Map([['round', Float32Array.of(r)]]);
      },
      loadRunningState(state) {
        const [r] = runningEntry('hft', state, 'round', Float32Array, 1);
        const list = [...params.values()];
        roundOf = r! < 0 ? null : r!;
        const round = roundOf === null ? null : hftFrozen(list.length, config.seed, roundOf);
        frozen = new Set(round ? list.filter((_, t) => round[t]) : []);
      },
      async maskDensity() {
        if (!live) throw new Error('hft.maskDensity: the method was merged or removed; it masks nothing any more');
        return new Map([...params].map(([name, p]) => [name, frozen.has(p) ? 0 : 1]));
      },
      merge() {
        base.merge();
        detach();
      },
      remove() {
        detach();
        base.remove();
      },
    };
    return instance;
  },
};
