/**
 * Linear probe of *where* the one object of a scene is (left / right / top / bottom, the VQA
 * "where" question's answer) from all image tokens at once (the connector's output, flattened) or,
 * with `--patches`, from all of the vision tower's patches, or, with `--pooled`, from the mean of
 * the patches. Fitted on scenes of the training split, scored on held-out ones; chance is 25 %.
 * Concatenated patches always tell the position (which patch holds the object); their mean tells it
 * only where each patch's features carry their own position — what a resampler, whose queries see
 * patch features but not patch indices, has to read it from.
 *
 *   node --conditions=source --import tsx scripts/diagnostics/position-probe.ts DIR [--patches | --pooled] [scenes=600]
 */
import { getRuntime } from '@keel/kernels';
import { BASE_SHAPES, COLORS, loadModel, patchTensor, placeScene, POSITIONS, Rng, sceneImage, sceneSplit, SIZES, type Split } from '@keel/mllm';
import { fitProbe, probePredict } from './softmax-regression.js';

const args = process.argv.slice(2);
const pooled = args.includes('--pooled');
const patches = pooled || args.includes('--patches');
const [dir, scenes = '600'] = args.filter((a) => !a.startsWith('--'));
if (!dir) throw new Error('usage: position-probe.ts DIR [--patches | --pooled] [scenes]');
const rt = await getRuntime();
const { model } = await loadModel(rt, dir);
const size = model.config.vision.imageSize;
const K = POSITIONS.length;

/** One row of features per scene (every token's, concatenated) and its position's index. */
async function features(split: Split, n: number, seed: number) {
  const rng = new Rng(seed);
  const y: number[] = [];
  const images = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < n; ) {
    const p = rng.int(0, K - 1);
    const spec = { shape: rng.pick(BASE_SHAPES), color: rng.pick(COLORS), size: rng.pick(SIZES) };
    const scene = placeScene(rng, [spec], { kind: 'side', position: POSITIONS[p]! });
    if (!scene || sceneSplit(scene) !== split) continue;
    images.set(sceneImage(scene, size), i * 3 * size * size);
    y.push(p);
    i++;
  }
  const t = patches ? model.vision_tower.forward(patchTensor(rt, images, n, model.config)) : model.encodeImages(images, n);
  let x = (await t.toArray()) as Float32Array;
  t.dispose();
  if (pooled) {
    const P = x.length / n / model.config.vision.width;
    const W = model.config.vision.width;
    const mean = new Float32Array(n * W);
    for (let i = 0; i < n; i++) for (let p = 0; p < P; p++) for (let d = 0; d < W; d++) mean[i * W + d]! += x[(i * P + p) * W + d]! / P;
    x = mean;
  }
  return { x, W: x.length / n, rows: n, y };
}

function accuracy(w: Float64Array, f: Awaited<ReturnType<typeof features>>): string {
  let right = 0;
  for (let r = 0; r < f.rows; r++) {
    right += probePredict(w, f, r, K) === f.y[r] ? 1 : 0;
  }
  return `${((100 * right) / f.rows).toFixed(1)} % of ${f.rows}`;
}

const train = await features('train', Number(scenes), 1);
const test = await features('test', Number(scenes), 2);
const w = fitProbe(train, train.y, K, { steps: 200, lr: 0.02 });
console.log(`position from ${pooled ? 'the mean patch' : patches ? 'patches' : 'image tokens'} (${train.W} features): train ${accuracy(w, train)}, held-out ${accuracy(w, test)}`);
rt.destroy();
