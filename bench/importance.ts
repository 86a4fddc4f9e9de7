/**
 * Fused importance kernels over a 4M-parameter model (64 tensors of 65536 in one arena per quantity):
 * one SPIDER step and one SNIP scoring pass. Bytes count every arena element read or written by each
 * pass (a value read twice by two passes counts twice) plus the chunk/segment tables and partials.
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { importanceScores, spiderInit, spiderStep } from '../packages/kernels/src/ops/importance.js';
import { importanceScoresRef, spiderRankRef, spiderStepRef } from '../packages/kernels/src/ops/importance.reference.js';
import { createSegmentTable, releaseSegments, segmentLayout, type SegmentLayout } from '../packages/kernels/src/ops/segments.js';
import type { BenchCase } from './harness.js';

const LENGTHS = Array.from({ length: 64 }, () => 65536);
const LAYOUT = segmentLayout(LENGTHS);
const N = LAYOUT.arenaLength;
const C = LAYOUT.chunkCount;
const T = LENGTHS.length;

/** Seeded values in [lo, hi) (a small LCG: the bench must not depend on test helpers). */
function values(n: number, seed: number, lo: number, hi: number): Float32Array {
  let a = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * a) / 2 ** 32;
  });
}

/** Largest |a − b| over tensor elements, skipping those where `skip(i)`. */
function maxErr(a: ArrayLike<number>, b: ArrayLike<number>, layout: SegmentLayout, skip: (i: number) => boolean = () => false): number {
  let worst = 0;
  layout.lengths.forEach((n, t) => {
    for (let i = layout.offsets[t]!; i < layout.offsets[t]! + n; i++) {
      if (skip(i)) continue;
      const e = Math.abs(a[i]! - b[i]!);
      if (!(e <= worst)) worst = e; // NaN propagates
    }
  });
  return worst;
}

// Small traffic of a chunk pass: chunk-table entry + segment entry (+ per-tensor stats) per workgroup.
const TABLE_BYTES = C * (8 + 8 + 8);

export const cases: BenchCase[] = [
  {
    name: 'importance_spider_4M',
    // pass 1: g read, S read + write, partials written; fold: partials read, stats written
    // pass 2: S read, O read, c written, partials written; fold again; pass 3: c read + written
    bytes: 4 * N * (3 + 3 + 2) + 3 * TABLE_BYTES + 2 * (2 * C * 8 + T * 8),
    async setup(rt: Runtime) {
      const table = createSegmentTable(rt, LENGTHS);
      const w0 = values(N, 1, -0.05, 0.05);
      const g = values(N, 2, -1e-3, 1e-3);
      const s0 = values(N, 3, -1e-2, 1e-2);
      const gb = rt.upload(g);
      const sb = rt.upload(s0);
      const cb = rt.createBuffer(N * 4);
      const w0b = rt.upload(w0);
      const o = spiderInit(rt, { w0: w0b, table });
      const run = () => spiderStep(rt, { g: gb, s: sb, o, c: cb, table });
      const bufs: GpuBuffer[] = [gb, sb, cb, w0b, o];
      return {
        run,
        async validate() {
          const oGot = await rt.readF32(o);
          const oRef = spiderRankRef(w0, LAYOUT);
          const eO = maxErr(oGot, oRef, LAYOUT);
          if (!(eO < 2e-5)) throw new Error(`importance_spider_4M: O differs by ${eO}`);
          run();
          const s = Float64Array.from(s0);
          const c = new Float64Array(N);
          const { grank } = spiderStepRef(g, s, oRef, c, LAYOUT);
          const eS = maxErr(await rt.readF32(sb), s, LAYOUT);
          // entries with G ≈ O can fall either side of G > O in f32
          const eC = maxErr(await rt.readF32(cb), c, LAYOUT, (i) => Math.abs(grank[i]! - oRef[i]!) < 1e-4);
          if (!(eS < 1e-7 && eC < 1e-4)) throw new Error(`importance_spider_4M: S differs by ${eS}, c by ${eC}`);
        },
        dispose() {
          bufs.forEach((b) => rt.release(b));
          releaseSegments(rt, table);
        },
      };
    },
  },
  {
    name: 'importance_snip_4M',
    // W read, g read, score written
    bytes: 4 * N * 3 + 2 * C * 8,
    async setup(rt: Runtime) {
      const table = createSegmentTable(rt, LENGTHS);
      const w = values(N, 4, -0.05, 0.05);
      const g = values(N, 5, -1e-3, 1e-3);
      const wb = rt.upload(w);
      const gb = rt.upload(g);
      const out = rt.createBuffer(N * 4);
      const run = () => void importanceScores(rt, { mode: 'snip', w: wb, g: gb, out, table });
      return {
        run,
        async validate() {
          run();
          const want = importanceScoresRef('snip', { w, g, out: new Float64Array(N) }, LAYOUT);
          const e = maxErr(await rt.readF32(out), want, LAYOUT);
          if (!(e < 1e-10)) throw new Error(`importance_snip_4M: scores differ by ${e}`);
        },
        dispose() {
          [wb, gb, out].forEach((b) => rt.release(b));
          releaseSegments(rt, table);
        },
      };
    },
  },
];
