/**
 * Drawing a training example from a task's pool with question-type weights (pretrain.ts's
 * `kindWeights`, keyed `task.kind`): a type of weight w is drawn w times as often as one of weight 1.
 */
import type { Sample } from '../data/tasks.js';

/**
 * The pool index for a uniform draw u ∈ [0, 1): plain `floor(u·n)` when no question type of the
 * task is weighted (so such runs draw exactly as before kind weights existed), else the index whose
 * cumulative weight first exceeds u·total.
 */
export function kindDraw(samples: readonly Sample[], task: string, kindWeights: Record<string, number>): (u: number) => number {
  const n = samples.length;
  if (!Object.keys(kindWeights).some((k) => k.startsWith(`${task}.`))) return (u) => Math.floor(u * n);
  const cumulative = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cumulative[i] = sum += kindWeights[`${task}.${samples[i]!.kind}`] ?? 1;
  return (u) => {
    const r = u * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}
