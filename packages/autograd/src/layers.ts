/**
 * Simple layers on Module: Linear (HF weight layout), Embedding, LayerNorm, RMSNorm, activations,
 * Sequential, ModuleList and an MLP builder.
 * Initialization is seeded: the same seed gives the same parameters on every device (values are
 * drawn on the CPU by creation.ts's generator).
 *
 * Dimensions: B… leading (batch) dims, I input features, O output features.
 * Non-goals: dropout, normalization layers, lazy shape inference.
 */
import type { Runtime } from '@keel/kernels';
import { ones, rand, randn, zeros } from './creation.js';
import { Module, type Parameter } from './module.js';
import { gelu, relu, sigmoid, silu, tanh } from './ops/elementwise.js';
import { embedding, layerNorm, linear, rmsNorm } from './ops/nn.js';
import type { Tensor } from './tensor.js';

/** A module mapping one tensor to one tensor (what Sequential chains). */
export abstract class UnaryModule extends Module {
  abstract forward(x: Tensor): Tensor;
}

let autoSeed = 0x5eed;
/** A fresh seed when the caller gives none (deterministic for a given construction order). */
function nextSeed(): number {
  autoSeed = (autoSeed + 0x9e3779b1) >>> 0;
  return autoSeed;
}

export interface LinearOptions {
  /** Add a bias (default true). */
  bias?: boolean;
  /** Seed of the initialization (default: a per-process counter). */
  seed?: number;
}

/**
 * y = x·Wᵀ + b with W stored (O, I) and b (O,) — the PyTorch/HF layout, so checkpoints load as is.
 * Init as PyTorch: W, b ~ U(−1/√I, 1/√I).
 */
export class Linear extends UnaryModule {
  readonly weight: Parameter; // (O, I)
  readonly bias: Parameter | null; // (O,)

  constructor(
    rt: Runtime,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    if (!Number.isInteger(inFeatures) || !Number.isInteger(outFeatures) || inFeatures <= 0 || outFeatures <= 0) {
      throw new Error(`Linear: features must be positive integers, got in=${inFeatures}, out=${outFeatures}`);
    }
    const seed = options.seed ?? nextSeed();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param('weight', rand(rt, [outFeatures, inFeatures], seed, { low: -bound, high: bound }));
    this.bias = (options.bias ?? true) ? this.param('bias', rand(rt, [outFeatures], (seed ^ 0x6a09e667) >>> 0, { low: -bound, high: bound })) : null;
  }

  /**
   * Extension points for tuning methods (LoRA, DoRA, (IA)³, adapters …), applied in order:
   * x ← input(x); W ← weight(W); y = x·Wᵀ + b; y ← output(x, y). A hook that only transforms the
   * weight makes the merged layer (W replaced by weight(W)) compute exactly the same function.
   */
  readonly hooks: LinearHook[] = [];

  /** The weight the forward uses: `weight` after every hook's weight transform. */
  effectiveWeight(): Tensor {
    return this.hooks.reduce<Tensor>((w, h) => (h.weight ? h.weight(w) : w), this.weight);
  }

  /** x (B…, I) → (B…, O). */
  forward(x: Tensor): Tensor {
    if (x.rank < 2 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new Error(`Linear.forward: expected input (…, ${this.inFeatures}) of rank ≥ 2, got [${x.shape}] (weight [${this.weight.shape}])`);
    }
    if (this.hooks.length === 0) return linear(x, this.weight, this.bias); // x·Wᵀ with the bias in the matmul epilogue
    const input = this.hooks.reduce((h, k) => (k.input ? k.input(h) : h), x);
    const y = linear(input, this.effectiveWeight(), this.bias);
    return this.hooks.reduce((out, k) => (k.output ? k.output(input, out) : out), y);
  }
}

/** A transform of a Linear's input, weight or output (see Linear.hooks). */
export interface LinearHook {
  /** Who installed it (for messages and removal). */
  readonly owner: string;
  input?(x: Tensor): Tensor;
  weight?(w: Tensor): Tensor;
  output?(x: Tensor, y: Tensor): Tensor;
}

export type ActivationName = 'relu' | 'gelu' | 'gelu_erf' | 'tanh' | 'silu' | 'sigmoid';

const activations: Record<ActivationName, (x: Tensor) => Tensor> = {
  relu,
  gelu: (x) => gelu(x, 'tanh'),
  gelu_erf: (x) => gelu(x, 'erf'),
  tanh,
  silu,
  sigmoid,
};

/** An elementwise activation as a layer (no parameters). */
export class Activation extends UnaryModule {
  private readonly fn: (x: Tensor) => Tensor;
  constructor(readonly kind: ActivationName | ((x: Tensor) => Tensor)) {
    super();
    if (typeof kind === 'function') this.fn = kind;
    else {
      const fn = activations[kind];
      if (!fn) throw new Error(`Activation: unknown activation '${String(kind)}' (known: ${Object.keys(activations).join(', ')})`);
      this.fn = fn;
    }
  }
  forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}

/** A lookup table `weight` (V, C); forward(ids (…) i32) → (…, C). Init N(0, std²), std default 0.02. */
export class Embedding extends Module {
  readonly weight: Parameter; // (V, C)
  constructor(rt: Runtime, readonly count: number, readonly dim: number, options: { seed?: number; std?: number } = {}) {
    super();
    if (!Number.isInteger(count) || !Number.isInteger(dim) || count <= 0 || dim <= 0) {
      throw new Error(`Embedding: count and dim must be positive integers, got count=${count}, dim=${dim}`);
    }
    this.weight = this.param('weight', randn(rt, [count, dim], options.seed ?? nextSeed(), { std: options.std ?? 0.02 }));
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** LayerNorm over the last axis with affine weight (ones) and bias (zeros), both (C,). */
export class LayerNorm extends UnaryModule {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(rt: Runtime, readonly dim: number, readonly options: { eps?: number } = {}) {
    super();
    this.weight = this.param('weight', ones(rt, [dim]));
    this.bias = this.param('bias', zeros(rt, [dim]));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.options);
  }
}

/** RMSNorm over the last axis with a weight (C,) initialized to ones (Llama). */
export class RMSNorm extends UnaryModule {
  readonly weight: Parameter;
  constructor(rt: Runtime, readonly dim: number, readonly options: { eps?: number } = {}) {
    super();
    this.weight = this.param('weight', ones(rt, [dim]));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.options);
  }
}

/** An indexed list of submodules registered as '0', '1', … (no forward of its own). */
export class ModuleList<M extends Module> extends Module {
  readonly items: readonly M[];
  constructor(items: readonly M[]) {
    super();
    this.items = items.map((m, i) => this.module(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new Error(`ModuleList.at: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** Applies its layers in order; they are registered as children '0', '1', …. */
export class Sequential extends UnaryModule {
  readonly layers: readonly UnaryModule[];
  constructor(...layers: UnaryModule[]) {
    super();
    this.layers = layers.map((l, i) => this.module(String(i), l));
  }
  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, l) => l.forward(h), x);
  }
}

export interface MlpOptions {
  activation?: ActivationName;
  bias?: boolean;
  /** Layer i is seeded with seed + i (default: per-process counter). */
  seed?: number;
}

/** Linear → act → … → Linear over `sizes` = [in, hidden…, out] (no activation after the last). */
export function mlp(rt: Runtime, sizes: readonly number[], options: MlpOptions = {}): Sequential {
  if (sizes.length < 2) throw new Error(`mlp: need at least [in, out] sizes, got [${sizes}]`);
  const layers: UnaryModule[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const seed = options.seed !== undefined ? options.seed + i : undefined;
    layers.push(new Linear(rt, sizes[i]!, sizes[i + 1]!, { bias: options.bias ?? true, ...(seed !== undefined ? { seed } : {}) }));
    if (i + 2 < sizes.length) layers.push(new Activation(options.activation ?? 'gelu'));
  }
  return new Sequential(...layers);
}
