/**
 * Linear probe: how well a softmax regression reads, token by token, the shape and the colour of the
 * object under each image token (the connector's output) or, with `--patches`, each patch of the
 * vision tower. Fitted on two-object scenes of the training split, scored on held-out ones; a
 * token's label is the object under its centre (data/scene-parse.ts), and only object tokens are
 * scored. Chance is about 1/3 for shape and 1/6 for colour.
 *
 *   node --conditions=source --import tsx scripts/diagnostics/token-probe.ts DIR [--patches] [scenes=800]
 */
import { getRuntime } from '@keel/kernels';
import { loadModel, parseScene, parseTargets, patchTensor, Rng, sceneImage, type Split } from '@keel/mllm';
import { fitProbe, probePredict } from './softmax-regression.js';

const args = process.argv.slice(2);
const patches = args.includes('--patches');
const [dir, scenes = '800'] = args.filter((a) => a !== '--patches');
if (!dir) throw new Error('usage: token-probe.ts DIR [--patches] [scenes]');
const rt = await getRuntime();
const { model } = await loadModel(rt, dir);
const size = model.config.vision.imageSize;
const P = patches ? (size / model.config.vision.patchSize) ** 2 : model.imageTokens;
const cell = size / Math.sqrt(P);

/** Features (rows × W) and the shape/colour label of each row (0 = background). */
async function features(split: Split, n: number, seed: number) {
  const rng = new Rng(seed);
  const two = Array.from({ length: n }, () => parseScene(rng, split)).filter((s) => s.objects.length === 2);
  const images = new Float32Array(two.length * 3 * size * size);
  two.forEach((s, i) => images.set(sceneImage(s, size), i * 3 * size * size));
  const t = patches ? model.vision_tower.forward(patchTensor(rt, images, two.length, model.config)) : model.encodeImages(images, two.length);
  const x = (await t.toArray()) as Float32Array;
  t.dispose();
  const labels = { shape: [] as number[], color: [] as number[] };
  for (const s of two) {
    const p = parseTargets(s, size, cell);
    labels.shape.push(...p.shape);
    labels.color.push(...p.color);
  }
  return { x, W: x.length / (two.length * P), rows: two.length * P, labels };
}

function accuracy(w: Float64Array, f: Awaited<ReturnType<typeof features>>, y: number[], K: number): string {
  let right = 0;
  let n = 0;
  for (let r = 0; r < f.rows; r++) {
    if (y[r] === 0) continue;
    right += probePredict(w, f, r, K) === y[r] ? 1 : 0;
    n++;
  }
  return `${((100 * right) / n).toFixed(1)} % of ${n} object ${patches ? 'patches' : 'tokens'}`;
}

const train = await features('train', Number(scenes), 1);
const test = await features('test', Number(scenes), 2);
for (const [head, K] of [['shape', 4], ['color', 7]] as const) {
  const w = fitProbe(train, train.labels[head], K, { steps: 300, lr: 0.05 });
  console.log(`${head}: train ${accuracy(w, train, train.labels[head], K)}, held-out ${accuracy(w, test, test.labels[head], K)}`);
}
rt.destroy();
