/**
 * Held-out VQA accuracy of a model directory split by question type × number of objects in the
 * scene, and for presence questions by case (yes; "no-hard": the asked shape is there in another
 * colour; "no-easy": the shape is absent). One-object questions can be answered by reading the
 * whole image; two-object colour/shape/size questions need the object found by one attribute and
 * another read off it (binding), which is what this separates.
 *
 *   node --conditions=source --import tsx scripts/diagnostics/vqa-by-objects.ts DIR [count=600] [split=test] [seed=0]
 */
import { getRuntime } from '@keel/kernels';
import { evaluateExamples, loadModel, sceneImage, WORLD_GENERATORS, type Split } from '@keel/mllm';

const [dir, count = '600', split = 'test', seed = '0'] = process.argv.slice(2);
if (!dir) throw new Error('usage: vqa-by-objects.ts DIR [count] [split] [seed]');
const rt = await getRuntime();
const { model, tokenizer } = await loadModel(rt, dir);
const samples = WORLD_GENERATORS.vqa(split as Split, Number(count), Number(seed));
const size = model.config.vision.imageSize;
const r = await evaluateExamples(
  model,
  tokenizer,
  samples.map((s) => ({ image: sceneImage(s.scene, size), prompt: s.prompt, answer: s.answer })),
);
const buckets = new Map<string, [number, number]>();
samples.forEach((s, i) => {
  let key = `${s.kind} ${s.scene.objects.length} obj`;
  if (s.kind === 'exist') {
    const shape = s.prompt.split(' ')[4];
    key += s.answer === 'yes' ? ' yes' : s.scene.objects.some((o) => o.shape === shape) ? ' no-hard' : ' no-easy';
  }
  const b = buckets.get(key) ?? [0, 0];
  b[0] += r.correct[i] ? 1 : 0;
  b[1]++;
  buckets.set(key, b);
});
for (const [k, [right, n]] of [...buckets].sort()) console.log(`${k.padEnd(22)} ${`${right}/${n}`.padStart(7)}  ${((100 * right) / n).toFixed(1)} %`);
console.log(`all ${(100 * r.accuracy).toFixed(1)} %`);
rt.destroy();
