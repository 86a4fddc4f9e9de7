/**
 * The model against its float64 reference (logits of image and text rows, left padding with masked
 * keys, tied and untied heads, grouped-query attention), gradients by finite differences, the
 * label layout of collate, and generation: cached = uncached greedy tokens, seeded sampling, stops.
 */
import { Runtime } from '@keel/kernels';
import { crossEntropy, gradcheck, noGrad, randn, tensor, tidy, type Parameter } from '@keel/autograd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig, type MllmConfig, type MllmConfigInput } from '../config.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { IGNORE, collate, collatePrompts } from './collate.js';
import { generate, pickToken } from './generate.js';
import { MultimodalModel, Projector } from './mllm.js';
import { referenceLogits } from './reference.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const tok = WordTokenizer.fromWords(['a', 'red', 'blue', 'circle', 'square', 'what', 'color', 'is', 'the', '?', 'yes', 'no', 'big']);

const small: MllmConfigInput = {
  vision: { imageSize: 8, patchSize: 4, width: 16, layers: 2, heads: 2, intermediate: 24 },
  projector: { hidden: 20 },
  text: { vocabSize: tok.vocabSize, width: 16, layers: 2, heads: 2, kvHeads: 1, intermediate: 24, maxPositions: 40 },
  imageTokenId: tok.specials.image,
};

function image(cfg: MllmConfig, seed: number): Float32Array {
  const v = cfg.vision;
  return Float32Array.from({ length: v.channels * v.imageSize ** 2 }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 0.8);
}

async function weightsOf(model: MultimodalModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) out.set(name, (await p.toArray()) as Float32Array);
  return out;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  expect(worst, what).toBeLessThan(tol);
}

describe('MultimodalModel forward', () => {
  for (const tie of [true, false]) {
    it(`matches the float64 reference (image and text rows, right padding, tied head: ${tie})`, async () => {
      const model = new MultimodalModel(rt, { ...small, text: { ...small.text, tieEmbeddings: tie } }, { seed: 3 });
      const cfg = model.config;
      const batch = collate(
        [
          { image: image(cfg, 1), prompt: 'what color is the circle ?', answer: 'red' },
          { image: null, prompt: 'is the square big ?', answer: 'no' },
        ],
        tok,
        cfg,
      );
      const { batch: B, length: T, ids } = batch.input;
      const logits = (await noGrad(() => tidy(() => model.forward(batch.input).logits)).toArray()) as Float32Array;
      const w = await weightsOf(model);
      const V = cfg.text.vocabSize;
      for (let b = 0; b < B; b++) {
        const want = referenceLogits(w, cfg, ids.subarray(b * T, (b + 1) * T), b === 0 ? image(cfg, 1) : null);
        expectClose(logits.subarray(b * T * V, (b + 1) * T * V), want, 2e-4, `row ${b}`);
      }
      model.dispose();
    });
  }

  it('matches the reference with a VILA-style 2×2 patch merge (downsample 2: 16 patches → 4 image tokens)', async () => {
    const model = new MultimodalModel(rt, { ...small, vision: { ...small.vision, imageSize: 16 }, projector: { hidden: 20, downsample: 2 } }, { seed: 5 });
    const cfg = model.config;
    expect(model.imageTokens).toBe(4);
    const projector = model.multi_modal_projector as Projector;
    expect(projector).toBeInstanceOf(Projector);
    expect(projector.linear_1.inFeatures).toBe(4 * 16);
    const batch = collate([{ image: image(cfg, 2), prompt: 'what color is the circle ?', answer: 'blue' }], tok, cfg);
    const logits = (await noGrad(() => tidy(() => model.forward(batch.input).logits)).toArray()) as Float32Array;
    const want = referenceLogits(await weightsOf(model), cfg, batch.input.ids, image(cfg, 2));
    expectClose(logits, want, 2e-4, 'downsampled row');
    // the merged feature of token (0, 0) holds patches (0,0), (0,1), (1,0), (1,1) in that order
    const feats = tensor(rt, Float32Array.from({ length: 16 * 3 }, (_, i) => i), [1, 16, 3]);
    const merged = (await projector.merge(feats).toArray()) as Float32Array;
    expect([...merged.subarray(0, 12)]).toEqual([0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17]);
    feats.dispose();
    model.dispose();
    expect(() => resolveConfig({ ...small, projector: { downsample: 3 } })).toThrow(/projector\.downsample.*2×2 patch grid is not divisible by downsample 3/);
  });

  it('left-padded prompts with masked keys match the reference with the same mask', async () => {
    const model = new MultimodalModel(rt, small, { seed: 4 });
    const cfg = model.config;
    const { input, keyFlags } = collatePrompts(
      [
        { image: image(cfg, 2), prompt: 'what color is the square ?' },
        { image: null, prompt: 'a red circle' },
      ],
      tok,
      cfg,
    );
    const { batch: B, length: T, ids } = input;
    expect(keyFlags.subarray(T, T + 2)).toEqual(Int32Array.from([0, 0])); // row 1 is shorter: left padding
    const logits = (await noGrad(() =>
      tidy(() => model.forward(input, { keyFlags }).logits),
    ).toArray()) as Float32Array;
    const w = await weightsOf(model);
    const V = cfg.text.vocabSize;
    for (let b = 0; b < B; b++) {
      const flags = keyFlags.subarray(b * T, (b + 1) * T);
      const want = referenceLogits(w, cfg, ids.subarray(b * T, (b + 1) * T), b === 0 ? image(cfg, 2) : null, flags);
      // compare real positions only (padded query rows see no key; their values are irrelevant)
      for (let t = 0; t < T; t++) {
        if (!flags[t]) continue;
        expectClose(logits.subarray((b * T + t) * V, (b * T + t + 1) * V), want.subarray(t * V, (t + 1) * V), 2e-4, `row ${b} position ${t}`);
      }
    }
    model.dispose();
  });

  it('rejects wrong image counts, image-token runs and out-of-vocabulary ids with clear errors', () => {
    const model = new MultimodalModel(rt, small, { seed: 5 });
    const cfg = model.config;
    const batch = collate([{ image: image(cfg, 1), prompt: 'a', answer: 'red' }], tok, cfg);
    expect(() => tidy(() => model.forward({ ...batch.input, images: null }).logits)).toThrow(/1 rows hold image tokens but no images were given/);
    const ids = batch.input.ids.slice();
    ids[2] = tok.specials.pad; // break the run of image tokens
    expect(() => tidy(() => model.forward({ ...batch.input, ids }).logits)).toThrow(/row 0 holds 3 image tokens \(id 4\); an image takes exactly 4/);
    ids.set(batch.input.ids);
    ids[ids.length - 1] = 999;
    expect(() => tidy(() => model.forward({ ...batch.input, ids }).logits)).toThrow(/token id 999 at row 0, position \d+ is outside the vocabulary/);
    expect(() => collate([{ image: new Float32Array(5), prompt: 'a', answer: 'b' }], tok, cfg)).toThrow(/example 0 has an image of 5 values, the model takes 3×8×8 = 192/);
    expect(() => new MultimodalModel(rt, { text: { heads: 3 } })).toThrow(/text.heads: width 128 is not divisible by heads 3/);
    model.dispose();
  });
});

describe('collate', () => {
  it('puts labels on the answer tokens and <eos> only, shifted by one', () => {
    const cfg = resolveConfig(small);
    const b = collate([{ image: null, prompt: 'what color', answer: 'red circle' }], tok, cfg);
    const ids = Array.from(b.input.ids);
    const [bos, what, color, red, circle, eos] = ids;
    expect([bos, eos]).toEqual([tok.specials.bos, tok.specials.eos]);
    expect(tok.decode([what!, color!, red!, circle!])).toBe('what color red circle');
    expect(Array.from(b.labels)).toEqual([IGNORE, IGNORE, red, circle, eos, IGNORE]);
    expect(b.answerTokens).toBe(3);
  });
});

describe('gradients', () => {
  it('pass gradcheck on a tiny config (vision, projector and language parameters)', async () => {
    const tiny: MllmConfigInput = {
      vision: { imageSize: 4, patchSize: 2, width: 8, layers: 1, heads: 2, intermediate: 8 },
      projector: { hidden: 8 },
      text: { vocabSize: tok.vocabSize, width: 8, layers: 1, heads: 2, kvHeads: 1, intermediate: 8, maxPositions: 20, tieEmbeddings: false },
      imageTokenId: tok.specials.image,
    };
    const model = new MultimodalModel(rt, tiny, { seed: 9 });
    const cfg = model.config;
    const batch = collate([{ image: image(cfg, 3), prompt: 'what color', answer: 'red' }], tok, cfg);
    const params = model.namedParameters();
    const names = [
      'vision_tower.vision_model.embeddings.class_embedding',
      'vision_tower.vision_model.encoder.layers.0.layer_norm1.weight',
      'vision_tower.vision_model.encoder.layers.0.self_attn.k_proj.bias',
      'multi_modal_projector.linear_1.bias',
      'language_model.model.layers.0.input_layernorm.weight',
      'language_model.model.layers.0.self_attn.k_proj.weight',
      'language_model.model.layers.0.mlp.gate_proj.weight',
      'language_model.model.norm.weight',
    ];
    const inputs = names.map((n) => params.get(n) as Parameter);
    const labels = tensor(rt, batch.labels, [batch.input.batch, batch.input.length], { dtype: 'i32' });
    const r = await gradcheck(() => crossEntropy(model.forward(batch.input).logits, labels), inputs, { names, eps: 1e-2, atol: 2e-3, rtol: 2e-2 });
    expect(r.inputs.map((i) => i.elements)).toEqual([8, 8, 8, 8, 8, 32, 64, 8]);
    model.dispose();
  });
});

describe('generate', () => {
  it('gives identical greedy tokens with and without the KV cache (batched, mixed lengths, images)', async () => {
    const model = new MultimodalModel(rt, small, { seed: 11 });
    const cfg = model.config;
    const prompts = [
      { image: image(cfg, 5), prompt: 'what color is the circle ?' },
      { image: null, prompt: 'a' },
      { image: image(cfg, 6), prompt: 'is the square' },
    ];
    const stop = { stopTokens: [] as number[], maxNewTokens: 8 };
    const cached = await generate(model, tok, prompts, { ...stop, useCache: true });
    const uncached = await generate(model, tok, prompts, { ...stop, useCache: false });
    expect(cached.map((g) => g.ids)).toEqual(uncached.map((g) => g.ids));
    expect(cached.every((g) => g.ids.length === 8 && g.finish === 'length')).toBe(true);
    // a row generated alone gives the same tokens as inside the padded batch
    const alone = await generate(model, tok, [prompts[1]!], { ...stop, useCache: true });
    expect(alone[0]!.ids).toEqual(cached[1]!.ids);
    model.dispose();
  });

  it('keeps cached = uncached and batch = alone with a soft prompt and per-layer KV prefixes (tuning hooks)', async () => {
    const model = new MultimodalModel(rt, small, { seed: 13 });
    const cfg = model.config;
    const D = cfg.text.width / cfg.text.heads;
    model.softPrompt = randn(rt, [3, cfg.text.width], 31);
    model.language_model.model.layers.items.forEach((layer, i) => {
      layer.self_attn.prefix = { k: randn(rt, [cfg.text.kvHeads, 2, D], 40 + i), v: randn(rt, [cfg.text.kvHeads, 2, D], 50 + i) };
    });
    const prompts = [
      { image: image(cfg, 7), prompt: 'what color is the circle ?' },
      { image: null, prompt: 'a' },
    ];
    const o = { stopTokens: [] as number[], maxNewTokens: 6 };
    const cached = await generate(model, tok, prompts, { ...o, useCache: true });
    const uncached = await generate(model, tok, prompts, { ...o, useCache: false });
    expect(cached.map((g) => g.ids)).toEqual(uncached.map((g) => g.ids));
    const alone = await generate(model, tok, [prompts[1]!], o);
    expect(alone[0]!.ids).toEqual(cached[1]!.ids);
    // logits, not just argmaxes: the left-padded row equals the row alone (soft tokens sit after the padding)
    const V = cfg.text.vocabSize;
    const lastLogits = async (ps: typeof prompts) => {
      const { input, keyFlags } = collatePrompts(ps, tok, cfg);
      const l = (await noGrad(() => tidy(() => model.forward(input, { keyFlags }).logits)).toArray()) as Float32Array;
      return Array.from({ length: input.batch }, (_, b) => l.subarray(((b + 1) * input.length - 1) * V, (b + 1) * input.length * V));
    };
    const [, padded] = await lastLogits(prompts);
    const [single] = await lastLogits([prompts[1]!]);
    expectClose(padded!, single!, 1e-5, 'padded row vs alone');
    // the hooks change the output shape of nothing and the values of everything
    const batch = collate([{ image: null, prompt: 'a red', answer: 'circle' }], tok, cfg);
    const withHooks = (await noGrad(() => tidy(() => model.forward(batch.input).logits)).toArray()) as Float32Array;
    model.softPrompt = null;
    model.language_model.model.layers.items.forEach((layer) => (layer.self_attn.prefix = null));
    const without = (await noGrad(() => tidy(() => model.forward(batch.input).logits)).toArray()) as Float32Array;
    expect(withHooks.length).toBe(without.length);
    expect(withHooks).not.toEqual(without);
    model.dispose();
  });

  it('never emits the <image> placeholder, even where it has the highest logit', async () => {
    // find a random model whose first greedy pick would be <image>
    const ex = { image: null, prompt: 'what color is the circle ?' };
    let model: MultimodalModel | null = null;
    for (let seed = 0; seed < 200 && !model; seed++) {
      const m = new MultimodalModel(rt, small, { seed });
      const batch = collatePrompts([ex], tok, m.config);
      const logits = (await noGrad(() => tidy(() => m.forward(batch.input, { keyFlags: batch.keyFlags }).logits)).toArray()) as Float32Array;
      const V = m.config.text.vocabSize;
      if (pickToken(logits.subarray(logits.length - V), 0, 1, Math.random) === tok.specials.image) model = m;
      else m.dispose();
    }
    expect(model, 'a seed whose argmax is <image>').not.toBeNull();
    const [g] = await generate(model!, tok, [ex], { maxNewTokens: 4 });
    expect(g!.ids).not.toContain(tok.specials.image);
    model!.dispose();
  });

  it('stops at a stop token, samples deterministically per seed, and validates options', async () => {
    const model = new MultimodalModel(rt, small, { seed: 12 });
    const prompts = [{ image: null, prompt: 'what color is the' }];
    const greedy = await generate(model, tok, prompts, { stopTokens: [], maxNewTokens: 6 });
    const first = greedy[0]!.ids[0]!;
    const stopped = await generate(model, tok, prompts, { stopTokens: [first], maxNewTokens: 6 });
    expect(stopped[0]).toMatchObject({ ids: [], finish: 'stop', text: '' });
    const s1 = await generate(model, tok, prompts, { temperature: 1.5, topP: 0.9, seed: 7, maxNewTokens: 6, stopTokens: [] });
    const s2 = await generate(model, tok, prompts, { temperature: 1.5, topP: 0.9, seed: 7, maxNewTokens: 6, stopTokens: [] });
    expect(s1[0]!.ids).toEqual(s2[0]!.ids);
    await expect(generate(model, tok, prompts, { topP: 0 })).rejects.toThrow(/topP must be in \(0, 1\], got 0/);
    await expect(generate(model, tok, prompts, { maxNewTokens: 100 })).rejects.toThrow(/exceeds maxPositions 40/);
    model.dispose();
  });

  it('pickToken: greedy takes the first maximum; top-p keeps only the nucleus', () => {
    expect(pickToken(Float32Array.from([1, 3, 3, 0]), 0, 1, Math.random)).toBe(1);
    // p = softmax([10, 0, 0]) ≈ [0.99991, …]: top-p 0.5 keeps only token 0 whatever the draw
    for (const u of [0, 0.3, 0.999]) expect(pickToken(Float32Array.from([10, 0, 0]), 1, 0.5, () => u)).toBe(0);
    // uniform over 4 tokens with u = 0.6 → the third token in id order
    expect(pickToken(Float32Array.from([0, 0, 0, 0]), 1, 1, () => 0.6)).toBe(2);
  });
});
