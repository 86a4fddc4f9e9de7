/**
 * `keel tune`: fine-tunes a base model on a downstream task with one method and writes, under
 * --out, the adapter (adapter_config.json + adapter_model.safetensors, naming the base),
 * metrics.json (the T/U/H/E/F/O row, loss and T/U curves, the base scores, config and flags) and the
 * report. Everything is validated before the model loads: an unknown strategy or task, a config
 * file that is not JSON or fails the method's schema, or a general task as target exits 2.
 *
 * Output: a progress bar (loss, samples/s, ETA) on a TTY; nothing until the result otherwise;
 * `--json` prints JSON lines (progress, eval and checkpoint events, then the result).
 *
 * Checkpoints: every --checkpoint-every steps (default max(1, floor(steps / 10)), so about ten per
 * run; 0 turns them off) the run's full training state goes to <out>/checkpoints
 * (checkpoint.node.ts: written atomically, only the newest kept). `--resume` continues the run from
 * <out>/checkpoints/latest and reproduces the uninterrupted run exactly; it exits 2 when there is no
 * checkpoint, when a flag that defines the run (--strategy/--config, --task, --base, --steps,
 * --batch, --lr, --seed, --eval, --eval-every) differs from the checkpoint's run (naming the flag),
 * or when <out>/metrics.json shows the run already completed. A non-finite loss stops the run
 * (exit 1) naming the step and the last good checkpoint; no checkpoint of that step is written.
 * A resumed run's peak_mb covers the resumed steps only (metrics.json `resumedFrom`).
 */
import { access, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { getRuntime } from '@keel/kernels';
import { getTask } from '@keel/mllm';
import { type Command } from 'commander';
import { suiteLr } from '../protocol/suite.js';
import { runDifference, type TuneCheckpoint } from '../protocol/checkpoint.js';
import { latestCheckpoint, readCheckpoint, writeCheckpoint } from '../protocol/checkpoint.node.js';
import { NonFiniteLossError, tune, tuneRunIdentity, type TuneOptions, type TuneResult } from '../protocol/tune.js';
import { parseStrategyConfig } from '../strategies/apply.js';
import { registerBuiltinStrategies } from '../strategies/builtin.js';
import { getStrategy } from '../strategies/registry.js';
import { UsageError, positiveInt, positiveNumber } from './args.js';
import { bundledBasePath, loadCheckpoint } from './model-dir.js';
import { TargetPatternError } from '../strategies/targets.js';
import { writeFileAtomic } from '../fs.node.js';
import { startProgress } from './progress.js';
import type { TuneReportInput } from '../report/report.js';
import { writeTuneReport } from '../report/write.node.js';

interface TuneFlags {
  strategy?: string;
  task: string;
  base?: string;
  steps: number;
  batch: number;
  lr?: number;
  seed: number;
  config?: string;
  out?: string;
  eval: number;
  evalEvery: number;
  checkpointEvery?: number;
  resume?: boolean;
  json?: boolean;
}

/** The flag behind each field of a run's identity (checkpoint.ts TuneRunIdentity). */
const IDENTITY_FLAGS: Record<string, string> = {
  config: '--strategy/--config',
  task: '--task',
  steps: '--steps',
  batchSize: '--batch',
  lr: '--lr',
  seed: '--seed',
  evalCount: '--eval',
  evalEvery: '--eval-every',
  'tag.base': '--base',
};

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** The checkpoint `--resume` continues, checked against this invocation's run (file comment). */
async function checkpointToResume(out: string, dir: string, options: TuneOptions): Promise<{ checkpoint: TuneCheckpoint; path: string }> {
  const path = await latestCheckpoint(dir).catch((e: Error) => {
    throw new UsageError(`--resume: ${e.message}`);
  });
  if (!path) throw new UsageError(`--resume: no checkpoint to resume in ${dir} (${join(dir, 'latest')} does not exist); run without --resume to start`);
  let checkpoint: TuneCheckpoint;
  try {
    checkpoint = await readCheckpoint(dir);
  } catch (e) {
    throw new UsageError(`--resume: ${(e as Error).message}`);
  }
  const d = runDifference(checkpoint.run, tuneRunIdentity(options));
  if (d) {
    const top = d.field.split('.')[0]!;
    const flag = IDENTITY_FLAGS[d.field] ?? IDENTITY_FLAGS[top] ?? d.field;
    throw new UsageError(`--resume: ${flag}${flag === IDENTITY_FLAGS.config ? ` (${d.field})` : ''} is ${JSON.stringify(d.now)} but the checkpoint's run (${path}) used ${JSON.stringify(d.saved)}; resume with that run's flags`);
  }
  if (await exists(join(out, 'metrics.json'))) throw new UsageError(`--resume: ${join(out, 'metrics.json')} exists, so that run completed; delete its outputs to redo the end from the step-${checkpoint.step} checkpoint, or drop --resume`);
  return { checkpoint, path };
}

/** The method config from --config (a JSON object of fields, `strategy` optional) and --strategy. */
export async function resolveTuneConfig(strategyFlag: string | undefined, file: string | undefined): Promise<{ strategy: string; [k: string]: unknown }> {
  let fields: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new UsageError(`--config ${file}: cannot read the file (${(e as Error).message})`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`--config ${file}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`--config ${file}: expected a JSON object of method fields, got ${JSON.stringify(json)}`);
    fields = json as Record<string, unknown>;
  }
  const { strategy: inFile, ...rest } = fields;
  if (inFile !== undefined && typeof inFile !== 'string') throw new UsageError(`--config ${file}: "strategy" must be a name, got ${JSON.stringify(inFile)}`);
  if (strategyFlag && inFile && strategyFlag !== inFile) throw new UsageError(`--strategy ${strategyFlag} disagrees with "strategy": "${inFile}" in ${file}`);
  const strategy = strategyFlag ?? (inFile as string | undefined);
  if (!strategy) throw new UsageError('give the method with --strategy NAME (or "strategy" in the --config file); `keel strategies` lists them');
  registerBuiltinStrategies();
  let def;
  try {
    def = getStrategy(strategy);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  try {
    parseStrategyConfig(def, rest);
  } catch (e) {
    throw new UsageError(`${file ? `--config ${file}: ` : ''}${(e as Error).message}`);
  }
  return { strategy, ...rest };
}

function checkTask(name: string): void {
  let task;
  try {
    task = getTask(name);
  } catch (e) {
    throw new UsageError(`--task: ${(e as Error).message}`);
  }
  if (task.kind !== 'downstream') throw new UsageError(`--task ${name} is a general task (it makes up U); tune on a downstream task`);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}`;

/** The result as a small text table. */
export function formatTuneResult(r: TuneResult, out: string): string {
  const w = r.row;
  return [
    `${w.strategy} on ${w.task}: ${w.trainable.toLocaleString('en-US')} trainable (${w.trainable_pct.toFixed(2)} %), ${w.sec_per_step.toFixed(2)} s/step, peak ${w.peak_mb.toFixed(1)} MB`,
    `         T      U      H      E      F      O`,
    `base  ${pct(r.base.T).padStart(5)}  ${pct(r.base.U).padStart(5)}`,
    `tuned ${[w.T, w.U, w.H, w.E, w.F, w.O].map((x) => pct(x).padStart(5)).join('  ')}`,
    `saved to ${out} (adapter, metrics.json, report.html + PNG plots)`,
  ].join('\n');
}

/** The report of one run (report/report.ts): curves, final table, mask heatmap, answers before/after. */
export function tuneReportInput(r: TuneResult, config: Record<string, unknown>): TuneReportInput {
  return {
    title: `keel tune: ${r.row.strategy} on ${r.row.task}`,
    strategy: r.row.strategy,
    task: r.row.task,
    config,
    lossCurve: r.lossCurve,
    evalCurve: r.evalCurve,
    table: r.row,
    base: { T: r.base.T, U: r.base.U },
    ...(r.masks ? { masks: r.masks } : {}),
    samples: r.base.samples.map((b, i) => ({ prompt: b.prompt, answer: b.answer, before: b.prediction, after: r.final.samples[i]?.prediction ?? '' })),
  };
}

export function registerTune(program: Command): void {
  program
    .command('tune')
    .description('fine-tune the base model on a downstream task with one strategy; report T/U/H/E/F/O')
    .option('--strategy <name>', 'tuning method (see `keel strategies`)')
    .requiredOption('--task <name>', 'downstream task: mnist, novel or count')
    .option('--base <dir>', 'base checkpoint directory (default: the bundled base)')
    .option('--steps <n>', 'optimizer steps', (v) => positiveInt(v), 200)
    .option('--batch <n>', 'examples per step', (v) => positiveInt(v), 16)
    .option('--lr <x>', 'peak learning rate (default: the benchmark suite lr of the method)', positiveNumber)
    .option('--seed <n>', 'seed of data and method randomness', (v) => positiveInt(v, true), 0)
    .option('--config <file>', 'JSON file of method fields, e.g. {"r": 16, "targets": ["language_model.**"]}')
    .option('--out <dir>', 'output directory (default keel-tune-<strategy>-<task>)')
    .option('--eval <n>', 'held-out examples per task for T and U', (v) => positiveInt(v), 200)
    .option('--eval-every <n>', 'also score T and U every n steps (0: start and end only)', (v) => positiveInt(v, true), 0)
    .option('--checkpoint-every <n>', 'write a resumable checkpoint to <out>/checkpoints every n steps (default max(1, steps/10); 0: never)', (v) => positiveInt(v, true))
    .option('--resume', 'continue the run from <out>/checkpoints/latest (the same flags as the run that wrote it)')
    .option('--json', 'machine-readable output: JSON progress lines and a final JSON result')
    .action(async (f: TuneFlags) => {
      const config = await resolveTuneConfig(f.strategy, f.config);
      checkTask(f.task);
      const out = resolve(f.out ?? `keel-tune-${config.strategy}-${f.task}`);
      const baseDir = resolve(f.base ?? bundledBasePath());
      const lr = f.lr ?? suiteLr(config.strategy) ?? 1e-3;
      const checkpointDir = join(out, 'checkpoints');
      const checkpointEvery = f.checkpointEvery ?? Math.max(1, Math.floor(f.steps / 10));
      const run: TuneOptions = { config, task: f.task, steps: f.steps, batchSize: f.batch, lr, seed: f.seed, evalCount: f.eval, evalEvery: f.evalEvery, tag: { base: baseDir } };
      const resume = f.resume ? await checkpointToResume(out, checkpointDir, run) : null;
      const log = (s: string) => process.stderr.write(`${s}\n`);
      if (resume) {
        if (f.json) console.log(JSON.stringify({ event: 'resume', step: resume.checkpoint.step, path: resume.path }));
        else log(`resuming from step ${resume.checkpoint.step} of ${f.steps} (${resume.path})`);
      }
      const rt = await getRuntime();
      try {
        const { model, tokenizer } = await loadCheckpoint(rt, baseDir);
        const bar = f.json ? null : startProgress(`tune ${config.strategy}`, f.steps);
        let lastCheckpoint = resume?.path ?? null;
        let r: TuneResult;
        try {
          r = await tune(model, tokenizer, {
            ...run,
            ...(resume ? { resume: resume.checkpoint } : {}),
            checkpointEvery,
            onCheckpoint: async (c) => {
              lastCheckpoint = await writeCheckpoint(checkpointDir, c);
              if (f.json) console.log(JSON.stringify({ event: 'checkpoint', step: c.step, path: lastCheckpoint }));
            },
            onProgress: (p) => (f.json ? console.log(JSON.stringify({ event: 'progress', ...p })) : bar?.update(p.step, { loss: p.loss, sps: p.samplesPerSec })),
            onEval: (step, e) => f.json && console.log(JSON.stringify({ event: 'eval', step, T: e.T, U: e.U, scores: e.scores })),
          });
        } catch (e) {
          if (e instanceof TargetPatternError) throw new UsageError(e.message, { cause: e });
          if (e instanceof NonFiniteLossError) {
            const where = lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint}` : `no checkpoint was written before step ${e.step}`;
            throw new Error(`${e.message}; ${where}`, { cause: e });
          }
          throw e;
        } finally {
          bar?.stop();
        }
        await mkdir(out, { recursive: true });
        await r.handle.save(out, { baseModel: baseDir });
        const metrics = { command: 'keel tune', strategy: config.strategy, task: f.task, config: r.handle.config, flags: { steps: f.steps, batch: f.batch, lr, seed: f.seed, eval: f.eval, evalEvery: f.evalEvery, checkpointEvery }, resumedFrom: r.resumedFrom, base: r.base, final: r.final, result: r.row, lossCurve: r.lossCurve, evalCurve: r.evalCurve };
        await writeFileAtomic(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
        await writeTuneReport(out, tuneReportInput(r, config));
        r.handle.dispose();
        model.dispose();
        if (f.json) console.log(JSON.stringify({ event: 'done', out, ...r.row }));
        else console.log(formatTuneResult(r, out));
      } finally {
        rt.destroy();
      }
    });
}
