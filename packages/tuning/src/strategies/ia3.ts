/**
 * (IA)³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
 * In-Context Learning"): learned vectors that rescale inner activations elementwise,
 *   keys, values:     k = l_k ⊙ (x·W_kᵀ),   v = l_v ⊙ (x·W_vᵀ)          (outputs of k_proj, v_proj)
 *   FFN intermediate: y = (l_ff ⊙ h)·W_downᵀ,  h = silu(gate(x)) ⊙ up(x)   (input of down_proj)
 * every vector initialized to 1, so a fresh (IA)³ computes the base function exactly. The paper adds
 * three vectors per Transformer block (l_k, l_v, l_ff) and nothing else; here the targets are globs, as
 * in PEFT, and `feedforward` says which targets scale their input (FFN) instead of their output.
 *
 * As PEFT stores them, l has shape (O, 1) on an output-scaled Linear and (1, I) on an input-scaled
 * one, so `ia3FoldWeight(W, l) = W ⊙ l` (broadcast) is the merge for both:
 *   output-scaled: (x·Wᵀ + b) ⊙ l = x·(l ⊙ W)ᵀ + l ⊙ b     → W rows and b scaled
 *   input-scaled:  (x ⊙ l)·Wᵀ + b = x·(W ⊙ lᵀ)ᵀ + b          → W columns scaled, b unchanged
 * merge() writes the folded weights into the base Linear and removes every hook.
 *
 * Files: PEFT's IA3 layout. State '<path>.ia3_l' ⇄ key 'base_model.model.<path>.ia3_l'; adapter_config
 * peft_type 'IA3', target_modules and feedforward_modules = the resolved module paths.
 *
 * Dimension legend: I input features, O output features, B… leading (batch, token) dims.
 * Non-goals: unmerge, several (IA)³ adapters on one Linear, the paper's extra losses (unlikelihood,
 * length normalization: the T-Few recipe, not the method).
 */
import { Linear, Parameter, mul, noGrad, ones, reshape, tidy, type LinearHook, type Tensor } from '@keel/autograd';
import type { MultimodalModel } from '@keel/mllm';
import { z } from 'zod';
import { checkState } from './selective.js';
import type { StrategyDefinition, StrategyInstance, TensorState } from './strategy.js';
import { selectLinears, targetPatterns, targetRegExp } from './targets.js';

export const ia3ConfigSchema = z
  .object({
    /** Module name globs of the Linear layers to rescale (PEFT's target_modules). */
    targets: targetPatterns.default(['language_model.**.k_proj', 'language_model.**.v_proj', 'language_model.**.down_proj']),
    /**
     * Globs of the targets that rescale their input (the FFN's down projection) rather than their
     * output (PEFT's feedforward_modules). Each must match at least one target.
     */
    feedforward: z.array(z.string().min(1, 'a feedforward pattern must not be empty')).default(['language_model.**.down_proj']),
  })
  .strict();

export type Ia3Config = z.infer<typeof ia3ConfigSchema>;

/** The rescaled output y ⊙ l: y (B…, O), l (O, 1) → (B…, O). */
export function ia3ScaleOutput(y: Tensor, l: Tensor): Tensor {
  return mul(y, reshape(l, [l.shape[0]!]));
}

/** The rescaled input x ⊙ l: x (B…, I), l (1, I) → (B…, I). */
export function ia3ScaleInput(x: Tensor, l: Tensor): Tensor {
  return mul(x, reshape(l, [l.shape[1]!]));
}

/** W ⊙ l: W (O, I) with l (O, 1) scales rows, with l (1, I) columns. merge() writes exactly this. */
export function ia3FoldWeight(w: Tensor, l: Tensor): Tensor {
  return mul(w, l);
}

interface Scaling {
  path: string;
  linear: Linear;
  feedforward: boolean;
  l: Parameter; // (O, 1) or (1, I)
  hook: LinearHook;
}

const OWNER = 'ia3';

function makeScaling(path: string, linear: Linear, feedforward: boolean, enabled: () => boolean): Scaling {
  if (linear.hooks.some((h) => h.owner === OWNER)) throw new Error(`ia3: '${path}' already carries (IA)³ vectors; remove the first adapter before applying another`);
  const init = ones(linear.weight.rt, feedforward ? [1, linear.inFeatures] : [linear.outFeatures, 1]);
  const l = new Parameter(init);
  init.dispose();
  const hook: LinearHook = feedforward
    ? { owner: OWNER, input: (x) => (enabled() ? ia3ScaleInput(x, l) : x) }
    : { owner: OWNER, output: (_x, y) => (enabled() ? ia3ScaleOutput(y, l) : y) };
  linear.hooks.push(hook);
  return { path, linear, feedforward, l, hook };
}

function detach(s: Scaling): void {
  const i = s.linear.hooks.indexOf(s.hook);
  if (i >= 0) s.linear.hooks.splice(i, 1);
}

/** The targeted paths that are feedforward (input-scaled); a pattern matching no target is an error. */
function feedforwardPaths(targets: readonly string[], patterns: readonly string[]): Set<string> {
  const out = new Set<string>();
  const unmatched: string[] = [];
  for (const p of patterns) {
    const re = targetRegExp(p);
    const hits = targets.filter((t) => re.test(t));
    if (hits.length === 0) unmatched.push(`'${p}'`);
    for (const h of hits) out.add(h);
  }
  if (unmatched.length) {
    throw new Error(`ia3: feedforward pattern${unmatched.length > 1 ? 's' : ''} ${unmatched.join(', ')} match${unmatched.length > 1 ? '' : 'es'} none of the targeted modules (feedforward must be a subset of targets; targeted: ${targets.slice(0, 4).join(', ')}${targets.length > 4 ? ', …' : ''})`);
  }
  return out;
}

/** Overwrites `dst` (a base parameter) with `value`'s data. */
function writeInto(dst: Tensor, value: Tensor): void {
  dst.rt.copy(value.buffer, dst.buffer, value.size * 4);
}

function ia3Instance(model: MultimodalModel, c: Ia3Config): StrategyInstance {
  const linears = selectLinears(model, c.targets, 'ia3');
  const ff = feedforwardPaths([...linears.keys()], c.feedforward);
  let enabled = true;
  let merged = false;
  const scalings: Scaling[] = [];
  const release = () => {
    for (const s of scalings) {
      detach(s);
      s.l.dispose();
    }
  };
  try {
    for (const [path, linear] of linears) scalings.push(makeScaling(path, linear, ff.has(path), () => enabled));
  } catch (e) {
    release();
    throw e;
  }
  const trainable = new Map<string, Parameter>(scalings.map((s) => [`${s.path}.ia3_l`, s.l]));
  const live = (what: string) => {
    if (merged) throw new Error(`ia3.${what}: the vectors were merged into the base weights; nothing is left to switch`);
  };
  return {
    trainable,
    modules: scalings.map((s) => s.path),
    merge() {
      live('merge');
      if (!enabled) throw new Error('ia3.merge: the adapter is disabled; enable() it first (merging a disabled adapter would be a silent no-op)');
      for (const s of scalings) {
        const others = s.linear.hooks.filter((h) => h !== s.hook);
        if (others.length) throw new Error(`ia3.merge: '${s.path}' carries other hooks (${others.map((h) => h.owner).join(', ')}); folding (IA)³ under them would change their inputs`);
      }
      for (const s of scalings) {
        tidy(() =>
          noGrad(() => {
            writeInto(s.linear.weight, ia3FoldWeight(s.linear.weight, s.l));
            // an output scaling also scales the bias; an input scaling leaves it alone
            if (!s.feedforward && s.linear.bias) writeInto(s.linear.bias, ia3ScaleOutput(s.linear.bias, s.l));
          }),
        );
        detach(s);
      }
      merged = true;
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
      checkState('ia3', trainable, state);
      for (const [name, p] of trainable) p.rt.write(p.buffer, state.get(name)!.data);
    },
    extraStateBytes: () => [...trainable.values()].reduce((s, p) => s + p.size * 4, 0),
    remove() {
      release();
      merged = true;
    },
  };
}

const PEFT_PREFIX = 'base_model.model.';
const PEFT_KEY = /\.ia3_l$/;

export const ia3Strategy: StrategyDefinition<Ia3Config> = {
  name: 'ia3',
  paradigm: 'additive',
  description: '(IA)³: learned vectors rescaling keys, values (k/v_proj outputs) and the FFN intermediate (down_proj input); mergeable, PEFT-compatible files',
  schema: ia3ConfigSchema,
  mergeable: true,
  peft: {
    config: (c, modules) => {
      const ff = modules.filter((m) => c.feedforward.some((p) => targetRegExp(p).test(m)));
      return {
        peft_type: 'IA3',
        task_type: null,
        target_modules: [...modules],
        feedforward_modules: ff,
        fan_in_fan_out: false,
        init_ia3_weights: true,
        inference_mode: true,
        modules_to_save: null,
      };
    },
    // '<path>.ia3_l' ⇄ 'base_model.model.<path>.ia3_l'
    fileKey: (name) => `${PEFT_PREFIX}${name}`,
    stateName: (key) => (key.startsWith(PEFT_PREFIX) && PEFT_KEY.test(key) ? key.slice(PEFT_PREFIX.length) : null),
  },
  apply: ia3Instance,
};
