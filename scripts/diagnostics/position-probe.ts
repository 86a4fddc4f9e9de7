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

type Features = Awaited<ReturnType<typeof features>>;

function logits(w: Float64Array, f: Features, r: number): Float64Array {
  const z = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let s = w[k * (f.W + 1) + f.W]!;
    for (let d = 0; d < f.W; d++) s += w[k * (f.W + 1) + d]! * f.x[r * f.W + d]!;
    z[k] = s;
  }
  return z;
}

/** Softmax regression by full-batch Adam (200 steps, lr 0.02). */
function fit(f: Features): Float64Array {
  const w = new Float64Array(K * (f.W + 1));
  const m = new Float64Array(w.length);
  const v = new Float64Array(w.length);
  for (let it = 1; it <= 200; it++) {
    const g = new Float64Array(w.length);
    for (let r = 0; r < f.rows; r++) {
      const z = logits(w, f, r);
      const top = Math.max(...z);
      let sum = 0;
      for (let k = 0; k < K; k++) sum += (z[k] = Math.exp(z[k]! - top));
      for (let k = 0; k < K; k++) {
        const e = z[k]! / sum - (f.y[r] === k ? 1 : 0);
        for (let d = 0; d < f.W; d++) g[k * (f.W + 1) + d]! += e * f.x[r * f.W + d]!;
        g[k * (f.W + 1) + f.W]! += e;
      }
    }
    for (let i = 0; i < w.length; i++) {
      const gi = g[i]! / f.rows;
      m[i] = 0.9 * m[i]! + 0.1 * gi;
      v[i] = 0.999 * v[i]! + 0.001 * gi * gi;
      w[i]! -= (0.02 * (m[i]! / (1 - 0.9 ** it))) / (Math.sqrt(v[i]! / (1 - 0.999 ** it)) + 1e-8);
    }
  }
  return w;
}

function accuracy(w: Float64Array, f: Features): string {
  let right = 0;
  for (let r = 0; r < f.rows; r++) {
    const z = logits(w, f, r);
    right += z.indexOf(Math.max(...z)) === f.y[r] ? 1 : 0;
  }
  return `${((100 * right) / f.rows).toFixed(1)} % of ${f.rows}`;
}

const train = await features('train', Number(scenes), 1);
const test = await features('test', Number(scenes), 2);
const w = fit(train);
console.log(`position from ${pooled ? 'the mean patch' : patches ? 'patches' : 'image tokens'} (${train.W} features): train ${accuracy(w, train)}, held-out ${accuracy(w, test)}`);
rt.destroy();
