/**
 * Batched generation: greedy or temperature / nucleus (top-p) sampling, stop tokens, and a KV
 * cache. Prompts are left-padded (collatePrompts) and padded keys masked, so every row's next
 * token is the last column; RoPE scores depend only on relative positions, so the padding does not
 * change what a row attends to. With the cache each step feeds only the new tokens (B, 1); without
 * it every step re-runs the whole sequence — both give the same greedy tokens (tested).
 *
 * Dimension legend: B rows, T0 prompt length (padded), L tokens so far, V vocabulary.
 * Non-goals: beam search, repetition penalties, speculative decoding.
 */
import { keep, narrow, noGrad, seededRandom, tidy, type Tensor } from '@keel/autograd';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { collatePrompts, type Example } from './collate.js';
import type { LayerCache } from './language.js';
import type { MultimodalModel } from './mllm.js';

export interface GenerateOptions {
  /** Most tokens generated per row (default 16). */
  maxNewTokens?: number;
  /** 0 = greedy (default); > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Nucleus sampling: sample from the smallest set of tokens whose probability reaches topP (default 1). */
  topP?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** A row stops after producing one of these (default [eos]); the stop token is not returned. */
  stopTokens?: readonly number[];
  /** Decode with the KV cache (default true). */
  useCache?: boolean;
}

export interface Generation {
  /** Generated ids, stop token excluded. */
  ids: number[];
  text: string;
  /** Why the row ended. */
  finish: 'stop' | 'length';
}

function validate(o: GenerateOptions): Required<Omit<GenerateOptions, 'stopTokens'>> {
  const maxNewTokens = o.maxNewTokens ?? 16;
  const temperature = o.temperature ?? 0;
  const topP = o.topP ?? 1;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new Error(`generate: maxNewTokens must be a positive integer, got ${maxNewTokens}`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error(`generate: temperature must be ≥ 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${topP}`);
  return { maxNewTokens, temperature, topP, seed: o.seed ?? 0, useCache: o.useCache ?? true };
}

/** Picks one token from a row of logits. */
export function pickToken(logits: Float32Array, temperature: number, topP: number, rand: () => number): number {
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l);
  const probs = Array.from(logits, (l, i) => ({ i, p: Math.exp((l - max) / temperature) }));
  const total = probs.reduce((s, x) => s + x.p, 0);
  probs.sort((a, b) => b.p - a.p || a.i - b.i);
  let kept = 0;
  let mass = 0;
  while (kept < probs.length && mass < topP * total) mass += probs[kept++]!.p;
  let r = rand() * mass;
  for (let j = 0; j < kept; j++) {
    r -= probs[j]!.p;
    if (r <= 0) return probs[j]!.i;
  }
  return probs[kept - 1]!.i;
}

/** Generates a continuation for each prompt (an image or null, and the prompt text). */
export async function generate(
  model: MultimodalModel,
  tok: Tokenizer,
  prompts: readonly Pick<Example, 'image' | 'prompt'>[],
  options: GenerateOptions = {},
): Promise<Generation[]> {
  const o = validate(options);
  const stops = new Set(options.stopTokens ?? [tok.specials.eos]);
  const rt = model.rt;
  const cfg = model.config;
  const { input, keyFlags } = collatePrompts(prompts, tok, cfg);
  const B = input.batch;
  const T0 = input.length;
  if (T0 + o.maxNewTokens > cfg.text.maxPositions) {
    throw new Error(`generate: prompt length ${T0} + maxNewTokens ${o.maxNewTokens} exceeds maxPositions ${cfg.text.maxPositions}`);
  }
  const V = cfg.text.vocabSize;
  const rand = seededRandom(o.seed);
  const out: number[][] = Array.from({ length: B }, () => []);
  const done = new Array<boolean>(B).fill(false);
  const finish = new Array<Generation['finish']>(B).fill('length');
  // full sequence so far (for the uncached path) and key flags, row-major (B, L)
  let seq = input.ids;
  let flags = keyFlags;
  let L = T0;
  let cache: LayerCache[] | null = null;

  const step = (ids: Int32Array, T: number, withImages: boolean): Tensor =>
    noGrad(() =>
      tidy(() => {
        const r = model.forward({ ids, batch: B, length: T, images: withImages ? input.images ?? null : null }, { cache, keyFlags: flags });
        if (o.useCache) {
          for (const c of r.cache) {
            keep(c.k);
            keep(c.v);
          }
          disposeCache(cache);
          cache = r.cache;
        }
        return narrow(r.logits, 1, T - 1, 1); // (B, 1, V)
      }),
    );

  try {
    let last = step(seq, L, true);
    for (let n = 0; n < o.maxNewTokens; n++) {
      const logits = (await last.toArray()) as Float32Array;
      last.dispose();
      // <image> is a placeholder for projected image features, never text: the model must not emit it
      for (let b = 0; b < B; b++) logits[b * V + model.config.imageTokenId] = -Infinity;
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        const tokId = done[b] ? tok.specials.pad : pickToken(logits.subarray(b * V, (b + 1) * V), o.temperature, o.topP, rand);
        next[b] = tokId;
        if (done[b]) continue;
        if (stops.has(tokId)) {
          done[b] = true;
          finish[b] = 'stop';
        } else out[b]!.push(tokId);
      }
      if (done.every(Boolean) || n + 1 === o.maxNewTokens) break;
      seq = appendColumn(seq, B, L, next);
      flags = appendColumn(flags, B, L, new Int32Array(B).fill(1));
      L++;
      last = o.useCache ? step(next, 1, false) : step(seq, L, true);
    }
  } finally {
    disposeCache(cache);
  }
  return out.map((ids, b) => ({ ids, text: tok.decode(ids, { skipSpecial: true }), finish: finish[b]! }));
}

function disposeCache(cache: readonly LayerCache[] | null): void {
  for (const c of cache ?? []) {
    c.k.dispose();
    c.v.dispose();
  }
}

/** (B, L) row-major + one column → (B, L + 1). */
function appendColumn(a: Int32Array, B: number, L: number, col: Int32Array): Int32Array {
  const out = new Int32Array(B * (L + 1));
  for (let b = 0; b < B; b++) {
    out.set(a.subarray(b * L, (b + 1) * L), b * (L + 1));
    out[b * (L + 1) + L] = col[b]!;
  }
  return out;
}
