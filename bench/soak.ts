/**
 * Soak benchmark: long continuous tuning on one long-lived runtime, with checkpoint/resume cycles,
 * to find what short tests cannot — slow GPU-buffer or host-memory growth, a resume that drifts
 * from the uninterrupted run after many cycles, a failure that only shows up on the n-th model load.
 *
 *   pnpm bench:soak [-- --minutes 30] [--base DIR] [--out DIR] [--strategies full,spider,topk,lora,adapter,ia3]
 *                   [--steps 40] [--checkpoint-every 10] [--batch 8] [--eval 20] [--verify-every 3] [--seed 0]
 *
 * The soak is a sequence of segments, cycling through the strategies (suite rows, bench.ts's
 * BENCH_SUITE: config and lr). One segment, each phase on a fresh load of the base model:
 *   interrupt  tune() for --steps steps, a checkpoint to disk every --checkpoint-every steps,
 *              aborted through its AbortSignal after a seeded random step;
 *   resume     the model and handle disposed, the base loaded again, the run continued from the
 *              checkpoint `latest` names (restarted from step 0 when the abort came before the first
 *              checkpoint) to the end;
 *   reference  every --verify-every-th segment of each strategy (its first included; counted per
 *              strategy, so none is skipped when their number is a multiple of it): the same run
 *              uninterrupted; its per-step losses and final T/U must equal the resumed run's bit for
 *              bit (tune.ts promises that on one device). A difference is recorded as drift, not thrown.
 * Per segment: optimizer steps executed, wall seconds, the runtime's live storage buffers/bytes and
 * the host's rss/heap before and after (everything disposed, so they should not grow), the peak of
 * live storage bytes over its phases, the final-step loss, and any error with its phase. A failing
 * segment is recorded and the soak goes on. A segment starts only while time is left, so the last one
 * ends past the budget. The JSON is rewritten after every segment (a killed soak keeps its data);
 * SIGINT prints the summary so far and exits 130.
 *
 * Evaluation is not the point: --eval is small and T/U are scored at the start and the end only.
 * Non-goals: throughput tuning (bench:model), scores (keel bench), kernel numbers (bench:kernels).
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Runtime } from '@keel/kernels';
import { seededRandom } from '@keel/autograd';
import type { LoadedModel } from '@keel/mllm';
import { BENCH_SUITE, TuneAbortedError, tune, tuneRunIdentity, type SuiteEntry, type TuneCheckpoint, type TuneOptions, type TuneResult } from '../packages/tuning/src/index.js';
import { latestCheckpoint, readCheckpoint, writeCheckpoint } from '../packages/tuning/src/protocol/checkpoint.node.js';
import { bundledBasePath, loadCheckpoint } from '../packages/tuning/src/cli/model-dir.js';

const MB = 1 / 2 ** 20;
const DEFAULT_STRATEGIES = 'full,spider,topk,lora,adapter,ia3';

interface MemorySample {
  liveBuffers: number;
  liveBytes: number;
  pooledBytes: number;
  rssBytes: number;
  heapUsedBytes: number;
}

type Phase = 'interrupt' | 'resume' | 'reference';

interface Segment {
  index: number;
  label: string;
  strategy: string;
  seed: number;
  /** The step after which the interrupt phase was aborted. */
  interruptAt: number;
  /** The checkpoint's step the resume phase started from; 0 when it had to restart. */
  resumedFrom: number | null;
  checkpointsWritten: number;
  checkpointBytes: number;
  /** Optimizer steps executed in every phase (the steps redone after the resume included). */
  stepsDone: number;
  wallSec: number;
  /** Training seconds per step of the resumed run (tune's sec_per_step). */
  trainSecPerStep: number | null;
  before: MemorySample;
  after: MemorySample;
  peakBytes: number;
  finalLoss: number | null;
  /** null: no reference run this segment. */
  exact: null | { equal: true } | { equal: false; field: string; resumed: unknown; reference: unknown };
  error: null | { phase: Phase | 'setup'; name: string; message: string };
  runtimeRecreated: boolean;
}

interface Settings {
  minutes: number;
  baseDir: string;
  out: string;
  entries: SuiteEntry[];
  steps: number;
  checkpointEvery: number;
  batch: number;
  evalCount: number;
  verifyEvery: number;
  seed: number;
}

function usage(message: string): never {
  console.error(`bench:soak: ${message}`);
  process.exit(2);
}

function intFlag(name: string, raw: string, min: number): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) usage(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  return v;
}

/** A suite row by label ('topk-snip') or by strategy name ('topk': its first row). */
function suiteEntry(name: string): SuiteEntry {
  const e = BENCH_SUITE.find((r) => r.label === name) ?? BENCH_SUITE.find((r) => r.config.strategy === name);
  if (!e) usage(`--strategies: no suite row or strategy '${name}'; known labels: ${BENCH_SUITE.map((r) => r.label).join(', ')}`);
  return e;
}

function parseSettings(): Settings {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: {
      minutes: { type: 'string', default: '30' },
      base: { type: 'string' },
      out: { type: 'string', default: 'bench-results' },
      strategies: { type: 'string', default: DEFAULT_STRATEGIES },
      steps: { type: 'string', default: '40' },
      'checkpoint-every': { type: 'string', default: '10' },
      batch: { type: 'string', default: '8' },
      eval: { type: 'string', default: '20' },
      'verify-every': { type: 'string', default: '3' },
      seed: { type: 'string', default: '0' },
    },
  });
  const minutes = Number(values.minutes);
  if (!(minutes > 0 && Number.isFinite(minutes))) usage(`--minutes must be a number > 0, got ${JSON.stringify(values.minutes)}`);
  const steps = intFlag('steps', values.steps, 2);
  const checkpointEvery = intFlag('checkpoint-every', values['checkpoint-every'], 1);
  if (checkpointEvery >= steps) usage(`--checkpoint-every ${checkpointEvery} must be below --steps ${steps}, or no interrupt can land after a checkpoint`);
  return {
    minutes,
    baseDir: resolve(values.base ?? bundledBasePath()),
    out: resolve(values.out),
    entries: values.strategies.split(',').filter(Boolean).map(suiteEntry),
    steps,
    checkpointEvery,
    batch: intFlag('batch', values.batch, 1),
    evalCount: intFlag('eval', values.eval, 1),
    verifyEvery: intFlag('verify-every', values['verify-every'], 1),
    seed: intFlag('seed', values.seed, 0),
  };
}

async function sample(rt: Runtime): Promise<MemorySample> {
  if (!rt.lost) await rt.sync(); // frees are deferred to the submit that last used a buffer
  const s = rt.lost ? { liveBuffers: NaN, liveBytes: NaN, pooledBytes: NaN } : rt.stats();
  const m = process.memoryUsage();
  return { liveBuffers: s.liveBuffers, liveBytes: s.liveBytes, pooledBytes: s.pooledBytes, rssBytes: m.rss, heapUsedBytes: m.heapUsed };
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir)) total += (await stat(join(dir, f))).size;
  return total;
}

/** The first difference between the resumed and the uninterrupted run, or null (Object.is: bit for bit, NaN included). */
function firstDifference(resumed: TuneResult, reference: TuneResult): { field: string; resumed: unknown; reference: unknown } | null {
  const a = resumed.lossCurve;
  const b = reference.lossCurve;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || x[0] !== y[0] || !Object.is(x[1], y[1])) return { field: `lossCurve[${i}]`, resumed: x ?? null, reference: y ?? null };
  }
  for (const k of ['T', 'U'] as const) if (!Object.is(resumed.final[k], reference.final[k])) return { field: `final.${k}`, resumed: resumed.final[k], reference: reference.final[k] };
  return null;
}

class SoakRunner {
  readonly segments: Segment[] = [];
  private readonly started = Date.now();

  constructor(
    private rt: Runtime,
    private readonly s: Settings,
    private readonly workDir: string,
  ) {}

  private options(entry: SuiteEntry, seed: number): TuneOptions {
    const s = this.s;
    return { config: entry.config, task: 'mnist', steps: s.steps, batchSize: s.batch, lr: entry.lr, seed, evalCount: s.evalCount, evalEvery: 0, progressEvery: 1, tag: { base: s.baseDir } };
  }

  /** One phase on a fresh load of the base model; the model is disposed whatever happens, the handle by the caller. */
  private async phase<T>(run: (loaded: LoadedModel) => Promise<T>): Promise<T> {
    const loaded = await loadCheckpoint(this.rt, this.s.baseDir);
    try {
      return await run(loaded);
    } finally {
      loaded.model.dispose();
    }
  }

  async segment(index: number): Promise<Segment> {
    const s = this.s;
    const entry = s.entries[index % s.entries.length]!;
    const seed = s.seed + index;
    const rand = seededRandom((Math.imul(s.seed, 0x9e3779b1) + index) >>> 0);
    const interruptAt = 1 + Math.floor(rand() * (s.steps - 1)); // 1 … steps-1: always a part left to resume
    const before = await sample(this.rt);
    const seg: Segment = {
      index, label: entry.label, strategy: entry.config.strategy, seed, interruptAt, resumedFrom: null, checkpointsWritten: 0, checkpointBytes: 0,
      stepsDone: 0, wallSec: 0, trainSecPerStep: null, before, after: before, peakBytes: 0, finalLoss: null, exact: null, error: null, runtimeRecreated: false,
    };
    const t0 = performance.now();
    const ckDir = join(this.workDir, `segment-${index}`);
    const options = this.options(entry, seed);
    let phase: Phase = 'interrupt';
    const peak = () => (seg.peakBytes = Math.max(seg.peakBytes, this.rt.stats().peakLiveBytes));
    try {
      // interrupt: abort after step interruptAt (tune checks the signal after the step's checkpoint)
      let lastWritten = 0;
      const stop = new AbortController();
      await this.phase(async ({ model, tokenizer }) => {
        this.rt.resetPeak();
        try {
          const r = await tune(model, tokenizer, {
            ...options,
            checkpointEvery: s.checkpointEvery,
            onCheckpoint: async (c: TuneCheckpoint) => {
              await writeCheckpoint(ckDir, c);
              lastWritten = c.step;
              seg.checkpointsWritten++;
            },
            onProgress: (p) => {
              seg.stepsDone++;
              if (p.step === interruptAt) stop.abort(new Error(`soak interrupt at step ${interruptAt}`));
            },
            signal: stop.signal,
          });
          r.handle.dispose();
          throw new Error(`the run finished all ${s.steps} steps although it was aborted after step ${interruptAt}`);
        } catch (e) {
          if (!(e instanceof TuneAbortedError)) throw e;
          if (e.step !== interruptAt) throw new Error(`aborted after step ${e.step}, expected ${interruptAt}`);
        } finally {
          peak();
        }
      });

      phase = 'resume';
      const latest = await latestCheckpoint(ckDir);
      let checkpoint: TuneCheckpoint | null = null;
      if (latest) {
        checkpoint = await readCheckpoint(ckDir);
        if (checkpoint.step !== lastWritten) throw new Error(`${ckDir}/latest names step ${checkpoint.step}, but the last checkpoint written was step ${lastWritten}`);
        seg.checkpointBytes = await dirBytes(latest);
      } else if (lastWritten > 0) throw new Error(`${ckDir} has no latest although a step-${lastWritten} checkpoint was written`);
      seg.resumedFrom = checkpoint?.step ?? 0;
      const resumed = await this.phase(async ({ model, tokenizer }) => {
        const r = await tune(model, tokenizer, { ...options, ...(checkpoint ? { resume: checkpoint } : {}), onProgress: () => seg.stepsDone++ });
        peak();
        r.handle.dispose();
        return r;
      });
      seg.finalLoss = resumed.lossCurve.at(-1)?.[1] ?? null;
      seg.trainSecPerStep = resumed.row.sec_per_step;

      if (Math.floor(index / s.entries.length) % s.verifyEvery === 0) {
        phase = 'reference';
        const reference = await this.phase(async ({ model, tokenizer }) => {
          const r = await tune(model, tokenizer, { ...options, base: resumed.base, onProgress: () => seg.stepsDone++ });
          peak();
          r.handle.dispose();
          return r;
        });
        const d = firstDifference(resumed, reference);
        seg.exact = d ? { equal: false, ...d } : { equal: true };
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      seg.error = { phase, name: err.name, message: err.message };
    } finally {
      await rm(ckDir, { recursive: true, force: true }).catch(() => undefined);
    }
    if (this.rt.lost) {
      // a lost device fails every later segment; a new runtime keeps the soak going (and is recorded)
      this.rt = await Runtime.create();
      seg.runtimeRecreated = true;
    }
    seg.after = await sample(this.rt);
    seg.wallSec = (performance.now() - t0) / 1000;
    return seg;
  }

  elapsedSec(): number {
    return (Date.now() - this.started) / 1000;
  }

  get runtime(): Runtime {
    return this.rt;
  }
}

function summarize(s: Settings, segments: readonly Segment[], elapsedSec: number, stoppedBy: string) {
  const ok = segments.filter((g) => !g.error);
  const checks = segments.filter((g) => g.exact);
  const first = segments[0];
  const last = segments.at(-1);
  const steps = segments.reduce((a, g) => a + g.stepsDone, 0);
  const wall = segments.reduce((a, g) => a + g.wallSec, 0);
  return {
    stoppedBy,
    elapsedSec,
    segments: segments.length,
    failedSegments: segments.length - ok.length,
    resumes: segments.filter((g) => (g.resumedFrom ?? 0) > 0).length,
    restarts: segments.filter((g) => g.resumedFrom === 0).length,
    totalSteps: steps,
    stepsPerSec: wall > 0 ? steps / wall : 0,
    exactPassed: checks.filter((g) => g.exact!.equal).length,
    exactFailed: checks.filter((g) => !g.exact!.equal).length,
    peakMB: Math.max(0, ...segments.map((g) => g.peakBytes)) * MB,
    // Samples are taken with everything of a segment disposed: live storage must come back to where
    // it started. The host's memory grows once in the first segment (pipelines compiled, the buffer
    // pool filled; on lavapipe device memory is host memory), so its drift counts from that segment's end.
    liveBuffersDrift: first && last ? last.after.liveBuffers - first.before.liveBuffers : 0,
    liveBytesDrift: first && last ? last.after.liveBytes - first.before.liveBytes : 0,
    rssWarmupMB: first ? (first.after.rssBytes - first.before.rssBytes) * MB : 0,
    rssDriftMB: first && last ? (last.after.rssBytes - first.after.rssBytes) * MB : 0,
    heapDriftMB: first && last ? (last.after.heapUsedBytes - first.after.heapUsedBytes) * MB : 0,
    pooledMB: last ? last.after.pooledBytes * MB : 0,
    settings: { ...s, entries: s.entries.map((e) => e.label) },
  };
}

function markdown(sum: ReturnType<typeof summarize>, segments: readonly Segment[]): string {
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const rows = [...new Set(segments.map((g) => g.label))].map((label) => {
    const gs = segments.filter((g) => g.label === label);
    const ps = gs.map((g) => g.trainSecPerStep).filter((x): x is number => x !== null);
    const checks = gs.filter((g) => g.exact);
    const peak = Math.max(0, ...gs.map((g) => g.peakBytes)) * MB;
    return `| ${label} | ${gs.length} | ${gs.filter((g) => g.error).length} | ${gs.reduce((a, g) => a + g.stepsDone, 0)} | ${ps.length ? f((1000 * ps.reduce((a, x) => a + x, 0)) / ps.length, 0) : 'n/a'} | ${f(peak)} | ${checks.filter((g) => g.exact!.equal).length}/${checks.length} |`;
  });
  const errors = segments.filter((g) => g.error).map((g) => `- segment ${g.index} (${g.label}, ${g.error!.phase}): ${g.error!.name}: ${g.error!.message}`);
  const drift = segments.filter((g) => g.exact && !g.exact.equal).map((g) => `- segment ${g.index} (${g.label}): ${JSON.stringify(g.exact)}`);
  return [
    `# soak — ${f(sum.elapsedSec / 60)} min, stopped by ${sum.stoppedBy}`,
    '',
    `| total steps | segments (failed) | resumes / restarts | exact checks passed / failed | live buffers / bytes drift | rss warm-up / drift MB | pooled MB | peak MB | steps/s (wall) |`,
    `|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
    `| ${sum.totalSteps} | ${sum.segments} (${sum.failedSegments}) | ${sum.resumes} / ${sum.restarts} | ${sum.exactPassed} / ${sum.exactFailed} | ${sum.liveBuffersDrift} / ${sum.liveBytesDrift} | ${f(sum.rssWarmupMB)} / ${f(sum.rssDriftMB)} | ${f(sum.pooledMB)} | ${f(sum.peakMB)} | ${f(sum.stepsPerSec, 2)} |`,
    '',
    '| strategy | segments | failed | steps | train ms/step | peak MB | exact |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    ...(drift.length ? ['', '## drift', ...drift] : []),
    ...(errors.length ? ['', '## errors', ...errors] : []),
  ].join('\n');
}

/** Written through a temporary file and a rename, so a kill leaves the previous complete file. */
function writeResults(s: Settings, runner: SoakRunner, stoppedBy: string): string {
  const summary = summarize(s, runner.segments, runner.elapsedSec(), stoppedBy);
  const rt = runner.runtime;
  const device = `${rt.info.adapter.description || rt.info.adapter.architecture} (${rt.info.adapter.vendor})`;
  mkdirSync(s.out, { recursive: true });
  const file = join(s.out, 'soak.json');
  writeFileSync(`${file}.tmp`, JSON.stringify({ device, date: new Date().toISOString(), summary, segments: runner.segments }, null, 2));
  renameSync(`${file}.tmp`, file);
  return markdown(summary, runner.segments);
}

async function main(): Promise<void> {
  const s = parseSettings();
  // a bad row or --base fails here, once, not in every segment
  for (const e of s.entries) {
    try {
      tuneRunIdentity({ config: e.config, task: 'mnist', steps: s.steps, batchSize: s.batch, lr: e.lr });
    } catch (err) {
      usage(`suite row '${e.label}' (packages/tuning/src/protocol/suite.ts) does not make a run: ${(err as Error).message}`);
    }
  }
  const rt = await Runtime.create();
  (await loadCheckpoint(rt, s.baseDir)).model.dispose();
  const workDir = await mkdtemp(join(tmpdir(), 'keel-soak-'));
  const runner = new SoakRunner(rt, s, workDir);
  process.on('SIGINT', () => {
    console.log(`\n${writeResults(s, runner, 'SIGINT')}\nwrote ${join(s.out, 'soak.json')}`);
    rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  });
  console.log(`soak: ${s.minutes} min of ${s.entries.map((e) => e.label).join(', ')} on mnist, ${s.steps} steps/run, checkpoint every ${s.checkpointEvery}, exact check every ${s.verifyEvery} segment(s) of each`);
  writeResults(s, runner, 'starting'); // an --out that cannot be written fails now, not after the first segment
  const deadline = Date.now() + s.minutes * 60_000;
  let stoppedBy = 'time budget';
  let failedInARow = 0;
  for (let i = 0; Date.now() < deadline; i++) {
    const g = await runner.segment(i);
    runner.segments.push(g);
    console.log(
      `segment ${i} ${g.label}: ${g.stepsDone} steps, ${g.wallSec.toFixed(1)} s, interrupt@${g.interruptAt} resume@${g.resumedFrom ?? '-'}, ` +
        `loss ${g.finalLoss?.toFixed(4) ?? 'n/a'}, live ${g.before.liveBuffers}→${g.after.liveBuffers} bufs, peak ${(g.peakBytes * MB).toFixed(1)} MB` +
        `${g.exact ? (g.exact.equal ? ', exact ✓' : `, DRIFT at ${g.exact.field}`) : ''}${g.error ? `, ERROR (${g.error.phase}): ${g.error.message}` : ''}`,
    );
    writeResults(s, runner, 'in progress');
    failedInARow = g.error ? failedInARow + 1 : 0;
    // every strategy failing twice in a row is not a soak any more, just the same error on a loop
    if (failedInARow >= 2 * s.entries.length) {
      stoppedBy = `${failedInARow} failed segments in a row`;
      break;
    }
  }
  console.log(`\n${writeResults(s, runner, stoppedBy)}\nwrote ${join(s.out, 'soak.json')}`);
  await rm(workDir, { recursive: true, force: true });
  runner.runtime.destroy();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
