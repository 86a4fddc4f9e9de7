/**
 * The resampler connector: its config (defaults, validation), its parameters (names, shapes, the
 * list the IO layer is given), the whole model's logits against the float64 reference, gradients
 * by finite differences through the cross-attention (Q queries ≠ P + Q keys), and generation with
 * and without the KV cache. Save → load is in resampler-checkpoint.test.ts.
 */
import { Runtime } from '@keel/kernels';
import { crossEntropy, gradcheck, noGrad, tensor, tidy, type Parameter } from '@keel/autograd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageTokenCount, mllmConfigSchema, resamplerSizes, resolveConfig, type MllmConfig, type MllmConfigInput } from '../config.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { collate } from './collate.js';
import { generate } from './generate.js';
import { MultimodalModel } from './mllm.js';
import { referenceLogits } from './reference.js';
import { Resampler, resamplerParameterShapes, sincos2d } from './resampler.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

const tok = WordTokenizer.fromWords(['a', 'red', 'blue', 'circle', 'what', 'color', 'is', 'the', '?']);

/** P = 4 patches, Q = 3 queries: the cross-attention has 3 query rows and 7 keys. */
const small = (projector: MllmConfigInput['projector']): MllmConfigInput => ({
  vision: { imageSize: 8, patchSize: 4, width: 16, layers: 1, heads: 2, intermediate: 24 },
  projector,
  text: { vocabSize: tok.vocabSize, width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 24, maxPositions: 40 },
  imageTokenId: tok.specials.image,
});

function image(cfg: MllmConfig, seed: number): Float32Array {
  const v = cfg.vision;
  return Float32Array.from({ length: v.channels * v.imageSize ** 2 }, (_, i) => Math.sin(seed * 5.3 + i * 0.41) * 0.9);
}

async function weightsOf(model: MultimodalModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) out.set(name, (await p.toArray()) as Float32Array);
  return out;
}

function worstError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return worst;
}

describe('resampler config', () => {
  it('fills the resampler defaults, leaves MLP configs without resampler keys, and re-parses both', () => {
    const r = resolveConfig({ projector: { type: 'resampler' } });
    expect(r.projector).toEqual({ type: 'resampler', hidden: 0, act: 'gelu', downsample: 1, queries: 16, layers: 2, heads: 4, width: 0, intermediate: 0, positions: 'none' });
    expect(resamplerSizes(r)).toEqual({ queries: 16, layers: 2, heads: 4, width: r.text.width, intermediate: 4 * r.text.width });
    expect(imageTokenCount(resolveConfig({ projector: { type: 'resampler', queries: 5 } }))).toBe(5);
    const mlp = resolveConfig();
    expect(mlp.projector).toEqual({ type: 'mlp', hidden: 0, act: 'gelu', downsample: 1 });
    for (const c of [r, mlp]) expect(mllmConfigSchema.parse(c)).toEqual(c);
    expect(() => resamplerSizes(mlp)).toThrow(/resamplerSizes: projector\.type is 'mlp', not 'resampler'/);
  });

  it.each<[string, MllmConfigInput['projector'], RegExp]>([
    ['a resampler size with the MLP projector', { queries: 8 }, /projector\.queries: queries is a resampler setting; it needs type 'resampler' \(type is 'mlp'\)/],
    ['zero queries', { type: 'resampler', queries: 0 }, /projector\.queries: Too small/],
    ['heads that do not divide the width', { type: 'resampler', width: 24, heads: 5 }, /projector\.heads: resampler width 24 is not divisible by heads 5/],
    ['a head dim the attention kernel lacks', { type: 'resampler', heads: 64 }, /projector\.heads: resampler head dim 2 = width 128 \(the text width\) \/ heads 64 must be a multiple of 4/],
    ['downsample with the resampler', { type: 'resampler', downsample: 2 }, /projector\.downsample: downsample 2 must be 1 with the resampler/],
    ['the MLP hidden width with the resampler', { type: 'resampler', hidden: 32 }, /projector\.hidden: hidden 32 is the MLP projector's width; the resampler's MLP width is 'intermediate'/],
    ['more queries than positions', { type: 'resampler', queries: 128 }, /text\.maxPositions: maxPositions 128 leaves no room for text after 128 image tokens/],
    ['an unknown type', { type: 'qformer' as 'mlp' }, /projector\.type: Invalid option/],
    ['positions with the MLP projector', { positions: 'sincos2d' }, /projector\.positions: positions is a resampler setting; it needs type 'resampler'/],
    ['unknown positions', { type: 'resampler', positions: 'learned' as 'none' }, /projector\.positions: Invalid option/],
  ])('rejects %s, naming the field', (_, projector, message) => {
    expect(() => resolveConfig({ projector }, 'cfg')).toThrow(message);
  });
});

describe('Resampler', () => {
  it('registers Idefics2-style names under multi_modal_projector., exactly the shapes the IO layer is given', () => {
    for (const [width, withOutput] of [[8, true], [0, false]] as const) {
      const model = new MultimodalModel(rt, small({ type: 'resampler', queries: 3, heads: 2, width }), { seed: 1 });
      expect(model.multi_modal_projector).toBeInstanceOf(Resampler);
      const live = [...model.namedParameters()].filter(([n]) => n.startsWith('multi_modal_projector.')).map(([n, p]) => `${n}:${p.shape}`);
      expect(live).toEqual([...resamplerParameterShapes(model.config)].map(([n, s]) => `${n}:${s}`));
      expect(live).toContain(`multi_modal_projector.latents:3,${width || 16}`);
      expect(live).toContain(`multi_modal_projector.layers.1.cross_attn.k_proj.weight:${width || 16},${width || 16}`);
      expect(live.some((n) => n.startsWith('multi_modal_projector.output_projection.'))).toBe(withOutput);
      // the tuning glob selects the whole connector, and nothing else
      expect([...model.select('multi_modal_projector.**').keys()]).toEqual(live.map((l) => l.split(':')[0]));
      model.dispose();
    }
  });

  for (const [label, projector] of [
    ['width 8 → output projection, exact GELU', { type: 'resampler', queries: 3, heads: 2, width: 8, intermediate: 12, act: 'gelu_erf' }],
    ['width 0 = text width, no output projection', { type: 'resampler', queries: 3, layers: 1, heads: 4 }],
    ['sincos2d patch positions, two layers', { type: 'resampler', queries: 3, heads: 2, width: 8, positions: 'sincos2d' }],
  ] as const) {
    it(`the whole model matches the float64 reference (${label})`, async () => {
      const model = new MultimodalModel(rt, small(projector), { seed: 7 });
      const cfg = model.config;
      expect(model.imageTokens).toBe(3);
      const batch = collate(
        [
          { image: image(cfg, 1), prompt: 'what color is the circle ?', answer: 'red' },
          { image: null, prompt: 'a blue circle', answer: 'red' },
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
        expect(worstError(logits.subarray(b * T * V, (b + 1) * T * V), want), `row ${b}`).toBeLessThan(2e-4);
      }
      // the image tokens carry the image: another image changes the logits of the image row
      const other = collate([{ image: image(cfg, 2), prompt: 'what color is the circle ?', answer: 'red' }], tok, cfg);
      const changed = (await noGrad(() => tidy(() => model.forward(other.input).logits)).toArray()) as Float32Array;
      expect(worstError(changed, logits.subarray(0, T * V))).toBeGreaterThan(1e-4);
      model.dispose();
    });
  }

  it('sincos2d: the fixed table of (row, column), and it is what tells the queries where a patch is', async () => {
    const t = sincos2d(2, 8); // f = 2: ω = 1, 0.01
    const at = (p: number) => Array.from(t.subarray(p * 8, (p + 1) * 8));
    const c1 = Math.cos(1);
    const s1 = Math.sin(1);
    const c01 = Math.cos(0.01);
    const s01 = Math.sin(0.01);
    for (const [p, want] of [
      [0, [0, 0, 1, 1, 0, 0, 1, 1]], // row 0, column 0
      [1, [0, 0, 1, 1, s1, s01, c1, c01]], // row 0, column 1
      [2, [s1, s01, c1, c01, 0, 0, 1, 1]], // row 1, column 0
    ] as const) {
      at(p).forEach((v, i) => expect(v, `pos[${p}][${i}]`).toBeCloseTo(want[i]!, 6));
    }
    expect(() => sincos2d(2, 6)).toThrow(/sincos2d: width 6 is not a multiple of 4/);
    // Without positions the resampler's output is invariant to the order of the patches it is
    // given (attention is permutation-invariant over keys); with them it is not.
    for (const positions of ['none', 'sincos2d'] as const) {
      const cfg = resolveConfig(small({ type: 'resampler', queries: 3, heads: 2, width: 8, positions }));
      const r = new Resampler(rt, cfg, 5);
      const P = 4;
      const Wv = cfg.vision.width;
      const feats = Float32Array.from({ length: P * Wv }, (_, i) => Math.sin(i * 0.7));
      const swapped = new Float32Array(feats.length);
      for (let p = 0; p < P; p++) swapped.set(feats.subarray(((p + 1) % P) * Wv, (((p + 1) % P) + 1) * Wv), p * Wv);
      const run = (x: Float32Array) => noGrad(() => tidy(() => r.forward(tensor(rt, x, [1, P, Wv])))).toArray();
      const diff = worstError((await run(swapped)) as Float32Array, (await run(feats)) as Float32Array);
      if (positions === 'none') expect(diff).toBeLessThan(1e-5);
      else expect(diff).toBeGreaterThan(1e-2);
      r.dispose();
    }
  });

  it('passes gradcheck through the cross-attention (latents, norms, projections) into the ViT', async () => {
    const tiny: MllmConfigInput = {
      vision: { imageSize: 4, patchSize: 2, width: 8, layers: 1, heads: 2, intermediate: 8 },
      projector: { type: 'resampler', queries: 2, layers: 1, heads: 2, width: 16, intermediate: 8, positions: 'sincos2d' },
      text: { vocabSize: tok.vocabSize, width: 8, layers: 1, heads: 2, kvHeads: 1, intermediate: 8, maxPositions: 20, tieEmbeddings: false },
      imageTokenId: tok.specials.image,
    };
    const model = new MultimodalModel(rt, tiny, { seed: 9 });
    const cfg = model.config;
    const batch = collate([{ image: image(cfg, 3), prompt: 'what color', answer: 'red' }], tok, cfg);
    const params = model.namedParameters();
    const m = 'multi_modal_projector.';
    const names = [
      `${m}latents`,
      `${m}modality_projection.bias`,
      `${m}layers.0.input_context_norm.weight`, // reaches the keys and values of the patches
      `${m}layers.0.input_latents_norm.bias`, // the queries and the latents' keys and values
      `${m}layers.0.cross_attn.q_proj.bias`,
      `${m}layers.0.mlp.fc1.bias`,
      `${m}norm.weight`,
      `${m}output_projection.bias`,
      'vision_tower.vision_model.encoder.layers.0.layer_norm1.weight',
    ];
    const inputs = names.map((n) => params.get(n) as Parameter);
    const labels = tensor(rt, batch.labels, [batch.input.batch, batch.input.length], { dtype: 'i32' });
    const r = await gradcheck(() => crossEntropy(model.forward(batch.input).logits, labels), inputs, { names, eps: 1e-2, atol: 2e-3, rtol: 2e-2 });
    expect(r.inputs.map((i) => i.elements)).toEqual([32, 16, 16, 16, 16, 8, 16, 8, 8]);
    labels.dispose();
    model.dispose();
  });

  it('gives identical greedy tokens with and without the KV cache', async () => {
    const model = new MultimodalModel(rt, small({ type: 'resampler', queries: 3, heads: 2, width: 8 }), { seed: 11 });
    const cfg = model.config;
    const prompts = [
      { image: image(cfg, 5), prompt: 'what color is the circle ?' },
      { image: null, prompt: 'a' },
    ];
    const o = { stopTokens: [] as number[], maxNewTokens: 6 };
    const cached = await generate(model, tok, prompts, { ...o, useCache: true });
    const uncached = await generate(model, tok, prompts, { ...o, useCache: false });
    expect(cached.map((g) => g.ids)).toEqual(uncached.map((g) => g.ids));
    expect(cached.every((g) => g.ids.length === 6)).toBe(true);
    model.dispose();
  });
});
