/**
 * `keel bench`: the survey's table on keel — strategies × downstream tasks on one base model, each
 * run by protocol/tune.ts with the suite's config and lr (protocol/suite.ts) and the same step
 * budget, scored by the one protocol (T, U, H, E, F, O, trainable %, peak MB, s/step).
 *
 * The base is scored once: U on the general suite and T per task, on the same held-out draw every
 * tuned model is scored on. Each run starts from a fresh load of the base.
 *
 * `--arch mlp|resampler|all` (default mlp) picks the architectures, each on its bundled base
 * (model-dir.ts); `--base DIR` replaces the bundled base and takes a single architecture (without
 * --arch, the one DIR's config names). A row's `arch` is the loaded model's `projector.type`, never
 * the flag: a model that is not the architecture asked for is an error.
 *
 * Writes under --out: bench.md (one table per arch and task; with ≥ 2 archs, the H rankings
 * compared, protocol/ranking.ts), bench.html (the same + a T-vs-U scatter per arch and task),
 * scatter PNGs, and bench.json (also at --json FILE):
 *   {
 *     device, date, command,
 *     archs: ['mlp', …],                      run order
 *     base: { U, T: { <task>: T₀ } },         archs[0]'s base: the pre-arch shape, unchanged
 *     bases: { <arch>: { U, T: { … } }, … },  every arch's base (one key for one arch)
 *     rows: [{ strategy, task, arch, lr, T, U, H, E, F, O, trainable, trainable_pct,
 *              extra_state_bytes, peak_mb, sec_per_step, sec }, …],   E, F against bases[arch]
 *     ranking?: { archs, tasks: [{ task, strategies, rankings, pairs: [{ a, b, tau }] }],
 *                 meanTau, verdict },       only with ≥ 2 archs
 *     steps, batch, evalCount, seed
 *   }
 * `lr` is the peak learning rate the row ran with: the suite's, or `--lr NAME=LR`'s (sweeps).
 * `bases` is there for one arch too, so a reader needs no branch on the count, and `base` stays for
 * readers of single-architecture files. `--quick` runs the quick subset on one task with a shorter
 * budget (under 10 minutes on a 2-core CPU with lavapipe, per architecture).
 */
import { resolve } from 'node:path';
import { getRuntime } from '@keel/kernels';
import { ARCH_NAMES, DOWNSTREAM_TASKS, GENERAL_TASKS, getTask, isArchName, type ArchName } from '@keel/mllm';
import { InvalidArgumentError, type Command } from 'commander';
import { rankingAgreement } from '../protocol/ranking.js';
import { evaluateTargetUpstream, type Evaluation } from '../protocol/scores.js';
import { BENCH_SUITE, QUICK_SUITE, type SuiteEntry } from '../protocol/suite.js';
import { tune } from '../protocol/tune.js';
import type { BenchReportInput, BenchRow } from '../report/report.js';
import { writeBenchReport } from '../report/write.node.js';
import { registerBuiltinStrategies } from '../strategies/builtin.js';
import { getStrategy } from '../strategies/registry.js';
import { UsageError, positiveInt } from './args.js';
import { bundledBasePath, loadCheckpoint } from './model-dir.js';
import { writeFileAtomic } from '../fs.node.js';
import { startProgress } from './progress.js';

interface BenchFlags {
  arch?: ArchName | 'all';
  quick?: boolean;
  strategies?: string;
  tasks?: string;
  base?: string;
  steps?: number;
  batch: number;
  eval?: number;
  seed: number;
  out: string;
  json?: string;
  lr?: Record<string, number>;
}

/** The suite rows named by --strategies (labels or strategy names, comma-separated), in suite order. */
export function selectSuite(list: string | undefined, quick: boolean): SuiteEntry[] {
  const pool = quick && !list ? QUICK_SUITE : BENCH_SUITE;
  if (!list) return [...pool];
  const wanted = list.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = wanted.filter((w) => !BENCH_SUITE.some((e) => e.label === w || e.config.strategy === w));
  if (unknown.length) throw new UsageError(`--strategies: unknown ${unknown.map((u) => `'${u}'`).join(', ')}; the suite has ${BENCH_SUITE.map((e) => e.label).join(', ')}`);
  // a strategy name selects its first suite row; a label selects exactly that row
  return BENCH_SUITE.filter((e) => wanted.includes(e.label) || (wanted.includes(e.config.strategy) && BENCH_SUITE.find((f) => f.config.strategy === e.config.strategy) === e));
}

/**
 * `--lr full=3e-4,spider=3e-3`: learning rates that replace the suite's for the named rows (labels
 * or strategy names, as --strategies), for sweeps; every key must name a row that runs.
 */
export function parseLrOverrides(v: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of v.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([^=\s]+)=(.+)$/.exec(part);
    if (!m) throw new InvalidArgumentError(`'${part}' is not NAME=LR (e.g. spider=3e-3)`);
    const lr = Number(m[2]);
    if (!Number.isFinite(lr) || lr <= 0) throw new InvalidArgumentError(`${m[1]}: lr '${m[2]}' is not a positive number`);
    if (Object.hasOwn(out, m[1]!)) throw new InvalidArgumentError(`${m[1]} is given twice`);
    out[m[1]!] = lr;
  }
  if (!Object.keys(out).length) throw new InvalidArgumentError('expected NAME=LR pairs, e.g. spider=3e-3');
  return out;
}

/** The suite rows with --lr applied; a key that names no selected row is an error. */
export function applyLrOverrides(suite: readonly SuiteEntry[], lrs: Record<string, number> | undefined): SuiteEntry[] {
  if (!lrs) return [...suite];
  const idle = Object.keys(lrs).filter((k) => !suite.some((e) => e.label === k || e.config.strategy === k));
  if (idle.length) throw new UsageError(`--lr: ${idle.map((k) => `'${k}'`).join(', ')} names no strategy this bench runs (${suite.map((e) => e.label).join(', ')})`);
  // a label wins over its strategy name (--lr full=…,projector-only=… sets each row)
  return suite.map((e) => ({ ...e, lr: lrs[e.label] ?? lrs[e.config.strategy] ?? e.lr }));
}

export function selectTasks(list: string | undefined, quick: boolean): string[] {
  if (!list) return quick ? ['mnist'] : [...DOWNSTREAM_TASKS];
  const tasks = list.split(',').map((s) => s.trim()).filter(Boolean);
  for (const t of tasks) {
    let task;
    try {
      task = getTask(t);
    } catch (e) {
      throw new UsageError(`--tasks: ${(e as Error).message}`);
    }
    if (task.kind !== 'downstream') throw new UsageError(`--tasks: '${t}' is a general task (it makes up U); bench tunes on downstream tasks: ${DOWNSTREAM_TASKS.join(', ')}`);
  }
  return tasks;
}

const pct = (x: number) => (100 * x).toFixed(1).padStart(5);

function parseBenchArch(v: string): ArchName | 'all' {
  if (v !== 'all' && !isArchName(v)) throw new InvalidArgumentError(`unknown architecture '${v}'; choose one of ${[...ARCH_NAMES, 'all'].join(', ')}`);
  return v;
}

/** The base checkpoint of each architecture to run, in report order (file comment). */
export function benchPlan(arch: ArchName | 'all' | undefined, base: string | undefined): { arch: ArchName | undefined; dir: string }[] {
  if (base !== undefined) {
    if (arch === 'all') throw new UsageError(`--base ${base} is one checkpoint, of one architecture; use it with --arch ${ARCH_NAMES.join(' or --arch ')}, or drop it to run every architecture on its bundled base`);
    return [{ arch, dir: resolve(base) }];
  }
  return (arch === 'all' ? ARCH_NAMES : [arch ?? 'mlp']).map((a) => ({ arch: a, dir: resolve(bundledBasePath(a)) }));
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('run strategies × downstream tasks on the base model; write bench.json, bench.md and bench.html')
    .option('--arch <name>', `architecture: ${ARCH_NAMES.join(', ')} or all (default mlp), each on its bundled base`, parseBenchArch)
    .option('--quick', 'the quick subset (6 strategies) on mnist with 100 steps and 100 held-out examples')
    .option('--strategies <list>', 'comma-separated suite labels or strategy names (default: the whole suite)')
    .option('--tasks <list>', `comma-separated downstream tasks (default: ${DOWNSTREAM_TASKS.join(',')})`)
    .option('--base <dir>', "base checkpoint directory (default: the --arch's bundled base); one architecture only")
    .option('--steps <n>', 'optimizer steps per run (default 300; 100 with --quick)', (v) => positiveInt(v))
    .option('--batch <n>', 'examples per step', (v) => positiveInt(v), 16)
    .option('--eval <n>', 'held-out examples per task (default 200; 100 with --quick)', (v) => positiveInt(v))
    .option('--seed <n>', 'seed of data and methods', (v) => positiveInt(v, true), 0)
    .option('--out <dir>', 'output directory', 'keel-bench')
    .option('--json <file>', 'also write bench.json to this path; print JSON lines instead of text')
    .option('--lr <pairs>', "learning rates replacing the suite's, e.g. full=3e-4,spider=3e-3 (labels or strategy names)", parseLrOverrides)
    .action(async (f: BenchFlags) => {
      registerBuiltinStrategies();
      const suite = applyLrOverrides(selectSuite(f.strategies, !!f.quick), f.lr);
      for (const e of suite) getStrategy(e.config.strategy); // every suite method is registered
      const tasks = selectTasks(f.tasks, !!f.quick);
      const steps = f.steps ?? (f.quick ? 100 : 300);
      const evalCount = f.eval ?? (f.quick ? 100 : 200);
      const plan = benchPlan(f.arch, f.base);
      const out = resolve(f.out);
      const flags = `${f.quick ? ' --quick' : ''}${f.strategies ? ` --strategies ${f.strategies}` : ''}${f.tasks ? ` --tasks ${f.tasks}` : ''} --steps ${steps} --batch ${f.batch} --eval ${evalCount} --seed ${f.seed}${f.lr ? ` --lr ${Object.entries(f.lr).map(([k, v]) => `${k}=${v}`).join(',')}` : ''}`;
      const log = (s: string) => (f.json ? undefined : process.stderr.write(`${s}\n`));
      const rt = await getRuntime();
      try {
        // every base first, scored once on the draw every run is scored on: a base of the wrong
        // architecture stops the bench before any run
        const bases: Record<string, { U: number; T: Record<string, number> }> = {};
        const runs: { arch: ArchName; dir: string; evals: Map<string, Evaluation> }[] = [];
        for (const { arch: asked, dir } of plan) {
          const base = await loadCheckpoint(rt, dir);
          const arch = base.model.config.projector.type;
          const evals = new Map<string, Evaluation>();
          try {
            if (asked !== undefined && arch !== asked) throw new UsageError(`${dir} is a '${arch}' model (the projector type in its config.json), not --arch ${asked}`);
            for (const task of tasks) evals.set(task, await evaluateTargetUpstream(base.model, base.tokenizer, { task, count: evalCount, seed: f.seed }));
          } finally {
            base.model.dispose();
          }
          const first = evals.get(tasks[0]!)!;
          bases[arch] = { U: first.U, T: Object.fromEntries(tasks.map((t) => [t, evals.get(t)!.T])) };
          runs.push({ arch, dir, evals });
          log(`base ${arch}: U ${pct(first.U)} %  (${GENERAL_TASKS.map((g) => `${g} ${pct(first.scores[g]!)}`).join(', ')}); T ${tasks.map((t) => `${t} ${pct(evals.get(t)!.T)}`).join(', ')}`);
          if (f.json) console.log(JSON.stringify({ event: 'base', arch, ...bases[arch] }));
        }

        const rows: BenchRow[] = [];
        for (const { arch, dir, evals } of runs) {
          for (const task of tasks) {
            for (const entry of suite) {
              const { model, tokenizer } = await loadCheckpoint(rt, dir);
              const bar = f.json ? null : startProgress(`${runs.length > 1 ? `${arch} ` : ''}${entry.label.padEnd(14)} ${task}`, steps);
              try {
                const r = await tune(model, tokenizer, {
                  config: entry.config,
                  task,
                  steps,
                  batchSize: f.batch,
                  lr: entry.lr,
                  seed: f.seed,
                  evalCount,
                  base: evals.get(task)!,
                  progressEvery: 5,
                  onProgress: (p) => bar?.update(p.step, { loss: p.loss, sps: p.samplesPerSec }),
                });
                bar?.stop();
                const row: BenchRow = { ...r.row, strategy: entry.label, arch, lr: entry.lr };
                rows.push(row);
                r.handle.dispose();
                if (f.json) console.log(JSON.stringify({ event: 'row', ...row }));
                else log(`${arch.padEnd(9)} ${entry.label.padEnd(14)} ${task.padEnd(6)} T ${pct(row.T)}  U ${pct(row.U)}  H ${pct(row.H)}  E ${pct(row.E)}  F ${pct(row.F)}  ${row.trainable_pct.toFixed(2)} % trainable  ${row.sec_per_step.toFixed(2)} s/step`);
              } finally {
                bar?.stop();
                model.dispose();
              }
            }
          }
        }
        const archs = Object.keys(bases);
        const command = `keel bench --arch ${f.arch === 'all' ? 'all' : archs[0]}${flags}`;
        const a = rt.info.adapter;
        const report: BenchReportInput = { device: `${a.description || a.architecture} (${a.vendor})`, date: new Date().toISOString().slice(0, 10), command, base: bases[archs[0]!]!, bases, rows };
        const ranking = archs.length > 1 ? rankingAgreement(rows.map((r) => ({ arch: r.arch!, task: r.task, strategy: r.strategy, H: r.H }))) : undefined;
        const { device, date, base } = report;
        const json = `${JSON.stringify({ device, date, command, archs, base, bases, rows, ...(ranking ? { ranking } : {}), steps, batch: f.batch, evalCount, seed: f.seed }, null, 2)}\n`;
        await writeBenchReport(out, report);
        await writeFileAtomic(resolve(out, 'bench.json'), json);
        if (f.json) {
          await writeFileAtomic(resolve(f.json), json);
          console.log(JSON.stringify({ event: 'done', out, json: resolve(f.json) }));
        } else {
          const { readFile } = await import('node:fs/promises');
          console.log(await readFile(resolve(out, 'bench.md'), 'utf8'));
          log(`report: ${out}/bench.html (T-vs-U scatter per arch and task, PNGs beside it); data: ${out}/bench.json`);
        }
      } finally {
        rt.destroy();
      }
    });
}
