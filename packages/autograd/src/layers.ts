/**
 * Simple layers on Module: Linear (HF weight layout), activations, Sequential and an MLP builder.
 * Initialization is seeded: the same seed gives the same parameters on every device (values are
 * drawn on the CPU by creation.ts's generator).
 *
 * Dimensions: B… leading (batch) dims, I input features, O output features.
 * Non-goals: dropout, normalization layers, lazy shape inference.
 */
import type { Runtime } from '@keel/kernels';
import { rand } from './creation.js';
import { Module, type Parameter } from './module.js';
import { gelu, relu, sigmoid, silu, tanh } from './ops/elementwise.js';
import { linear } from './ops/nn.js';
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

  /** x (B…, I) → (B…, O). */
  forward(x: Tensor): Tensor {
    if (x.rank < 2 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new Error(`Linear.forward: expected input (…, ${this.inFeatures}) of rank ≥ 2, got [${x.shape}] (weight [${this.weight.shape}])`);
    }
    // one fused kernel: x·Wᵀ with the bias added in the matmul epilogue
    return linear(x, this.weight, this.bias);
  }
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
