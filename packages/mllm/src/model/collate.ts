/**
 * From examples (image, prompt, answer) to model input: the chat template, image-token expansion,
 * padding and answer-only labels.
 *
 * Template (one row):  <bos> [<image> × P] prompt-tokens | answer-tokens <eos>
 * The loss covers only answer tokens and the <eos> (label masking, LLaVA): labels[t] is the token
 * at t + 1 when that token belongs to the answer, else IGNORE. Training rows are right-padded
 * (causal attention keeps real tokens from seeing the padding); generation rows are left-padded so
 * every row's next token lands in the same column (see generate.ts).
 *
 * Dimension legend: B rows, T padded length, P image tokens per image.
 * Non-goals: multi-turn conversations, system prompts.
 */
import type { MllmConfig } from '../config.js';
import { imageTokenCount } from '../config.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ModelInput } from './mllm.js';

/** Label of positions that carry no loss (crossEntropy's ignoreIndex). */
export const IGNORE = -100;

export interface Example {
  /** (C, S, S) CHW values, or null for a text-only example. */
  image: Float32Array | null;
  prompt: string;
  answer: string;
}

export interface TrainingBatch {
  input: ModelInput;
  /** (B, T) next-token targets, IGNORE outside answers. */
  labels: Int32Array;
  /** Number of positions with a label (answer tokens + <eos>). */
  answerTokens: number;
}

/** `<bos> [<image>×P] prompt` as ids. */
export function promptIds(tok: Tokenizer, config: MllmConfig, prompt: string, hasImage: boolean): number[] {
  const ids = tok.encode(prompt);
  if (ids.includes(config.imageTokenId)) throw new Error(`collate: prompt "${prompt}" contains the <image> token; images are placed by the template`);
  const image = hasImage ? new Array<number>(imageTokenCount(config)).fill(config.imageTokenId) : [];
  return [tok.specials.bos, ...image, ...ids];
}

function imageValues(config: MllmConfig): number {
  const v = config.vision;
  return v.channels * v.imageSize * v.imageSize;
}

function checkImage(config: MllmConfig, image: Float32Array | null, i: number): void {
  if (image && image.length !== imageValues(config)) {
    const v = config.vision;
    throw new Error(`collate: example ${i} has an image of ${image.length} values, the model takes ${v.channels}×${v.imageSize}×${v.imageSize} = ${imageValues(config)}`);
  }
}

/** Concatenates the images of the examples that have one (row order). */
export function stackImages(config: MllmConfig, images: readonly (Float32Array | null)[]): Float32Array | null {
  const present = images.filter((x): x is Float32Array => x !== null);
  if (present.length === 0) return null;
  const n = imageValues(config);
  const out = new Float32Array(present.length * n);
  present.forEach((im, i) => out.set(im, i * n));
  return out;
}

/** Right-padded training batch with answer-only labels. */
export function collate(examples: readonly Example[], tok: Tokenizer, config: MllmConfig): TrainingBatch {
  if (examples.length === 0) throw new Error('collate: no examples');
  const rows = examples.map((ex, i) => {
    checkImage(config, ex.image, i);
    const prompt = promptIds(tok, config, ex.prompt, ex.image !== null);
    const answer = [...tok.encode(ex.answer), tok.specials.eos];
    return { seq: [...prompt, ...answer], answerFrom: prompt.length };
  });
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.seq.length));
  if (T > config.text.maxPositions) throw new Error(`collate: a row needs ${T} tokens, more than maxPositions ${config.text.maxPositions}`);
  const ids = new Int32Array(B * T).fill(tok.specials.pad);
  const labels = new Int32Array(B * T).fill(IGNORE);
  let answerTokens = 0;
  rows.forEach(({ seq, answerFrom }, b) => {
    ids.set(seq, b * T);
    for (let t = answerFrom - 1; t + 1 < seq.length; t++) {
      labels[b * T + t] = seq[t + 1]!;
      answerTokens++;
    }
  });
  return {
    input: { ids, batch: B, length: T, images: stackImages(config, examples.map((e) => e.image)) },
    labels,
    answerTokens,
  };
}

/** Left-padded prompts for generation: ids (B, T) and the key flags (1 real, 0 pad). */
export function collatePrompts(
  examples: readonly Pick<Example, 'image' | 'prompt'>[],
  tok: Tokenizer,
  config: MllmConfig,
): { input: ModelInput; keyFlags: Int32Array } {
  if (examples.length === 0) throw new Error('collatePrompts: no examples');
  const seqs = examples.map((ex, i) => {
    checkImage(config, ex.image, i);
    return promptIds(tok, config, ex.prompt, ex.image !== null);
  });
  const B = seqs.length;
  const T = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(B * T).fill(tok.specials.pad);
  const keyFlags = new Int32Array(B * T);
  seqs.forEach((s, b) => {
    ids.set(s, b * T + T - s.length);
    keyFlags.fill(1, b * T + T - s.length, (b + 1) * T);
  });
  return { input: { ids, batch: B, length: T, images: stackImages(config, examples.map((e) => e.image)) }, keyFlags };
}
