/**
 * Top-k threshold + mask (radix select on the bits of |x|): 4M scores at k = 5 % against TF.js
 * `tf.topk(|x|, k)` (a full sort on the GPU), and 16M at k = 1 % alone. One iteration reads the
 * scores about 3 times (a small sample, the bracket-and-compact pass which re-reads the elements up to
 * each thread's last candidate from cache, and the mask pass; the radix passes read only the
 * candidates) and writes N / 8 bytes of mask; `bytes` counts 3 reads of N. Validation checks the
 * threshold against a CPU sort, the exact count, and the tie rule (among |x| = threshold, the lowest
 * indices are selected).
 *
 * The peer sorts 4M values with many dispatches and is very slow on software Vulkan (~25 s), so it
 * is timed with a single plain run (`peerRuns: 1`).
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { topkThreshold } from '../packages/kernels/src/ops/topk.js';
import type { BenchCase } from './harness.js';
import { tfSync } from './peer.js';

/** Deterministic pseudo-random values in [-1, 1) with 24-bit resolution (so ties occur). */
function data(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 2;
  }
  return out;
}

/** Checks threshold and mask against the definition: the k largest |x|, ties by lowest index. */
function check(name: string, x: Float32Array, k: number, thr: number, mask: Uint32Array): void {
  const abs = Float32Array.from(x, Math.abs).sort();
  const want = abs[x.length - k]!;
  if (thr !== want) throw new Error(`${name}: threshold ${thr}, expected ${want}`);
  let above = 0;
  for (const v of abs) if (v > want) above++;
  let taken = 0;
  let tiesSeen = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    const sel = ((mask[i >>> 5]! >>> (i & 31)) & 1) === 1;
    const expected = a > want || (a === want && tiesSeen++ < k - above);
    if (sel !== expected) throw new Error(`${name}: element ${i} (|x| = ${a}) selected = ${sel}, expected ${expected}`);
    if (sel) taken++;
  }
  if (taken !== k) throw new Error(`${name}: ${taken} selected, expected ${k}`);
}

function topkCase(name: string, n: number, fraction: number, withPeer: boolean): BenchCase {
  const k = Math.ceil(fraction * n);
  const c: BenchCase = {
    name,
    bytes: 3 * n * 4 + n / 8,
    maxTime: 1,
    ...(withPeer ? { peerRuns: 1 } : {}),
    async setup(rt: Runtime) {
      const xs = data(n, 7);
      const x = rt.upload(xs);
      let out: { threshold: GpuBuffer; mask: GpuBuffer } | null = null;
      const release = () => {
        if (out) {
          rt.release(out.threshold);
          rt.release(out.mask);
        }
        out = null;
      };
      const run = () => {
        release();
        out = topkThreshold(rt, x, { fraction }, { mode: 'global' });
      };
      return {
        run,
        async validate() {
          run();
          const thr = (await rt.readF32(out!.threshold))[0]!;
          check(name, xs, k, thr, await rt.readU32(out!.mask));
        },
        dispose() {
          release();
          rt.release(x);
        },
      };
    },
  };
  if (withPeer) {
    c.peer = async (tf) => {
      const x = tf.tensor1d(data(n, 7));
      return {
        async run() {
          const a = tf.abs(x);
          const { values, indices } = tf.topk(a, k);
          await tfSync(tf);
          tf.dispose([a, values, indices]);
        },
        dispose: () => x.dispose(),
      };
    };
  }
  return c;
}

export const cases: BenchCase[] = [
  topkCase('topk_threshold_4M_5pct', 4 * 2 ** 20, 0.05, true),
  topkCase('topk_threshold_16M_1pct', 16 * 2 ** 20, 0.01, false),
];
