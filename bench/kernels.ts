/**
 * `pnpm bench:kernels [-- --json FILE] [--filter REGEX] [--no-peer]`: every kernel family, validated
 * and timed, with the TF.js WebGPU peer and the copy roof side by side.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { getRuntime } from '@keel/kernels';
import * as attention from './attention.js';
import * as copy from './copy.js';
import * as elementwise from './elementwise.js';
import * as importance from './importance.js';
import * as matmul from './matmul.js';
import * as norm from './norm.js';
import * as optim from './optim.js';
import * as softmax from './softmax.js';
import * as topk from './topk.js';
import { formatResult, markdownTable, runCase, type BenchCase, type BenchResult } from './harness.js';
import { loadPeer, type Tf } from './peer.js';

// Families, registered explicitly (no filesystem discovery).
const families: { name: string; cases: BenchCase[] }[] = [
  { name: 'copy', cases: copy.cases },
  { name: 'elementwise', cases: elementwise.cases },
  { name: 'matmul', cases: matmul.cases },
  { name: 'softmax', cases: softmax.cases },
  { name: 'attention', cases: attention.cases },
  { name: 'norm', cases: norm.cases },
  { name: 'importance', cases: importance.cases },
  { name: 'optim', cases: optim.cases },
  { name: 'topk', cases: topk.cases },
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: {
      json: { type: 'string' },
      filter: { type: 'string' },
      'no-peer': { type: 'boolean', default: false },
    },
  });
  const filter = values.filter ? new RegExp(values.filter) : null;
  const rt = await getRuntime();
  const tf: Tf | null = values['no-peer'] ? null : await loadPeer();
  console.log(`device: ${rt.info.adapter.description || rt.info.adapter.device} (${rt.info.adapter.vendor}/${rt.info.adapter.architecture})`);

  const results: BenchResult[] = [];
  // The roof first: everything else is reported against it.
  const roof = await runCase(rt, copy.cases[0]!, null, undefined);
  results.push(roof);
  console.log(formatResult(roof));
  for (const fam of families) {
    for (const c of fam.cases) {
      if (c === copy.cases[0] || (filter && !filter.test(c.name))) continue;
      const missing = (c.requires ?? []).filter((f) => !rt.has(f));
      if (missing.length) {
        console.log(`${c.name.padEnd(28)} skipped: the device lacks ${missing.join(', ')}`);
        continue;
      }
      const r = await runCase(rt, c, tf, roof.gbps);
      results.push(r);
      console.log(formatResult(r));
    }
  }
  console.log(`\n${markdownTable(results)}`);
  if (values.json) {
    writeFileSync(values.json, JSON.stringify({ device: rt.info.adapter, date: new Date().toISOString(), results }, null, 2));
    console.log(`wrote ${values.json}`);
  }
  rt.destroy();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
