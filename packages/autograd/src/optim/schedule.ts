/**
 * Learning-rate schedules: a schedule maps the 0-based index s of the step about to be taken
 * (= the number of steps completed before it) to a multiplier of each group's base lr. Step s uses
 * lr = baseLr · schedule(s). Warmup ramps start above zero: the first step uses 1/warmup (HF's
 * schedulers give the first step lr 0, which wastes a step).
 */
export type Schedule = (step: number) => number;

function checkSteps(what: string, name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${what}: ${name} must be an integer ≥ ${min}, got ${v}`);
}

/** Always 1. */
export const constantSchedule = (): Schedule => () => 1;

/** (s + 1)/warmup for s < warmup, then 1. */
export function linearWarmup(warmup: number): Schedule {
  checkSteps('linearWarmup', 'warmup', warmup, 0);
  return (s) => (s < warmup ? (s + 1) / warmup : 1);
}

export interface DecayOptions {
  /** Linear warmup steps before the decay (default 0). */
  warmup?: number;
  /** Total steps: the decay reaches `minRatio` at s = total (and stays there). */
  total: number;
  /** Final multiplier (default 0). */
  minRatio?: number;
}

function decay(what: string, o: DecayOptions, shape: (progress: number) => number): Schedule {
  const warmup = o.warmup ?? 0;
  const minRatio = o.minRatio ?? 0;
  checkSteps(what, 'warmup', warmup, 0);
  checkSteps(what, 'total', o.total, warmup + 1);
  if (!(minRatio >= 0 && minRatio <= 1)) throw new Error(`${what}: minRatio must be in [0, 1], got ${minRatio}`);
  return (s) => {
    if (s < warmup) return (s + 1) / warmup;
    const progress = Math.min(1, (s - warmup) / (o.total - warmup));
    return minRatio + (1 - minRatio) * shape(progress);
  };
}

/** Warmup, then minRatio + (1 − minRatio)·½(1 + cos(π·p)), p = (s − warmup)/(total − warmup) clamped to 1. */
export const cosineSchedule = (o: DecayOptions): Schedule => decay('cosineSchedule', o, (p) => 0.5 * (1 + Math.cos(Math.PI * p)));

/** Warmup, then a linear decay from 1 to minRatio at s = total. */
export const linearSchedule = (o: DecayOptions): Schedule => decay('linearSchedule', o, (p) => 1 - p);
