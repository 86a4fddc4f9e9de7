/** `keel smoke`: one real GPU computation checked against the CPU, with its bandwidth. */
import { axpy, getRuntime } from '@keel/kernels';
import { type Command } from 'commander';
import { positiveInt } from './args.js';

export async function runSmoke(n: number): Promise<{ n: number; maxError: number; ms: number; gbps: number }> {
  const rt = await getRuntime();
  try {
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
    const bx = rt.upload(x);
    const by = rt.upload(y);
    axpy(rt, 0, bx, by); // compiles the pipeline outside the timed region; y is unchanged
    await rt.sync();
    const t0 = performance.now();
    axpy(rt, 2, bx, by);
    const out = await rt.readF32(by);
    const ms = performance.now() - t0;
    let maxError = 0;
    for (let i = 0; i < n; i++) maxError = Math.max(maxError, Math.abs(out[i]! - (2 * x[i]! + y[i]!)));
    rt.release(bx);
    rt.release(by);
    // axpy reads x and y and writes y; the readback copies y once more
    return { n, maxError, ms, gbps: (16 * n) / ms / 1e6 };
  } finally {
    rt.destroy();
  }
}

export function registerSmoke(program: Command): void {
  program
    .command('smoke')
    .description('run a small GPU computation (y = 2x + y) and check it against the CPU')
    .option('--n <count>', 'elements', (v) => positiveInt(v), 1 << 22)
    .option('--json', 'print the result as JSON')
    .action(async (opts: { n: number; json?: boolean }) => {
      const r = await runSmoke(opts.n);
      if (opts.json) console.log(JSON.stringify(r));
      else {
        console.log(
          `smoke: y = 2x + y over ${r.n.toLocaleString('en-US')} floats on the GPU: ` +
            `max |error| vs CPU ${r.maxError.toExponential(2)}, ${r.ms.toFixed(1)} ms incl. readback (${r.gbps.toFixed(2)} GB/s)`,
        );
      }
      if (r.maxError > 1e-5) throw new Error(`smoke: GPU result differs from the CPU by ${r.maxError}`);
    });
}
