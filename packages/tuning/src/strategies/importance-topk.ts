/**
 * The hard-mask family next to SPIDER (shared/reference/spider.md): score every trainable entry, keep
 * the top-k, and let AdamW update only those (masked entries keep W, m and v bit-identical):
 *   score  'magnitude'  |W0|              static: the mask is computed once, when the optimizer is made
 *          'snip'       |W ⊙ g|           this step's weights and gradient, at each refresh step
 *          'grad_sum'   |S|, S ← S + g    signed gradient sum since the first step (as SPIDER's S)
 *          'fisher'     F, F ← F + g²     empirical Fisher diagonal, summed since the first step
 *   mask   exactly k = ceil(fraction · n) entries per tensor (scope 'tensor', n its size) or over all
 *          trainable entries at once (scope 'global'); ties at the threshold: lowest arena index first
 * grad_sum and fisher accumulate at every step; the mask is recomputed at steps 1, 1 + refresh,
 * 1 + 2·refresh … and held in between. Warm-up: the first mask is computed at step 1, from step 1's
 * gradient, before step 1's update — no step ever runs unmasked.
 *
 * On the device (spider.ts `anchoredInstance`): W0 and, for grad_sum/fisher, S or F are (N,) arenas
 * in MaskedAdamW's layout; inside each step (the optimizer's onGradients hook) importanceScores writes a
 * transient score arena from the optimizer's gathered W and g, topkThreshold turns it into a packed
 * bit mask over the same arena, and setBitMaskBuffer hands that mask to the optimizer (which owns it
 * from then on). No readback. g is the gradient the optimizer applies (clipped when maxNorm is set,
 * see spider.ts); snip's ranking does not depend on it (one scale for all entries), the sums do.
 *
 * maskDensity: per tensor, the share of set bits of the mask this instance computed last (with scope
 * 'tensor' that is ceil(k·n)/n unless NaN scores leave fewer eligible; with 'global' the split of the
 * one k across tensors); 1 for every tensor before the first mask (nothing restricts an update yet;
 * 'magnitude' computes its mask when the optimizer is made, the others at step 1). The optimizer owns
 * its mask, so each new mask is also copied into a buffer of the instance (ceil(N/32) words, once per
 * refresh); maskDensity reads those words back and counts bits per tensor on the CPU. A mask loaded
 * into the optimizer from a saved optimizer state is seen here only through runningState's copy.
 *
 * Dimension legend: N arena elements (padding included), T trainable tensors, n one tensor's size.
 * Non-goals: resetting the sums at a refresh, sparsity schedules (k changing over training), masks
 * on added parameters, storing the mask in the adapter (a save holds the tuned weights only).
 */
import type { MaskedAdamW } from '@keel/autograd';
import { importanceScores, topkThreshold, type GpuBuffer, type ImportanceMode, type Runtime, type SegmentLayout, type SegmentTable } from '@keel/kernels';
import { z } from 'zod';
import type { RunningState, StrategyDefinition } from './strategy.js';
import { anchoredInstance, appliedGradient, runningEntry, share, zeroArena } from './spider.js';
import { selectParameters, targetPatterns } from './targets.js';

export const IMPORTANCE_SCORES = ['magnitude', 'snip', 'grad_sum', 'fisher'] as const satisfies readonly ImportanceMode[];

const fraction = (field: string) => z.number().gt(0, `${field} must be a fraction in (0, 1]`).lte(1, `${field} must be a fraction in (0, 1]`);

export const topkConfigSchema = z
  .object({
    /** Parameter or module name globs to tune (as `full`). */
    targets: targetPatterns.default(['**']),
    /** Importance of an entry (see the file comment). */
    score: z.enum(IMPORTANCE_SCORES, { message: `score must be one of ${IMPORTANCE_SCORES.map((s) => `'${s}'`).join(', ')}` }).default('snip'),
    /** Fraction of entries that update, in (0, 1]. */
    k: fraction('k').default(0.1),
    /** 'tensor': k of every tensor; 'global': k of all trainable entries, one threshold. */
    scope: z.enum(['tensor', 'global'], { message: "scope must be 'tensor' or 'global'" }).default('tensor'),
    /** Steps between mask recomputations (1: every step). */
    refresh: z.number().int('refresh must be a whole number of steps').min(1, 'refresh must be at least 1 step').default(100),
  })
  .strict();

export type TopkConfig = z.infer<typeof topkConfigSchema>;

/**
 * Top-`k` mask of `scores` (an arena of `table`) handed to `opt`, which owns it from then on; its words
 * are also copied into `copy` (ceil(N/32) u32).
 */
function setTopkMask(rt: Runtime, opt: MaskedAdamW, scores: GpuBuffer, table: SegmentTable, k: number, scope: 'tensor' | 'global', copy: GpuBuffer): void {
  const { threshold, mask } = topkThreshold(rt, scores, { fraction: k }, { mode: scope, table });
  rt.release(threshold);
  rt.copy(mask, copy, copy.size);
  opt.setBitMaskBuffer(mask, table);
}

/** Set bits of each tensor's range [offset, offset + n) of a packed arena mask (bit e: word e >> 5, bit e & 31). */
export function maskCounts(words: Uint32Array, layout: SegmentLayout): number[] {
  return layout.lengths.map((n, t) => {
    let count = 0;
    for (let e = layout.offsets[t]!, end = e + n; e < end; e += 32) {
      let w = words[e >>> 5]! >>> 0;
      if (end - e < 32) w &= 2 ** (end - e) - 1; // offsets are multiples of 64: only the last word is partial
      for (; w; w &= w - 1) count++;
    }
    return count;
  });
}

/** Whether step t (1-based) recomputes the mask. */
const isRefreshStep = (t: number, refresh: number): boolean => (t - 1) % refresh === 0;

export const importanceTopkStrategy: StrategyDefinition<TopkConfig> = {
  name: 'topk',
  paradigm: 'selective',
  description: 'hard-mask selective tuning: AdamW updates only the top-k entries by |W0|, |W·g| (SNIP), |Σg| or Σg² (Fisher)',
  schema: topkConfigSchema,
  mergeable: true,
  apply(model, config) {
    const { score, k, scope, refresh } = config;
    return anchoredInstance('topk', selectParameters(model, config.targets, 'topk'), ({ rt, table, w0 }) => {
      // grad_sum's S or fisher's F
      const acc = score === 'grad_sum' || score === 'fisher' ? zeroArena(rt, table) : null;
      const scoresArena = () => rt.createBuffer(table.arenaLength * 4);
      let bits: GpuBuffer | null = null; // the last mask's words, for maskDensity
      const maskCopy = () => (bits ??= rt.createBuffer(Math.max(1, Math.ceil(table.arenaLength / 32)) * 4));
      return {
        arenas: acc ? 1 : 0,
        attach(opt) {
          if (score === 'magnitude') {
            const out = importanceScores(rt, { mode: 'magnitude', w0, out: scoresArena(), table });
            setTopkMask(rt, opt, out, table, k, scope, maskCopy());
            rt.release(out);
            return;
          }
          opt.onGradients((arenas) => {
            const due = isRefreshStep(arenas.step, refresh);
            if (!due && !acc) return;
            const g = appliedGradient(opt, arenas);
            const state = score === 'fisher' ? { f: acc! } : score === 'grad_sum' ? { s: acc! } : { w: arenas.params };
            const out = importanceScores(rt, { mode: score, g: g.g, ...state, out: scoresArena(), table });
            if (due) setTopkMask(rt, opt, out, table, k, scope, maskCopy());
            g.done();
            rt.release(out);
          });
        },
        async density() {
          if (!bits) return table.lengths.map(() => 1);
          return maskCounts(await rt.readU32(bits), table).map((count, t) => share(count, table.lengths[t]!));
        },
        smallBytes: () => bits?.size ?? 0,
        // The optimizer's own state holds the mask it applies; these are the sums and the density copy.
        async runningState() {
          const state: RunningState = new Map();
          if (acc) state.set('sums', await rt.readF32(acc));
          if (bits) state.set('mask', await rt.readU32(bits));
          return state;
        },
        loadRunningState(state) {
          if (acc) rt.write(acc, runningEntry('topk', state, 'sums', Float32Array, table.arenaLength));
          if (state.has('mask')) rt.write(maskCopy(), runningEntry('topk', state, 'mask', Uint32Array, Math.max(1, Math.ceil(table.arenaLength / 32))));
        },
        release() {
          for (const b of [acc, bits]) if (b) rt.release(b);
          bits = null;
        },
      };
    });
  },
};
