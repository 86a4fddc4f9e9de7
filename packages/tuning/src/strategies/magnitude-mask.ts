/**
 * MagnitudeMask, the baseline of the SPIDER authors' code (shared/reference/spider.md): after every
 * step, reset the top p (default 0.5) fraction of each tensor's entries by pre-trained magnitude |W0|
 * to their pre-trained values. Per tensor of n entries, r = ceil(p·n) entries are reset, n − r update.
 *
 * keel applies it as the complementary hard mask in MaskedAdamW: only the n − r entries of smallest
 * |W0| update; the other r keep W (and m, v) bit-identical. The weights are then exactly those of
 * "AdamW on everything, then reset": a reset entry starts at W0 and is put back to W0 after every step,
 * an updating entry's AdamW update reads only its own g, m, v. Only the reset entries' moments differ
 * (frozen here, advancing but never used there) and they never reach a weight.
 *
 * Ties. With τ the r-th largest |W0| of a tensor, the updating set is every entry with |W0| < τ plus
 * the lowest-index entries with |W0| = τ until n − r are chosen (the reset set takes the ties from the
 * highest index down). Exact counts matter for tensors of equal values (LayerNorm weights start at 1,
 * biases at 0). On the device, once per optimizer: |W0| (importanceScores 'magnitude'), τ per tensor
 * (topkThreshold), a key 2·[|W0| < τ] + [|W0| = τ] per tensor (two comparisons and an add against
 * the tensor's τ), and the top n − r keys per tensor (topkThreshold again) — that mask is the update
 * mask. No readback; nothing per step.
 *
 * maskDensity: (n − ceil(p·n)) / n per tensor, a constant of the config and the tensor sizes (the
 * update mask always holds exactly that many entries: its keys are never NaN), so nothing is read back.
 *
 * Dimension legend: N arena elements (padding included), T trainable tensors, n one tensor's size.
 * Non-goals: other ranking criteria (see importance-topk.ts), a mask that changes during training.
 */
import { binaryForward, importanceScores, topkCounts, topkThreshold, type GpuBuffer, type Runtime, type SegmentTable } from '@keel/kernels';
import { z } from 'zod';
import type { StrategyDefinition } from './strategy.js';
import { anchoredInstance, share } from './spider.js';
import { selectParameters, targetPatterns } from './targets.js';

export const magnitudeMaskConfigSchema = z
  .object({
    /** Parameter or module name globs to tune (as `full`). */
    targets: targetPatterns.default(['**']),
    /** Fraction of each tensor's entries (largest |W0|) pinned to W0, in (0, 1). */
    p: z.number().gt(0, 'p must be a fraction in (0, 1)').lt(1, 'p must be a fraction in (0, 1)').default(0.5),
  })
  .strict();

export type MagnitudeMaskConfig = z.infer<typeof magnitudeMaskConfigSchema>;

/**
 * The bit mask (over `table`'s arena) of the entries that update: per tensor the n − ceil(p·n) of
 * smallest |W0| (ties by lowest index). The caller owns the returned buffer.
 */
export function magnitudeUpdateMask(rt: Runtime, w0: GpuBuffer, table: SegmentTable, p: number): GpuBuffer {
  const { lengths, offsets } = table;
  const reset = topkCounts({ fraction: p }, lengths);
  const mag = importanceScores(rt, { mode: 'magnitude', w0, out: rt.createBuffer(table.arenaLength * 4), table }); // (N,) |W0|
  const top = topkThreshold(rt, mag, { k: reset }, { mode: 'tensor', table }); // threshold (T,) τ
  rt.release(top.mask);
  const keyed = rt.createBuffer(table.arenaLength * 4); // (N,) 2 below τ, 1 at τ, 0 above
  lengths.forEach((n, t) => {
    if (n === 0) return;
    const x = rt.createBuffer(n * 4); // (n,)
    const tau = rt.createBuffer(4); // (1,)
    rt.copy(mag, x, n * 4, offsets[t]! * 4, 0);
    rt.copy(top.threshold, tau, 4, t * 4, 0);
    const lt = binaryForward(rt, 'lt', x, tau, { aShape: [n], bShape: [1] });
    const le = binaryForward(rt, 'le', x, tau, { aShape: [n], bShape: [1] });
    const key = binaryForward(rt, 'add', lt, le, { aShape: [n], bShape: [n] });
    rt.copy(key, keyed, n * 4, 0, offsets[t]! * 4);
    for (const b of [x, tau, lt, le, key]) rt.release(b);
  });
  const update = topkThreshold(rt, keyed, { k: lengths.map((n, t) => n - reset[t]!) }, { mode: 'tensor', table });
  for (const b of [mag, top.threshold, keyed, update.threshold]) rt.release(b);
  return update.mask;
}

export const magnitudeMaskStrategy: StrategyDefinition<MagnitudeMaskConfig> = {
  name: 'magnitude_mask',
  paradigm: 'selective',
  description: "MagnitudeMask (SPIDER authors' baseline): the top p of each tensor's entries by |W0| stay at their pre-trained values",
  schema: magnitudeMaskConfigSchema,
  mergeable: true,
  apply(model, config) {
    return anchoredInstance('magnitude_mask', selectParameters(model, config.targets, 'magnitude_mask'), ({ rt, table, w0 }) => ({
      arenas: 0,
      attach: (opt) => opt.setBitMaskBuffer(magnitudeUpdateMask(rt, w0, table, config.p), table),
      density: async () => {
        const reset = topkCounts({ fraction: config.p }, table.lengths);
        return table.lengths.map((n, t) => share(n - reset[t]!, n));
      },
      release: () => {},
    }));
  },
};
