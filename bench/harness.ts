/**
 * The kernel-benchmark harness. Each kernel family is one file exporting `cases: BenchCase[]`;
 * bench/kernels.ts lists the families explicitly and runs them here.
 *
 * Every case is validated against its CPU reference before it is timed (a wrong kernel has no
 * speed). Timing uses benchmark.js in deferred mode: one sample = record the GPU work, submit, and
 * wait for the queue (`rt.sync()`), so dispatch and submit overhead is part of the number, as it is
 * for a real training step. The peer (TF.js's WebGPU backend) runs on the same Dawn GPU object in the
 * same process and is timed the same way.
 */
import Benchmark from 'benchmark';
import type { KeelFeature, Runtime } from '@keel/kernels';

export interface BenchInstance {
  /** Records the GPU work of one iteration (no waiting). */
  run(): void;
  /** Runs once, reads back, compares with the CPU reference; throws on mismatch. */
  validate(): Promise<void>;
  /** Releases GPU buffers. */
  dispose(): void;
}

export interface PeerInstance {
  /** One iteration of the peer op, awaited to completion on the GPU. */
  run(): Promise<void>;
  dispose(): void;
}

export interface BenchCase {
  /** Stable name, e.g. 'matmul_1024' (the JSON report's key). */
  name: string;
  /** Bytes read + written by one iteration (for GB/s). */
  bytes?: number;
  /** Floating-point operations of one iteration (for GFLOP/s). */
  flops?: number;
  setup(rt: Runtime): Promise<BenchInstance>;
  /** The same op in TF.js, if it has one. */
  peer?(tf: typeof import('@tensorflow/tfjs-core')): Promise<PeerInstance>;
  /** Device features the case needs; the runner skips it (and says so) where they are missing. */
  requires?: readonly KeelFeature[];
  /** Minimum seconds of timing (benchmark.js maxTime); big cases use less. */
  maxTime?: number;
  /**
   * Time the peer with this many plain runs (no warm-up, no benchmark.js sampling) — for peers so
   * slow (TF.js topk: ~25 s) that statistical sampling would take minutes. Pipeline compilation is
   * then included in the peer's number, which favours keel by at most a few ms.
   */
  peerRuns?: number;
}

export interface BenchResult {
  name: string;
  ms: number;
  rme: number;
  samples: number;
  gbps?: number;
  gflops?: number;
  peer_ms?: number;
  roof_gbps?: number;
}

/** Mean milliseconds per iteration of an async function, measured by benchmark.js. */
export function timeAsync(name: string, fn: () => Promise<void>, maxTime = 3): Promise<{ ms: number; rme: number; samples: number }> {
  return new Promise((resolve, reject) => {
    const bench = new Benchmark(name, {
      defer: true,
      async: true,
      maxTime,
      minSamples: 5,
      initCount: 1,
      fn(deferred: { resolve(): void }) {
        fn().then(
          () => deferred.resolve(),
          (e: unknown) => {
            reject(e);
            deferred.resolve();
          },
        );
      },
    });
    bench.on('complete', () => {
      if (bench.error) reject(bench.error);
      else resolve({ ms: bench.stats.mean * 1000, rme: bench.stats.rme, samples: bench.stats.sample.length });
    });
    bench.on('error', () => reject(bench.error));
    bench.run({ async: true });
  });
}

export async function runCase(
  rt: Runtime,
  c: BenchCase,
  tf: typeof import('@tensorflow/tfjs-core') | null,
  roofGbps: number | undefined,
): Promise<BenchResult> {
  const inst = await c.setup(rt);
  try {
    await inst.validate();
    const t = await timeAsync(c.name, async () => {
      inst.run();
      await rt.sync();
    }, c.maxTime);
    const r: BenchResult = { name: c.name, ms: t.ms, rme: t.rme, samples: t.samples };
    if (c.bytes !== undefined) {
      r.gbps = c.bytes / (t.ms * 1e6);
      if (roofGbps !== undefined) r.roof_gbps = roofGbps;
    }
    if (c.flops !== undefined) r.gflops = c.flops / (t.ms * 1e6);
    if (c.peer && tf) {
      const p = await c.peer(tf);
      try {
        if (c.peerRuns) {
          const t0 = performance.now();
          for (let i = 0; i < c.peerRuns; i++) await p.run();
          r.peer_ms = (performance.now() - t0) / c.peerRuns;
        } else {
          await p.run(); // warm-up: compiles the peer's pipelines
          r.peer_ms = (await timeAsync(`${c.name} (tfjs)`, () => p.run(), c.maxTime)).ms;
        }
      } finally {
        p.dispose();
      }
    }
    return r;
  } finally {
    inst.dispose();
  }
}

export function formatResult(r: BenchResult): string {
  const parts = [`${r.name.padEnd(28)} ${r.ms.toFixed(3).padStart(10)} ms ±${r.rme.toFixed(1)}%`];
  if (r.gflops !== undefined) parts.push(`${r.gflops.toFixed(2)} GFLOP/s`);
  if (r.gbps !== undefined) {
    parts.push(`${r.gbps.toFixed(2)} GB/s${r.roof_gbps ? ` (${((100 * r.gbps) / r.roof_gbps).toFixed(0)}% of copy roof)` : ''}`);
  }
  if (r.peer_ms !== undefined) parts.push(`tfjs ${r.peer_ms.toFixed(3)} ms → ${(r.peer_ms / r.ms).toFixed(1)}×`);
  return parts.join('  ');
}

/** The results as a markdown table (the one bench/README.md carries). */
export function markdownTable(results: readonly BenchResult[]): string {
  const f = (v: number | undefined, d: number) => (v === undefined ? '' : v.toFixed(d));
  const rows = results.map((r) => {
    const roof = r.gbps !== undefined && r.roof_gbps ? `${((100 * r.gbps) / r.roof_gbps).toFixed(0)} %` : '';
    const ratio = r.peer_ms !== undefined ? `${(r.peer_ms / r.ms).toFixed(1)}×` : '';
    return `| ${r.name} | ${f(r.ms, 2)} | ${f(r.gflops, 2)} | ${f(r.gbps, 2)} | ${roof} | ${f(r.peer_ms, 1)} | ${ratio} |`;
  });
  return [
    '| case | ms | GFLOP/s | GB/s | of copy roof | TF.js ms | keel speed-up |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}
