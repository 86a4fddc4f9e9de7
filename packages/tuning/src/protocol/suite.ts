/**
 * The benchmark's strategy suite: one row per method as the survey's table has it, each with the
 * config and peak learning rate keel runs it with. `keel tune` takes its default lr from here, and
 * `keel bench` runs these rows × the downstream tasks.
 *
 * Shared choices, so rows differ only in the method:
 *   - selective methods train the connector and the whole LLM (SELECTIVE_TARGETS) with the vision
 *     tower frozen, as SPIDER's LLaVA runs do; full fine-tuning trains the same set;
 *   - low-rank methods adapt every LLM linear and every connector linear (LOW_RANK_TARGETS): the
 *     MLP projector's two, the resampler's attention, MLP and input/output projections;
 *   - the connector is named by the `connector.**` alias (strategies/targets.ts), so every row
 *     applies to every architecture preset unchanged (protocol.test.ts checks both);
 *   - learning rates: 1e-3 for methods that move base weights; for the methods that train new or
 *     small tensors, the best H of a sweep over {1e-3, 3e-3, 1e-2} (3e-2 for IA3) on mnist at the
 *     benchmark's budget (300 steps × 16, bundled mlp base, 2026-11-24): LoRA and DoRA 3e-3,
 *     adapters and PiSSA 1e-3, prompts and BitFit 1e-2, IA3 3e-2. At 1e-2, LoRA, DoRA and adapters
 *     lose almost all of U (LoRA: T 18.5, U 0.5), so a shared 1e-2 would rank the method family by
 *     its learning rate, not by what it is. The other tasks (novel, count) took no part in the choice.
 *
 * Non-goals: per-task hyper-parameter search (every method gets one lr for every task).
 */

export interface SuiteEntry {
  /** Row label in tables (a method can appear under several labels, e.g. full and projector-only). */
  label: string;
  /** The applyTuning config. */
  config: { strategy: string; [field: string]: unknown };
  lr: number;
  /** Part of `keel bench --quick` (≥ 6 rows covering the three paradigms). */
  quick?: boolean;
}

export const SELECTIVE_TARGETS: readonly string[] = ['connector.**', 'language_model.**'];
export const LOW_RANK_TARGETS: readonly string[] = ['connector.**', 'language_model.**'];

const sel = { targets: [...SELECTIVE_TARGETS] };

export const BENCH_SUITE: readonly SuiteEntry[] = [
  { label: 'full', config: { strategy: 'full', ...sel }, lr: 1e-3, quick: true },
  { label: 'projector-only', config: { strategy: 'full', targets: ['connector.**'] }, lr: 3e-3 },
  { label: 'bitfit', config: { strategy: 'bitfit' }, lr: 1e-2 },
  { label: 'hft', config: { strategy: 'hft', ...sel }, lr: 1e-3 },
  { label: 'topk-snip', config: { strategy: 'topk', ...sel, score: 'snip', k: 0.1 }, lr: 1e-3, quick: true },
  { label: 'magnitude-mask', config: { strategy: 'magnitude_mask', ...sel }, lr: 1e-3 },
  { label: 'spider', config: { strategy: 'spider', ...sel }, lr: 1e-3, quick: true },
  { label: 'l2sp', config: { strategy: 'l2sp', ...sel }, lr: 1e-3 },
  { label: 'ewc', config: { strategy: 'ewc', ...sel }, lr: 1e-3 },
  { label: 'wise-ft', config: { strategy: 'wise_ft', ...sel }, lr: 1e-3 },
  { label: 'dare', config: { strategy: 'dare', ...sel }, lr: 1e-3 },
  { label: 'ties', config: { strategy: 'ties', ...sel }, lr: 1e-3 },
  { label: 'adapter', config: { strategy: 'adapter' }, lr: 1e-3, quick: true },
  { label: 'prompt', config: { strategy: 'prompt' }, lr: 1e-2 },
  { label: 'prefix', config: { strategy: 'prefix' }, lr: 1e-2 },
  { label: 'ia3', config: { strategy: 'ia3' }, lr: 3e-2, quick: true },
  { label: 'lora', config: { strategy: 'lora', r: 8, alpha: 16, targets: [...LOW_RANK_TARGETS] }, lr: 3e-3, quick: true },
  { label: 'dora', config: { strategy: 'dora', r: 8, alpha: 16, targets: [...LOW_RANK_TARGETS] }, lr: 3e-3 },
  { label: 'pissa', config: { strategy: 'lora', r: 8, alpha: 8, init: 'pissa', targets: [...LOW_RANK_TARGETS] }, lr: 1e-3 },
];

/** The quick subset (`keel bench --quick`). */
export const QUICK_SUITE: readonly SuiteEntry[] = BENCH_SUITE.filter((e) => e.quick);

/** The suite's lr for a strategy name (its first row), or undefined when the suite does not run it. */
export function suiteLr(strategy: string): number | undefined {
  return BENCH_SUITE.find((e) => e.config.strategy === strategy)?.lr;
}
