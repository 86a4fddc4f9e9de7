/**
 * The vision encoder: a CLIP-style ViT. Patches are embedded by a matmul over flattened pixels, a
 * learned CLS token is prepended, learned position embeddings added, then pre-LN blocks of
 * multi-head self-attention and a GELU MLP:
 *   x = pre_layrnorm(concat(cls, patches·Wpᵀ) + pos)
 *   x = x + out_proj(attn(layer_norm1(x)))
 *   x = x + fc2(gelu(fc1(layer_norm2(x))))
 * The LLaVA connector takes the last block's patch features (CLS dropped, no post-LN), so this
 * module returns them directly.
 *
 * Module and parameter names are CLIP's (`vision_tower.vision_model.…`, HF spelling kept, including
 * `pre_layrnorm`), so HF checkpoints map one to one (see io/model-files.ts).
 * Dimension legend: B images, C channels, S image side, p patch side, P = (S/p)² patches,
 * N = P + 1 tokens, W width, H heads, D = W/H head dim, F MLP width.
 * Non-goals: dropout, interpolating position embeddings to other image sizes.
 */
import type { Runtime } from '@keel/kernels';
import {
  Activation,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  add,
  attention,
  concat,
  expand,
  narrow,
  permute,
  randn,
  reshape,
  tensor,
  type Parameter,
  type Tensor,
} from '@keel/autograd';
import type { MllmConfig, VisionConfig } from '../config.js';
import { seedStream } from './seeds.js';

/** (B, T, W) → (B, H, T, D). */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, W] = x.shape as [number, number, number];
  return permute(reshape(x, [B, T, heads, W / heads]), [0, 2, 1, 3]);
}

/** (B, H, T, D) → (B, T, H·D). */
export function mergeHeads(x: Tensor): Tensor {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, H * D]);
}

class VisionAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  constructor(rt: Runtime, private readonly c: VisionConfig, seed: () => number) {
    super();
    const W = c.width;
    this.q_proj = this.module('q_proj', new Linear(rt, W, W, { seed: seed() }));
    this.k_proj = this.module('k_proj', new Linear(rt, W, W, { seed: seed() }));
    this.v_proj = this.module('v_proj', new Linear(rt, W, W, { seed: seed() }));
    this.out_proj = this.module('out_proj', new Linear(rt, W, W, { seed: seed() }));
  }
  /** x (B, N, W) → (B, N, W); bidirectional. */
  forward(x: Tensor): Tensor {
    const h = this.c.heads;
    const q = splitHeads(this.q_proj.forward(x), h);
    const k = splitHeads(this.k_proj.forward(x), h);
    const v = splitHeads(this.v_proj.forward(x), h);
    return this.out_proj.forward(mergeHeads(attention(q, k, v)));
  }
}

class VisionMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act: Activation;
  constructor(rt: Runtime, c: VisionConfig, seed: () => number) {
    super();
    this.fc1 = this.module('fc1', new Linear(rt, c.width, c.intermediate, { seed: seed() }));
    this.fc2 = this.module('fc2', new Linear(rt, c.intermediate, c.width, { seed: seed() }));
    this.act = new Activation(c.act);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}

export class VisionBlock extends Module {
  readonly self_attn: VisionAttention;
  readonly layer_norm1: LayerNorm;
  readonly mlp: VisionMlp;
  readonly layer_norm2: LayerNorm;
  constructor(rt: Runtime, c: VisionConfig, seed: () => number) {
    super();
    const eps = { eps: c.layerNormEps };
    this.self_attn = this.module('self_attn', new VisionAttention(rt, c, seed));
    this.layer_norm1 = this.module('layer_norm1', new LayerNorm(rt, c.width, eps));
    this.mlp = this.module('mlp', new VisionMlp(rt, c, seed));
    this.layer_norm2 = this.module('layer_norm2', new LayerNorm(rt, c.width, eps));
  }
  forward(x: Tensor): Tensor {
    x = add(x, this.self_attn.forward(this.layer_norm1.forward(x)));
    return add(x, this.mlp.forward(this.layer_norm2.forward(x)));
  }
}

class PositionEmbedding extends Module {
  readonly weight: Parameter; // (N, W)
  constructor(rt: Runtime, n: number, w: number, seed: number) {
    super();
    this.weight = this.param('weight', randn(rt, [n, w], seed, { std: 0.02 }));
  }
}

class VisionEmbeddings extends Module {
  readonly class_embedding: Parameter; // (W,)
  readonly patch_embedding: Linear; // (W, C·p·p), no bias (CLIP's conv has none)
  readonly position_embedding: PositionEmbedding;
  constructor(rt: Runtime, private readonly c: VisionConfig, seed: () => number) {
    super();
    const P = (c.imageSize / c.patchSize) ** 2;
    this.class_embedding = this.param('class_embedding', randn(rt, [c.width], seed(), { std: 0.02 }));
    this.patch_embedding = this.module('patch_embedding', new Linear(rt, c.channels * c.patchSize ** 2, c.width, { bias: false, seed: seed() }));
    this.position_embedding = this.module('position_embedding', new PositionEmbedding(rt, P + 1, c.width, seed()));
  }
  /** patches (B, P, C·p·p) → (B, N, W). */
  forward(patches: Tensor): Tensor {
    const B = patches.shape[0]!;
    const W = this.c.width;
    const cls = expand(reshape(this.class_embedding, [1, 1, W]), [B, 1, W]);
    const x = concat([cls, this.patch_embedding.forward(patches)], 1);
    return add(x, this.position_embedding.weight);
  }
}

class VisionTransformer extends Module {
  readonly embeddings: VisionEmbeddings;
  readonly pre_layrnorm: LayerNorm;
  readonly encoder: Module & { layers: ModuleList<VisionBlock> };
  constructor(rt: Runtime, c: VisionConfig, seed: () => number) {
    super();
    this.embeddings = this.module('embeddings', new VisionEmbeddings(rt, c, seed));
    this.pre_layrnorm = this.module('pre_layrnorm', new LayerNorm(rt, c.width, { eps: c.layerNormEps }));
    this.encoder = this.module('encoder', new VisionEncoderLayers(rt, c, seed));
  }
}

class VisionEncoderLayers extends Module {
  readonly layers: ModuleList<VisionBlock>;
  constructor(rt: Runtime, c: VisionConfig, seed: () => number) {
    super();
    this.layers = this.module('layers', new ModuleList(Array.from({ length: c.layers }, () => new VisionBlock(rt, c, seed))));
  }
}

/** `vision_tower`: patches (B, P, C·p·p) → patch features (B, P, W) of the last block. */
export class VisionTower extends Module {
  readonly vision_model: VisionTransformer;
  constructor(rt: Runtime, readonly config: VisionConfig, seed: number) {
    super();
    this.vision_model = this.module('vision_model', new VisionTransformer(rt, config, seedStream(seed)));
  }
  forward(patches: Tensor): Tensor {
    const c = this.config;
    const P = (c.imageSize / c.patchSize) ** 2;
    const feat = c.channels * c.patchSize ** 2;
    if (patches.rank !== 3 || patches.shape[1] !== P || patches.shape[2] !== feat) {
      throw new Error(`VisionTower.forward: patches must be (B, ${P}, ${feat}), got [${patches.shape}]`);
    }
    const vm = this.vision_model;
    let x = vm.pre_layrnorm.forward(vm.embeddings.forward(patches));
    for (const block of vm.encoder.layers) x = block.forward(x);
    // drop CLS (token 0): LLaVA's 'default' feature selection
    return narrow(x, 1, 1, P);
  }
}

/**
 * Images (B, C, S, S) flattened CHW → patches (B, P, C·p·p) in (c, py, px) order within a patch and
 * row-major patch order — the layout that makes the patch Linear equal CLIP's stride-p conv.
 */
export function patchify(images: Float32Array, batch: number, c: VisionConfig): Float32Array {
  const { channels: C, imageSize: S, patchSize: p } = c;
  if (images.length !== batch * C * S * S) {
    throw new Error(`patchify: expected ${batch}×${C}×${S}×${S} = ${batch * C * S * S} values, got ${images.length}`);
  }
  const g = S / p;
  const out = new Float32Array(images.length);
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let gy = 0; gy < g; gy++) {
      for (let gx = 0; gx < g; gx++) {
        for (let ch = 0; ch < C; ch++) {
          for (let py = 0; py < p; py++) {
            const row = ((b * C + ch) * S + gy * p + py) * S + gx * p;
            for (let px = 0; px < p; px++) out[o++] = images[row + px]!;
          }
        }
      }
    }
  }
  return out;
}

/** Uploads patchified images as a (B, P, C·p·p) tensor. */
export function patchTensor(rt: Runtime, images: Float32Array, batch: number, c: MllmConfig): Tensor {
  const v = c.vision;
  const P = (v.imageSize / v.patchSize) ** 2;
  return tensor(rt, patchify(images, batch, v), [batch, P, v.channels * v.patchSize ** 2]);
}
