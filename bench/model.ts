/**
 * Model-level benchmark of the bundled base model (packages/mllm/base): training throughput
 * (examples/s and tokens/s of forward + backward + AdamW on general-suite batches), generation
 * throughput (new tokens/s, batched greedy, with and without the KV cache) and the peak of live
 * GPU storage bytes from the runtime's own accounting for each phase.
 *
 *   pnpm bench:model [-- --steps N] [--batch B] [--model DIR] [--json FILE]
 *
 * Timings are wall-clock around work that ends in a readback (so the GPU is done); the first steps
 * of each phase compile pipelines and are excluded.
 * Non-goals: kernel-level numbers (bench/kernels.ts), the tuning-strategy table (keel bench).
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Runtime } from '@keel/kernels';
import { AdamW } from '@keel/autograd';
import { collate, generate, getTask, loadModel, toExample, trainStep } from '@keel/mllm';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const jsonPath = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : null;
const steps = flag('--steps', 10);
const batch = flag('--batch', 32);
const modelArg = process.argv.indexOf('--model');
const baseDir = modelArg >= 0 ? process.argv[modelArg + 1]! : fileURLToPath(new URL('../packages/mllm/base', import.meta.url));

const rt = await Runtime.create();
const { model, tokenizer } = await loadModel(rt, baseDir);
const size = model.config.vision.imageSize;
const examples = [
  ...(await getTask('vqa').samples('train', batch * 4, 1, { size })),
  ...(await getTask('caption').samples('train', batch * 4, 1, { size })),
].map(toExample);
const MB = 1 / (1 << 20);

// ---- training
const optimizer = new AdamW(rt, model, { lr: 1e-4 });
const batches = Array.from({ length: steps + 2 }, (_, i) => collate(examples.slice((i * batch) % (examples.length - batch), ((i * batch) % (examples.length - batch)) + batch), tokenizer, model.config));
for (const b of batches.slice(0, 2)) await trainStep(model, optimizer, b);
rt.resetPeak();
let tokens = 0;
let t0 = performance.now();
for (const b of batches.slice(2)) {
  await trainStep(model, optimizer, b);
  tokens += b.input.batch * b.input.length;
}
const trainSec = (performance.now() - t0) / 1000;
const train = { steps, batch, samples_per_s: (steps * batch) / trainSec, tokens_per_s: tokens / trainSec, ms_per_step: (1000 * trainSec) / steps, peak_mb: rt.stats().peakLiveBytes * MB };
optimizer.dispose();

// ---- generation
const prompts = (await getTask('vqa').samples('test', batch, 2, { size })).map((s) => ({ image: s.image, prompt: s.prompt }));
const gen: Record<string, { new_tokens_per_s: number; ms: number; peak_mb: number }> = {};
for (const useCache of [true, false]) {
  const o = { maxNewTokens: 8, stopTokens: [] as number[], useCache };
  await generate(model, tokenizer, prompts, { ...o, maxNewTokens: 2 });
  rt.resetPeak();
  t0 = performance.now();
  const out = await generate(model, tokenizer, prompts, o);
  const ms = performance.now() - t0;
  const n = out.reduce((a, g) => a + g.ids.length, 0);
  gen[useCache ? 'kv_cache' : 'no_cache'] = { new_tokens_per_s: (1000 * n) / ms, ms, peak_mb: rt.stats().peakLiveBytes * MB };
}

const device = `${rt.info.adapter.description || rt.info.adapter.architecture} (${rt.info.adapter.vendor})`;
const result = { device, date: new Date().toISOString().slice(0, 10), parameters: model.numParameters(), train, generate: gen };
console.log(`# model benchmark — ${device}, ${result.parameters.toLocaleString('en-US')} parameters`);
console.log(`| phase | throughput | ms | peak GPU MB |\n|---|---|---|---|`);
console.log(`| train (batch ${batch}) | ${train.samples_per_s.toFixed(1)} examples/s, ${train.tokens_per_s.toFixed(0)} tokens/s | ${train.ms_per_step.toFixed(0)} / step | ${train.peak_mb.toFixed(1)} |`);
for (const [k, g] of Object.entries(gen)) console.log(`| generate ${k} (batch ${batch}, 8 tokens) | ${g.new_tokens_per_s.toFixed(1)} new tokens/s | ${g.ms.toFixed(0)} | ${g.peak_mb.toFixed(1)} |`);
if (jsonPath) await writeFile(jsonPath, JSON.stringify(result, null, 2));
rt.destroy();
