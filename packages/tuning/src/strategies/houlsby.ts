/**
 * Bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP"): a small
 * residual MLP on the output of a sub-layer's projection, before that sub-layer's skip connection:
 *   y ← y + up(act(down(y))),   down: W_d (m, O), b_d (m);   up: W_u (O, m), b_u (O)
 * The paper places two per Transformer layer: after the attention's output projection and after the
 * feed-forward block's down projection, which here are the outputs of `self_attn.o_proj` and
 * `mlp.down_proj` (the default targets), applied with a Linear output hook.
 *
 * Init: the paper initializes adapters near the identity (small zero-mean weights, so the frozen
 * network starts unchanged up to a small perturbation). keel makes it exact: W_d ~ N(0, 0.01²)
 * truncated to ±2σ, W_u = 0 and both biases 0, so up(…) = 0 and a fresh adapter computes the base
 * function bit for bit (the same role as LoRA's B = 0). With W_u = 0 only the up projection gets a
 * gradient on the first step; the down projection starts learning from the second.
 * `bottleneckAdapter` is the one function computing the adapted output.
 *
 * Not mergeable: act(…) between down and up makes the adapter a new sub-network, not a weight delta.
 * Files: keel's own names (PEFT has no bottleneck adapter): '<path>.adapter_down.weight' (m, O),
 * '<path>.adapter_down.bias' (m), '<path>.adapter_up.weight' (O, m), '<path>.adapter_up.bias' (O).
 *
 * Dimension legend: B… leading (batch, token) dims, O the target's output features, m bottleneck.
 * Non-goals: training the layer norms alongside (the paper does; one method per model here), adapter
 * fusion or stacking, Pfeiffer-style single placement (give one target pattern instead).
 */
import { Linear, Parameter, add, gelu, linear, relu, seededRandom, silu, tensor, zeros, type LinearHook, type Tensor } from '@keel/autograd';
import { streamSeed, type MultimodalModel } from '@keel/mllm';
import { z } from 'zod';
import { checkState } from './selective.js';
import type { StrategyDefinition, StrategyInstance, TensorState } from './strategy.js';
import { selectLinears, targetPatterns } from './targets.js';

export const HOULSBY_ACTIVATIONS = ['gelu', 'relu', 'silu'] as const;
export type HoulsbyActivation = (typeof HOULSBY_ACTIVATIONS)[number];

export const houlsbyConfigSchema = z
  .object({
    /** Bottleneck width m (the paper sweeps 8, 64, 256). */
    bottleneck: z.number().int('bottleneck must be an integer').positive('bottleneck must be > 0').default(16),
    /** Nonlinearity between down and up: GELU (tanh approximation), ReLU or SiLU. */
    activation: z.enum(HOULSBY_ACTIVATIONS, { error: "activation must be 'gelu', 'relu' or 'silu'" }).default('gelu'),
    /** Globs of the Linear layers whose output gets an adapter. */
    targets: targetPatterns.default(['language_model.**.self_attn.o_proj', 'language_model.**.mlp.down_proj']),
    /** Seed of the down projections' init (each target draws from its own stream). */
    seed: z.number().int('seed must be an integer').nonnegative('seed must be ≥ 0').default(0),
  })
  .strict();

export type HoulsbyConfig = z.infer<typeof houlsbyConfigSchema>;

const ACT: Record<HoulsbyActivation, (x: Tensor) => Tensor> = { gelu: (x) => gelu(x, 'tanh'), relu, silu };

/** The adapter's weights: down (m, O) + (m), up (O, m) + (O). */
export interface BottleneckWeights {
  downWeight: Tensor;
  downBias: Tensor;
  upWeight: Tensor;
  upBias: Tensor;
}

/** y + up(act(down(y))): y (B…, O) → (B…, O). */
export function bottleneckAdapter(y: Tensor, w: BottleneckWeights, activation: HoulsbyActivation): Tensor {
  return add(y, linear(ACT[activation](linear(y, w.downWeight, w.downBias)), w.upWeight, w.upBias));
}

/** N(0, std²) truncated to ±2·std (resampled), row-major values. */
function truncatedNormal(n: number, std: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; ) {
    const z = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
    if (Math.abs(z) <= 2) out[i++] = z * std;
  }
  return out;
}

/** Init scale of W_d (see the file comment). */
const DOWN_STD = 1e-2;

interface Adapter {
  path: string;
  linear: Linear;
  params: Map<string, Parameter>; // 'adapter_down.weight' …
  hook: LinearHook;
}

/** The strategy's registered name, used as hook owner and in messages. */
const METHOD = 'adapter';

function param(t: Tensor): Parameter {
  const p = new Parameter(t);
  t.dispose();
  return p;
}

function makeAdapter(path: string, target: Linear, c: HoulsbyConfig, enabled: () => boolean): Adapter {
  if (target.hooks.some((h) => h.owner === METHOD)) throw new Error(`${METHOD}: '${path}' already carries a bottleneck adapter; remove the first one before applying another`);
  const rt = target.weight.rt;
  const O = target.outFeatures;
  const m = c.bottleneck;
  const w = {
    downWeight: param(tensor(rt, truncatedNormal(m * O, DOWN_STD, streamSeed(c.seed, path)), [m, O])),
    downBias: param(zeros(rt, [m])),
    upWeight: param(zeros(rt, [O, m])),
    upBias: param(zeros(rt, [O])),
  } satisfies BottleneckWeights;
  const params = new Map([
    ['adapter_down.weight', w.downWeight],
    ['adapter_down.bias', w.downBias],
    ['adapter_up.weight', w.upWeight],
    ['adapter_up.bias', w.upBias],
  ]);
  const hook: LinearHook = { owner: METHOD, output: (_x, y) => (enabled() ? bottleneckAdapter(y, w, c.activation) : y) };
  target.hooks.push(hook);
  return { path, linear: target, params, hook };
}

function release(ad: Adapter): void {
  const i = ad.linear.hooks.indexOf(ad.hook);
  if (i >= 0) ad.linear.hooks.splice(i, 1);
  for (const p of ad.params.values()) p.dispose();
}

function houlsbyInstance(model: MultimodalModel, c: HoulsbyConfig): StrategyInstance {
  let enabled = true;
  let removed = false;
  const adapters: Adapter[] = [];
  try {
    for (const [path, target] of selectLinears(model, c.targets, METHOD)) adapters.push(makeAdapter(path, target, c, () => enabled));
  } catch (e) {
    adapters.forEach(release);
    throw e;
  }
  const trainable = new Map<string, Parameter>();
  for (const ad of adapters) for (const [suffix, p] of ad.params) trainable.set(`${ad.path}.${suffix}`, p);
  const live = (what: string) => {
    if (removed) throw new Error(`${METHOD}.${what}: the adapters were removed`);
  };
  return {
    trainable,
    modules: adapters.map((ad) => ad.path),
    merge() {
      throw new Error(`${METHOD}.merge: bottleneck adapters cannot be merged (the nonlinearity between down and up makes them a new sub-network, not a weight delta)`);
    },
    setEnabled(on) {
      live(on ? 'enable' : 'disable');
      enabled = on;
    },
    async state() {
      const out = new Map<string, TensorState>();
      for (const [name, p] of trainable) out.set(name, { shape: [...p.shape], data: (await p.toArray()) as Float32Array });
      return out;
    },
    loadState(state) {
      live('loadState');
      checkState(METHOD, trainable, state);
      for (const [name, p] of trainable) p.rt.write(p.buffer, state.get(name)!.data);
    },
    extraStateBytes: () => [...trainable.values()].reduce((s, p) => s + p.size * 4, 0),
    remove() {
      adapters.forEach(release);
      removed = true;
    },
  };
}

export const houlsbyStrategy: StrategyDefinition<HoulsbyConfig> = {
  name: METHOD,
  paradigm: 'additive',
  description: 'Houlsby bottleneck adapters: y + up(act(down(y))) after attention (o_proj) and the MLP (down_proj); up = 0 at init',
  schema: houlsbyConfigSchema,
  mergeable: false,
  apply: houlsbyInstance,
};
