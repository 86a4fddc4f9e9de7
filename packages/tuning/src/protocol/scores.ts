/**
 * The specialization-vs-forgetting numbers, computed in one place for the CLI, the benchmark and
 * the browser example (no strategy or report has its own copy):
 *   T  target score: exact-match accuracy on the downstream task's held-out split
 *   U  upstream score: the mean of the general suite's held-out accuracies (caption, vqa, text)
 *   H  = 2·T·U / (T + U), the harmonic mean (0 when both are 0)
 *   E  = T − T(base)   specialization gain (the survey's E)
 *   F  = U − U(base)   stabilization change; negative = forgetting (the survey's F)
 *   O  = E + F         the survey's overall score
 * Scores are fractions in [0, 1]; reports print them as percentages.
 *
 * Non-goals: task-specific metrics (CIDEr, BLEU): every keel task is scored by exact match.
 */
import { GENERAL_TASKS, accuracyByKind, evaluateExamples, getTask, toExample, type KindScores, type MultimodalModel, type Tokenizer } from '@keel/mllm';

export interface TargetUpstream {
  T: number;
  U: number;
}

export interface ProtocolScores extends TargetUpstream {
  H: number;
  E: number;
  F: number;
  O: number;
}

/** 2TU/(T+U); 0 when T + U = 0. */
export const harmonicMean = (t: number, u: number): number => (t + u > 0 ? (2 * t * u) / (t + u) : 0);

/** T, U, H, E, F, O of a tuned model against its base. */
export function protocolScores(tuned: TargetUpstream, base: TargetUpstream): ProtocolScores {
  for (const [what, v] of [['tuned T', tuned.T], ['tuned U', tuned.U], ['base T', base.T], ['base U', base.U]] as const) {
    if (!(v >= 0 && v <= 1)) throw new Error(`protocolScores: ${what} must be a fraction in [0, 1], got ${v}`);
  }
  const E = tuned.T - base.T;
  const F = tuned.U - base.U;
  return { T: tuned.T, U: tuned.U, H: harmonicMean(tuned.T, tuned.U), E, F, O: E + F };
}

export interface EvaluateOptions {
  /** The downstream task (T). */
  task: string;
  /** Tasks averaged into U (default: the general suite). */
  general?: readonly string[];
  /** Held-out examples per task (default 200). */
  count?: number;
  /** Seed of the held-out draw (default 0): the same examples for the base and every tuned model. */
  seed?: number;
}

export interface Evaluation extends TargetUpstream {
  /** Accuracy per task: the target and every general task. */
  scores: Record<string, number>;
  /** The same per question type of each task (a colour question, a two-object caption …). */
  byKind: Record<string, KindScores>;
  /** The first held-out target examples with the model's answers (the same examples for every model). */
  samples: { prompt: string; answer: string; prediction: string }[];
}

/** Scores `model` on the target task and the general suite (greedy exact match on held-out splits). */
export async function evaluateTargetUpstream(model: MultimodalModel, tok: Tokenizer, options: EvaluateOptions): Promise<Evaluation> {
  const general = options.general ?? GENERAL_TASKS;
  const count = options.count ?? 200;
  if (!Number.isInteger(count) || count < 1) throw new Error(`evaluateTargetUpstream: count must be a positive integer, got ${count}`);
  if (general.length === 0) throw new Error('evaluateTargetUpstream: give at least one general task for U');
  if (general.includes(options.task)) throw new Error(`evaluateTargetUpstream: the target task '${options.task}' is also in the general suite (${general.join(', ')}); T and U must not overlap`);
  const size = model.config.vision.imageSize;
  const scores: Record<string, number> = {};
  const byKind: Record<string, KindScores> = {};
  let samples: Evaluation['samples'] = [];
  for (const name of [options.task, ...general]) {
    const held = await getTask(name).samples('test', count, options.seed ?? 0, { size });
    const r = await evaluateExamples(model, tok, held.map(toExample), { keepSamples: 6 });
    scores[name] = r.accuracy;
    byKind[name] = accuracyByKind(held.map((s) => s.kind), r.correct);
    if (name === options.task) samples = r.samples;
  }
  const U = general.reduce((s, n) => s + scores[n]!, 0) / general.length;
  return { T: scores[options.task]!, U, scores, byKind, samples };
}
