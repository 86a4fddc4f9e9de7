/**
 * The control for vqa-by-objects.ts: can a model's language model learn the same lookup when the
 * objects are words instead of image tokens? Trains a copy of DIR's weights (in memory; nothing is
 * written) on text-only prompts "a <c1> <s1> and a <c2> <s2> what color is the <s> ?" → <c> and
 * prints held-out accuracy every 50 steps (chance 50 % once it answers with one of the two colours).
 *
 *   node --conditions=source --import tsx scripts/diagnostics/text-binding.ts DIR [steps=300] [seed=1]
 */
import { AdamW } from '@keel/autograd';
import { getRuntime } from '@keel/kernels';
import { BASE_SHAPES, COLORS, decayGroups, evaluateExamples, loadModel, Rng, trainOnExamples } from '@keel/mllm';

const [dir, steps = '300', seed = '1'] = process.argv.slice(2);
if (!dir) throw new Error('usage: text-binding.ts DIR [steps] [seed]');
const rt = await getRuntime();
const { model, tokenizer } = await loadModel(rt, dir);
const rng = new Rng(Number(seed));
const example = () => {
  const [s1, s2] = rng.shuffle([...BASE_SHAPES]);
  const [c1, c2] = [rng.pick(COLORS), rng.pick(COLORS)];
  const first = rng.next() < 0.5;
  return { image: null, prompt: `a ${c1} ${s1} and a ${c2} ${s2} what color is the ${first ? s1 : s2} ?`, answer: first ? c1 : c2 };
};
const heldOut = Array.from({ length: 300 }, example);
const optimizer = new AdamW(rt, decayGroups(model.namedParameters(), 0.01), { lr: 1e-3, maxNorm: 1 });
for (let step = 0; step <= Number(steps); step++) {
  if (step % 50 === 0) console.log(`step ${step}: held-out ${(100 * (await evaluateExamples(model, tokenizer, heldOut)).accuracy).toFixed(1)} %`);
  if (step < Number(steps)) await trainOnExamples(model, tokenizer, optimizer, Array.from({ length: 32 }, example));
}
optimizer.dispose();
rt.destroy();
