/**
 * `keel eval` scores a checkpoint or a tuning output on a task and the general suite (the same
 * protocol as tune and bench: protocol/scores.ts), each also per question type; `keel generate` answers one prompt, about one
 * PNG image or text-only, with greedy or sampled decoding.
 *
 * Images: PNG only (fast-png via @keel/mllm). A square image of another size is resized to the
 * model's input side; a non-square one is an error (keel does not guess a crop).
 */
import { readFile } from 'node:fs/promises';
import { getRuntime, type Runtime } from '@keel/kernels';
import { GENERAL_TASKS, accuracyByKind, decodePng, evaluateExamples, generate, getTask, resize, toExample, toModelInput, type KindScores, type MultimodalModel } from '@keel/mllm';
import { type Command } from 'commander';
import { evaluateTargetUpstream } from '../protocol/scores.js';
import { UsageError, positiveInt } from './args.js';
import { loadModelOrTuned } from './model-dir.js';

interface EvalFlags {
  model: string;
  task: string;
  count: number;
  seed: number;
  json?: boolean;
}

interface GenerateFlags {
  model: string;
  image?: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  json?: boolean;
}

function nonNegative(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`expected a non-negative number, got '${v}'`);
  return n;
}

function fraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new UsageError(`expected a number in (0, 1], got '${v}'`);
  return n;
}

/** A PNG file as the model's (3, S, S) input. */
export async function readImageInput(path: string, size: number): Promise<Float32Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new UsageError(`--image ${path}: cannot read the file (${(e as Error).message})`);
  }
  let img;
  try {
    img = decodePng(bytes);
  } catch (e) {
    throw new UsageError(`--image ${path}: ${(e as Error).message}`);
  }
  if (img.width !== img.height) throw new UsageError(`--image ${path}: the image is ${img.width}×${img.height}; the model takes square ${size}×${size} images (crop or pad it first)`);
  return toModelInput(img.width === size ? img : resize(img, size, size), { size });
}

async function withModel<T>(dir: string, fn: (rt: Runtime, model: MultimodalModel, tok: Awaited<ReturnType<typeof loadModelOrTuned>>['tokenizer']) => Promise<T>): Promise<T> {
  const rt = await getRuntime();
  try {
    const { model, tokenizer, handle } = await loadModelOrTuned(rt, dir);
    try {
      return await fn(rt, model, tokenizer);
    } finally {
      handle?.dispose();
      model.dispose();
    }
  } finally {
    rt.destroy();
  }
}

export function registerEvalGenerate(program: Command): void {
  program
    .command('eval')
    .description('score a checkpoint or a `keel tune` output on a task (T) and the general suite (U)')
    .requiredOption('--model <dir>', 'checkpoint directory or tuning output directory')
    .requiredOption('--task <name>', 'task to score: a downstream task (T) or a general one')
    .option('--count <n>', 'held-out examples per task', (v) => positiveInt(v), 200)
    .option('--seed <n>', 'seed of the held-out draw', (v) => positiveInt(v, true), 0)
    .option('--json', 'print the scores as JSON')
    .action(async (f: EvalFlags) => {
      let task;
      try {
        task = getTask(f.task);
      } catch (e) {
        throw new UsageError(`--task: ${(e as Error).message}`);
      }
      const scores = await withModel(f.model, async (_rt, model, tok) => {
        if (task.kind === 'downstream') return evaluateTargetUpstream(model, tok, { task: task.name, count: f.count, seed: f.seed });
        const size = model.config.vision.imageSize;
        const held = await task.samples('test', f.count, f.seed, { size });
        const r = await evaluateExamples(model, tok, held.map(toExample));
        const byKind = { [task.name]: accuracyByKind(held.map((x) => x.kind), r.correct) };
        return { scores: { [task.name]: r.accuracy }, byKind } as { T?: number; U?: number; scores: Record<string, number>; byKind: Record<string, KindScores> };
      });
      if (f.json) console.log(JSON.stringify(scores));
      else {
        for (const [name, acc] of Object.entries(scores.scores)) {
          console.log(`${name.padEnd(8)} ${(100 * acc).toFixed(1)} %${GENERAL_TASKS.includes(name) ? '  (general)' : ''}`);
          // the breakdown by question type, when the task has more than one
          const kinds = Object.entries(scores.byKind[name] ?? {});
          if (kinds.length > 1) for (const [k, v] of kinds) console.log(`  ${k.padEnd(12)} ${(100 * v.accuracy).toFixed(1).padStart(5)} %  (${v.count})`);
        }
        if (scores.T !== undefined && scores.U !== undefined) console.log(`T ${(100 * scores.T).toFixed(1)} %  U ${(100 * scores.U).toFixed(1)} %`);
      }
    });

  program
    .command('generate')
    .description('answer a prompt about a PNG image (or text-only) with a checkpoint or tuning output')
    .requiredOption('--model <dir>', 'checkpoint directory or tuning output directory')
    .option('--image <file.png>', 'PNG image (square; resized to the model input)')
    .requiredOption('--prompt <text>', 'the question or instruction')
    .option('--max-tokens <n>', 'most new tokens', (v) => positiveInt(v), 16)
    .option('--temperature <x>', '0 = greedy; > 0 samples', nonNegative, 0)
    .option('--top-p <x>', 'nucleus sampling mass in (0, 1]', fraction, 1)
    .option('--seed <n>', 'sampler seed', (v) => positiveInt(v, true), 0)
    .option('--json', 'print the result as JSON')
    .action(async (f: GenerateFlags) => {
      const result = await withModel(f.model, async (_rt, model, tok) => {
        const image = f.image ? await readImageInput(f.image, model.config.vision.imageSize) : null;
        const [g] = await generate(model, tok, [{ image, prompt: f.prompt }], { maxNewTokens: f.maxTokens, temperature: f.temperature, topP: f.topP, seed: f.seed });
        return g!;
      });
      if (f.json) console.log(JSON.stringify({ text: result.text, ids: result.ids, finish: result.finish }));
      else console.log(result.text);
    });
}
