/**
 * An independent float64 CPU implementation of the whole architecture (ViT → MLP projector or
 * resampler → Llama), written from the math in the model files' headers rather than from their
 * code, so tests can check the GPU model's logits against it. Weights come from a state dict by
 * parameter name.
 *
 * Dimension legend: B rows, T tokens, Tk keys, N ViT tokens, P patches, Q resampler queries,
 * W width, Wr resampler width, H heads, Hkv kv heads, D head dim, F MLP width, V vocabulary.
 * Non-goals: speed (it is O(T²) loops in plain TypeScript), gradients, KV caching.
 */
import type { MllmConfig } from '../config.js';
import { imageTokenCount, projectorHidden, projectorInput, resamplerSizes } from '../config.js';

type Weights = ReadonlyMap<string, ArrayLike<number>>;
type Mat = Float64Array; // row-major

function get(w: Weights, name: string, size: number): ArrayLike<number> {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing parameter '${name}'`);
  if (t.length !== size) throw new Error(`reference: '${name}' has ${t.length} values, expected ${size}`);
  return t;
}

/** x (n, I) · Wᵀ (O, I) + b. */
function linear(x: Mat, n: number, I: number, W: ArrayLike<number>, O: number, b: ArrayLike<number> | null): Mat {
  const y = new Float64Array(n * O);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < O; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < I; i++) s += x[r * I + i]! * W[o * I + i]!;
      y[r * O + o] = s;
    }
  }
  return y;
}

function layerNorm(x: Mat, n: number, C: number, g: ArrayLike<number>, b: ArrayLike<number>, eps: number): Mat {
  const y = new Float64Array(n * C);
  for (let r = 0; r < n; r++) {
    let mu = 0;
    for (let c = 0; c < C; c++) mu += x[r * C + c]!;
    mu /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c]! - mu) ** 2;
    const rstd = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) y[r * C + c] = (x[r * C + c]! - mu) * rstd * g[c]! + b[c]!;
  }
  return y;
}

function rmsNorm(x: Mat, n: number, C: number, g: ArrayLike<number>, eps: number): Mat {
  const y = new Float64Array(n * C);
  for (let r = 0; r < n; r++) {
    let ms = 0;
    for (let c = 0; c < C; c++) ms += x[r * C + c]! ** 2;
    const rstd = 1 / Math.sqrt(ms / C + eps);
    for (let c = 0; c < C; c++) y[r * C + c] = x[r * C + c]! * rstd * g[c]!;
  }
  return y;
}

const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse for float64 checks; use a series / continued fraction split
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = x;
    let term = x;
    for (let k = 1; k < 60; k++) {
      term *= (-x * x) / k;
      sum += term / (2 * k + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc asymptotic continued fraction for |x| ≥ 3
  let f = 0;
  for (let k = 60; k >= 1; k--) f = k / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}
const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
const silu = (x: number): number => x / (1 + Math.exp(-x));

function add(a: Mat, b: Mat): Mat {
  return a.map((v, i) => v + b[i]!);
}

/**
 * Multi-head attention over rows of one sequence: q (T, H·D), k and v (Tk, Hkv·D); query t sits at
 * absolute position t (causal: keys ≤ t); keys with flag 0 are skipped; rows seeing no key give 0.
 */
function attend(q: Mat, k: Mat, v: Mat, T: number, Tk: number, H: number, Hkv: number, D: number, causal: boolean, flags: ArrayLike<number> | null): Mat {
  const out = new Float64Array(T * H * D);
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / Hkv));
    for (let t = 0; t < T; t++) {
      const scores: number[] = [];
      const keys: number[] = [];
      for (let j = 0; j < Tk; j++) {
        if ((causal && j > t) || (flags && !flags[j])) continue;
        let s = 0;
        for (let d = 0; d < D; d++) s += q[t * H * D + h * D + d]! * k[j * Hkv * D + g * D + d]!;
        scores.push(s * scale);
        keys.push(j);
      }
      if (keys.length === 0) continue;
      const m = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < D; d++) {
        let s = 0;
        keys.forEach((j, i) => (s += (e[i]! / z) * v[j * Hkv * D + g * D + d]!));
        out[t * H * D + h * D + d] = s;
      }
    }
  }
  return out;
}

/** Rotates channel pairs (i, i + D/2) of every head of x (T, heads·D) by position·θ^(−2i/D). */
function rope(x: Mat, T: number, heads: number, D: number, theta: number): Mat {
  const y = new Float64Array(x);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D / 2; i++) {
        const a = t * theta ** ((-2 * i) / D);
        const o = t * heads * D + h * D;
        const x1 = x[o + i]!;
        const x2 = x[o + i + D / 2]!;
        y[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
        y[o + i + D / 2] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    }
  }
  return y;
}

/** One image (C, S, S) → projected image tokens (P, W). */
function imageTokens(w: Weights, c: MllmConfig, image: ArrayLike<number>): Mat {
  const { channels: C, imageSize: S, patchSize: p, width: Wv, heads: H, intermediate: F, layerNormEps: eps } = c.vision;
  const g = S / p;
  const P = g * g;
  const feat = C * p * p;
  const patches = new Float64Array(P * feat);
  for (let gy = 0; gy < g; gy++) {
    for (let gx = 0; gx < g; gx++) {
      let o = (gy * g + gx) * feat;
      for (let ch = 0; ch < C; ch++) for (let py = 0; py < p; py++) for (let px = 0; px < p; px++) patches[o++] = image[(ch * S + gy * p + py) * S + gx * p + px]!;
    }
  }
  const pre = 'vision_tower.vision_model.';
  const N = P + 1;
  const emb = linear(patches, P, feat, get(w, `${pre}embeddings.patch_embedding.weight`, Wv * feat), Wv, null);
  let x: Mat = new Float64Array(N * Wv);
  const cls = get(w, `${pre}embeddings.class_embedding`, Wv);
  const pos = get(w, `${pre}embeddings.position_embedding.weight`, N * Wv);
  for (let i = 0; i < N * Wv; i++) x[i] = (i < Wv ? cls[i]! : emb[i - Wv]!) + pos[i]!;
  x = layerNorm(x, N, Wv, get(w, `${pre}pre_layrnorm.weight`, Wv), get(w, `${pre}pre_layrnorm.bias`, Wv), eps);
  const act = c.vision.act === 'gelu' ? geluTanh : geluErf;
  for (let l = 0; l < c.vision.layers; l++) {
    const L = `${pre}encoder.layers.${l}.`;
    const lin = (name: string, inp: Mat, I: number, O: number) => linear(inp, N, I, get(w, `${L}${name}.weight`, I * O), O, get(w, `${L}${name}.bias`, O));
    const h = layerNorm(x, N, Wv, get(w, `${L}layer_norm1.weight`, Wv), get(w, `${L}layer_norm1.bias`, Wv), eps);
    const a = attend(lin('self_attn.q_proj', h, Wv, Wv), lin('self_attn.k_proj', h, Wv, Wv), lin('self_attn.v_proj', h, Wv, Wv), N, N, H, H, Wv / H, false, null);
    x = add(x, lin('self_attn.out_proj', a, Wv, Wv));
    const h2 = layerNorm(x, N, Wv, get(w, `${L}layer_norm2.weight`, Wv), get(w, `${L}layer_norm2.bias`, Wv), eps);
    x = add(x, lin('mlp.fc2', lin('mlp.fc1', h2, Wv, F).map(act), F, Wv));
  }
  if (c.projector.type === 'resampler') return resample(w, c, x.subarray(Wv), P); // drop CLS
  const feats = downsample(x.subarray(Wv), g, Wv, c.projector.downsample); // drop CLS → (P, Wv) → (P/d², d²·Wv)
  const Pt = imageTokenCount(c);
  const In = projectorInput(c);
  const Hp = projectorHidden(c);
  const W = c.text.width;
  const pact = c.projector.act === 'gelu' ? geluTanh : geluErf;
  const m = 'multi_modal_projector.';
  const h = linear(feats, Pt, In, get(w, `${m}linear_1.weight`, Hp * In), Hp, get(w, `${m}linear_1.bias`, Hp)).map(pact);
  return linear(h, Pt, Hp, get(w, `${m}linear_2.weight`, W * Hp), W, get(w, `${m}linear_2.bias`, W));
}

/**
 * Patch features (P, Wv) → image tokens (Q, W) by the resampler: latents z cross-attend to
 * [LN(x) (+ the 2D sin-cos patch positions); LN(z)] with x = the projected patches, then a GELU MLP, both pre-LN and residual; a final
 * LN, and a Linear to the text width when the resampler's width differs.
 */
function resample(w: Weights, c: MllmConfig, feats: Mat, P: number): Mat {
  const { queries: Q, layers, heads: H, width: Wr, intermediate: F } = resamplerSizes(c);
  const { width: Wv, layerNormEps: eps } = c.vision;
  const W = c.text.width;
  const m = 'multi_modal_projector.';
  const lin = (name: string, x: Mat, n: number, I: number, O: number) => linear(x, n, I, get(w, `${m}${name}.weight`, O * I), O, get(w, `${m}${name}.bias`, O));
  const norm = (name: string, x: Mat, n: number) => layerNorm(x, n, Wr, get(w, `${m}${name}.weight`, Wr), get(w, `${m}${name}.bias`, Wr), eps);
  const act = c.projector.act === 'gelu' ? geluTanh : geluErf;
  const x = lin('modality_projection', feats, P, Wv, Wr);
  let z: Mat = Float64Array.from(get(w, `${m}latents`, Q * Wr));
  const pos = c.projector.type === 'resampler' && c.projector.positions === 'sincos2d' ? sinCosPositions(Math.sqrt(P), Wr) : null;
  for (let l = 0; l < layers; l++) {
    const L = `layers.${l}.`;
    const zn = norm(`${L}input_latents_norm`, z, Q);
    const kv = new Float64Array((P + Q) * Wr);
    const xn = norm(`${L}input_context_norm`, x, P);
    if (pos) for (let i = 0; i < P * Wr; i++) xn[i] = xn[i]! + pos[i]!;
    kv.set(xn);
    kv.set(zn, P * Wr);
    const q = lin(`${L}cross_attn.q_proj`, zn, Q, Wr, Wr);
    const a = attend(q, lin(`${L}cross_attn.k_proj`, kv, P + Q, Wr, Wr), lin(`${L}cross_attn.v_proj`, kv, P + Q, Wr, Wr), Q, P + Q, H, H, Wr / H, false, null);
    z = add(z, lin(`${L}cross_attn.o_proj`, a, Q, Wr, Wr));
    const h = lin(`${L}mlp.fc1`, norm(`${L}post_attention_layernorm`, z, Q), Q, Wr, F).map(act);
    z = add(z, lin(`${L}mlp.fc2`, h, Q, F, Wr));
  }
  const out = norm('norm', z, Q);
  return Wr === W ? out : lin('output_projection', out, Q, Wr, W);
}

/**
 * positions 'sincos2d': patch p = (row r, column c) of the g×g grid → [sin(r·ω_i), cos(r·ω_i),
 * sin(c·ω_i), cos(c·ω_i)], i < Wr/4, ω_i = 10000^(−4i/Wr), in float64.
 */
function sinCosPositions(g: number, Wr: number): Mat {
  const f = Wr / 4;
  const out = new Float64Array(g * g * Wr);
  for (let r = 0; r < g; r++) {
    for (let col = 0; col < g; col++) {
      const row = out.subarray((r * g + col) * Wr, (r * g + col + 1) * Wr);
      for (let i = 0; i < f; i++) {
        const w = Math.pow(10000, (-4 * i) / Wr);
        row[i] = Math.sin(r * w);
        row[f + i] = Math.cos(r * w);
        row[2 * f + i] = Math.sin(col * w);
        row[3 * f + i] = Math.cos(col * w);
      }
    }
  }
  return out;
}

/** (g², C) patch features → ((g/d)², d²·C): token (by, bx) = patches (by·d + dy, bx·d + dx) in (dy, dx, c) order. */
function downsample(feats: Mat, g: number, C: number, d: number): Mat {
  if (d === 1) return feats;
  const gb = g / d;
  const out = new Float64Array(g * g * C);
  let o = 0;
  for (let by = 0; by < gb; by++) {
    for (let bx = 0; bx < gb; bx++) {
      for (let dy = 0; dy < d; dy++) {
        for (let dx = 0; dx < d; dx++) {
          const src = ((by * d + dy) * g + bx * d + dx) * C;
          for (let ch = 0; ch < C; ch++) out[o++] = feats[src + ch]!;
        }
      }
    }
  }
  return out;
}

/**
 * Logits (T, V) of one row: `ids` with P image-token ids where `image` goes, `flags` marking real
 * keys (null: all real).
 */
export function referenceLogits(w: Weights, c: MllmConfig, ids: ArrayLike<number>, image: ArrayLike<number> | null, flags: ArrayLike<number> | null = null): Float64Array {
  const { width: W, heads: H, kvHeads: Hkv, intermediate: F, vocabSize: V, rmsNormEps: eps, ropeTheta } = c.text;
  const D = W / H;
  const T = ids.length;
  const table = get(w, 'language_model.model.embed_tokens.weight', V * W);
  let x: Mat = new Float64Array(T * W);
  const img = image ? imageTokens(w, c, image) : null;
  let j = 0;
  for (let t = 0; t < T; t++) {
    const id = ids[t]!;
    for (let d = 0; d < W; d++) x[t * W + d] = id === c.imageTokenId && img ? img[j * W + d]! : table[id * W + d]!;
    if (id === c.imageTokenId && img) j++;
  }
  if (img && j !== imageTokenCount(c)) throw new Error(`reference: row has ${j} image tokens, expected ${imageTokenCount(c)}`);
  for (let l = 0; l < c.text.layers; l++) {
    const L = `language_model.model.layers.${l}.`;
    const lin = (name: string, inp: Mat, I: number, O: number) => linear(inp, T, I, get(w, `${L}${name}.weight`, I * O), O, null);
    const h = rmsNorm(x, T, W, get(w, `${L}input_layernorm.weight`, W), eps);
    const q = rope(lin('self_attn.q_proj', h, W, W), T, H, D, ropeTheta);
    const k = rope(lin('self_attn.k_proj', h, W, Hkv * D), T, Hkv, D, ropeTheta);
    const v = lin('self_attn.v_proj', h, W, Hkv * D);
    x = add(x, lin('self_attn.o_proj', attend(q, k, v, T, T, H, Hkv, D, true, flags), W, W));
    const h2 = rmsNorm(x, T, W, get(w, `${L}post_attention_layernorm.weight`, W), eps);
    const gate = lin('mlp.gate_proj', h2, W, F);
    const up = lin('mlp.up_proj', h2, W, F);
    x = add(x, lin('mlp.down_proj', gate.map((g, i) => silu(g) * up[i]!), F, W));
  }
  const hn = rmsNorm(x, T, W, get(w, 'language_model.model.norm.weight', W), eps);
  const head = c.text.tieEmbeddings ? table : get(w, 'language_model.lm_head.weight', V * W);
  return linear(hn, T, W, head, V, null);
}
