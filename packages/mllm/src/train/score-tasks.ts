/**
 * Held-out scores of a model on the registered tasks, overall and per question type: what
 * pre-training reports at its end and what the model card shows.
 */
import { ALL_TASKS, getTask, type Sample } from '../data/tasks.js';
import type { Example } from '../model/collate.js';
import type { MultimodalModel } from '../model/mllm.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { accuracyByKind, evaluateExamples, type KindScores } from './loop.js';

export const toExample = (s: Sample): Example => ({ image: s.image, prompt: s.prompt, answer: s.answer });

/** Held-out exact-match accuracy on every registered task (general and downstream). */
export async function scoreTasks(model: MultimodalModel, tok: Tokenizer, count: number, seed = 0, names?: readonly string[]): Promise<Record<string, number>> {
  return (await scoreTasksByKind(model, tok, count, seed, names)).scores;
}

/** scoreTasks, plus the accuracy per question type of each task. */
export async function scoreTasksByKind(
  model: MultimodalModel,
  tok: Tokenizer,
  count: number,
  seed = 0,
  names?: readonly string[],
): Promise<{ scores: Record<string, number>; byKind: Record<string, KindScores> }> {
  const size = model.config.vision.imageSize;
  const scores: Record<string, number> = {};
  const byKind: Record<string, KindScores> = {};
  for (const name of names ?? ALL_TASKS) {
    const samples = await getTask(name).samples('test', count, seed, { size });
    const r = await evaluateExamples(model, tok, samples.map(toExample));
    scores[name] = r.accuracy;
    byKind[name] = accuracyByKind(samples.map((s) => s.kind), r.correct);
  }
  return { scores, byKind };
}
