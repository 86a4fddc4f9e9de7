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
 * Dimension legend: N arena elements (padding included), T trainable tensors.
 * Non-goals: resetting the sums at a refresh, sparsity schedules (k changing over training), masks
 * on added parameters, storing the mask in the adapter (a save holds the tuned weights only).
 */
import type { MaskedAdamW } from '@keel/autograd';
import { importanceScores, topkThreshold, type GpuBuffer, type ImportanceMode, type Runtime, type SegmentTable } from '@keel/kernels';
import { z } from 'zod';
import type { StrategyDefinition } from './strategy.js';
import { anchoredInstance, appliedGradient, zeroArena } from './spider.js';
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

/** Top-`k` mask of `scores` (an arena of `table`) handed to `opt`, which owns it from then on. */
function setTopkMask(rt: Runtime, opt: MaskedAdamW, scores: GpuBuffer, table: SegmentTable, k: number, scope: 'tensor' | 'global'): void {
  const { threshold, mask } = topkThreshold(rt, scores, { fraction: k }, { mode: scope, table });
  rt.release(threshold);
  opt.setBitMaskBuffer(mask, table);
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
      return {
        arenas: acc ? 1 : 0,
        attach(opt) {
          if (score === 'magnitude') {
            const out = importanceScores(rt, { mode: 'magnitude', w0, out: scoresArena(), table });
            setTopkMask(rt, opt, out, table, k, scope);
            rt.release(out);
            return;
          }
          opt.onGradients((arenas) => {
            const due = isRefreshStep(arenas.step, refresh);
            if (!due && !acc) return;
            const g = appliedGradient(opt, arenas);
            const state = score === 'fisher' ? { f: acc! } : score === 'grad_sum' ? { s: acc! } : { w: arenas.params };
            const out = importanceScores(rt, { mode: score, g: g.g, ...state, out: scoresArena(), table });
            if (due) setTopkMask(rt, opt, out, table, k, scope);
            g.done();
            rt.release(out);
          });
        },
        release: () => acc && rt.release(acc),
      };
    });
  },
};
