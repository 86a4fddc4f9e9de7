/**
 * Optimizer steps over 4M parameters in 64 tensors, one multi-tensor dispatch per step:
 *   adamw_4M               plain AdamW: reads W, g, m, v, writes W, m, v = 28 B per parameter
 *   masked_adamw_4M        + a hard bit mask (50 % random bits): + 1/8 B per parameter
 *   masked_adamw_spider_4M + SPIDER's W0 + c ⊙ (W − W0): + 8 B per parameter (W0 and c reads)
 * Peer: TF.js `tf.train.adam(lr).applyGradients` on the same 64 tensors (plain Adam; it has no
 * decoupled decay, masks or multi-tensor apply). Validation runs one step from the initial state and
 * compares every W, m, v with the float64 reference in packages/kernels/src/ops/adamw.reference.ts.
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { maskedAdamW, type AdamWMask } from '../packages/kernels/src/ops/adamw.js';
import { adamwReference, type AdamWReferenceMask } from '../packages/kernels/src/ops/adamw.reference.js';
import { createSegmentTable, releaseSegments, type SegmentTable } from '../packages/kernels/src/ops/segments.js';
import type { BenchCase } from './harness.js';
import { tfSync, type Tf } from './peer.js';

const TENSORS = 64;
// ~65536 each, odd tails so every tensor ends inside a vec4 or a padded slot
const LENGTHS = Array.from({ length: TENSORS }, (_, t) => 65536 + ((t * 37) % 61) - 30);
const PARAMS = LENGTHS.reduce((a, b) => a + b, 0);
const LR = 1e-3;

type Mode = AdamWMask['mode'];

/** Deterministic pseudo-random arena (LCG; cheap for 4M values), zero padding. */
function arena(table: SegmentTable, seed: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(table.arenaLength);
  let s = seed >>> 0;
  table.offsets.forEach((off, t) => {
    for (let i = off; i < off + table.lengths[t]!; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = lo + ((hi - lo) * s) / 2 ** 32;
    }
  });
  return a;
}

async function setupAdamW(rt: Runtime, mode: Mode) {
  const table = createSegmentTable(rt, LENGTHS);
  const host = {
    w: arena(table, 1, -1, 1),
    g: arena(table, 2, -0.1, 0.1),
    m: arena(table, 3, -0.01, 0.01),
    v: arena(table, 4, 0, 1e-4),
  };
  const hyperHost = Float32Array.from({ length: 2 * TENSORS }, (_, i) => (i % 2 === 0 ? LR : 0.01));
  const bufs = { params: rt.upload(host.w), grads: rt.upload(host.g), m: rt.upload(host.m), v: rt.upload(host.v) };
  const hyper = rt.upload(hyperHost);
  const extra: GpuBuffer[] = [];
  let mask: AdamWMask = { mode: 'none' };
  let refMask: AdamWReferenceMask = { mode: 'none' };
  if (mode === 'bits') {
    // an integer hash per word: ~50 % of the bits set, scattered
    const bits = Uint32Array.from({ length: Math.ceil(table.arenaLength / 32) }, (_, i) => Math.imul(i + 1, 2654435761) ^ (i << 7));
    const b = rt.upload(bits);
    extra.push(b);
    mask = { mode: 'bits', bits: b };
    refMask = { mode: 'bits', bits };
  } else if (mode === 'spider') {
    const w0 = host.w.slice();
    const c = arena(table, 6, 0, 1);
    const [bw0, bc] = [rt.upload(w0), rt.upload(c)];
    extra.push(bw0, bc);
    mask = { mode: 'spider', w0: bw0, c: bc };
    refMask = { mode: 'spider', w0, c };
  }
  let step = 1;
  const run = () => maskedAdamW(rt, bufs, table, hyper, { step: step++, mask });
  return {
    run,
    async validate() {
      run();
      const ref = { w: Float64Array.from(host.w), m: Float64Array.from(host.m), v: Float64Array.from(host.v) };
      adamwReference(ref, host.g, table, hyperHost, { step: 1, mask: refMask });
      const got = { w: await rt.readF32(bufs.params), m: await rt.readF32(bufs.m), v: await rt.readF32(bufs.v) };
      for (const k of ['w', 'm', 'v'] as const) {
        for (let i = 0; i < table.arenaLength; i++) {
          const e = ref[k][i]!;
          if (!(Math.abs(got[k][i]! - e) <= 1e-6 + 1e-5 * Math.abs(e))) {
            throw new Error(`adamw (${mode}): ${k}[${i}] = ${got[k][i]}, expected ${e}`);
          }
        }
      }
    },
    dispose() {
      for (const b of [...Object.values(bufs), hyper, ...extra]) rt.release(b);
      releaseSegments(rt, table);
    },
  };
}

/** TF.js Adam on the same 64 tensors; with `spider`, followed by W ← W0 + c ⊙ (W − W0) per tensor. */
async function tfAdamPeer(tf: Tf, spider = false) {
  const vars = LENGTHS.map((n, t) => tf.variable(tf.randomUniform([n], -1, 1), true, `w${t}`));
  const grads = LENGTHS.map((n, t) => ({ name: `w${t}`, tensor: tf.randomUniform([n], -0.1, 0.1) }));
  const soft = spider ? LENGTHS.map((n) => ({ w0: tf.randomUniform([n], -1, 1), c: tf.randomUniform([n], 0, 1) })) : [];
  const opt = tf.train.adam(LR);
  return {
    async run() {
      opt.applyGradients(grads);
      if (spider) tf.tidy(() => vars.forEach((v, t) => v.assign(tf.add(soft[t]!.w0, tf.mul(soft[t]!.c, tf.sub(v, soft[t]!.w0))))));
      await tfSync(tf);
    },
    dispose() {
      opt.dispose();
      for (const v of vars) v.dispose();
      for (const g of grads) g.tensor.dispose();
      for (const { w0, c } of soft) tf.dispose([w0, c]);
    },
  };
}

export const cases: BenchCase[] = [
  { name: 'adamw_4M', bytes: 28 * PARAMS, setup: (rt) => setupAdamW(rt, 'none'), peer: (tf) => tfAdamPeer(tf), maxTime: 2 },
  // no TF.js peer: Adam restricted to a bit mask has no single-op equivalent there
  { name: 'masked_adamw_4M', bytes: 28 * PARAMS + PARAMS / 8, setup: (rt) => setupAdamW(rt, 'bits'), maxTime: 2 },
  {
    name: 'masked_adamw_spider_4M',
    bytes: 36 * PARAMS,
    setup: (rt) => setupAdamW(rt, 'spider'),
    peer: (tf) => tfAdamPeer(tf, true),
    maxTime: 2,
  },
];
