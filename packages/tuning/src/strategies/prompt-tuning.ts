/**
 * Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning"):
 * n learned embeddings P (n, W) — a soft prompt — placed before the text; the whole model stays frozen
 * and only P trains:
 *   x = [pad…, P, embed(<bos> [<image>…] prompt answer)]          (B, n + T, W)
 * The model does the placement (MultimodalModel.softPrompt): after each row's left padding, so a
 * padded generation row sees what it would see alone; the soft positions' logits are dropped, and
 * during decoding P enters the KV cache at the first step. The soft tokens take n positions of their
 * own (the text starts at position n), beyond the config's maxPositions budget for text.
 *
 * Init (the paper compares both): 'vocab' copies the embeddings of n distinct tokens drawn from the
 * vocabulary with the seed (the image placeholder token excluded; the paper draws from the 5,000 most
 * common tokens, keel has no frequency table), 'random' draws U(−0.5, 0.5) as the paper's random
 * uniform init. A soft prompt changes the function from the first step — no init is "the base".
 *
 * Disabled = base exactly (the soft prompt is taken off the model). Not mergeable: the prompt is
 * extra input, not a weight.
 * Files: PEFT's prompt-tuning layout: one tensor 'prompt_embeddings' (n, W), adapter_config peft_type
 * 'PROMPT_TUNING' with num_virtual_tokens, token_dim, num_layers, num_attention_heads. PEFT prepends
 * the prompt before any padding; for unpadded rows the two placements coincide.
 *
 * Dimension legend: B rows, T tokens, n soft tokens, W text width, V vocabulary.
 * Non-goals: init from a text (PEFT's TEXT init), prompt ensembles, several soft prompts per model.
 */
import { Parameter, indexSelect, noGrad, rand, tensor, tidy, type Tensor } from '@keel/autograd';
import { Rng, streamSeed, type MultimodalModel } from '@keel/mllm';
import { z } from 'zod';
import { checkState } from './selective.js';
import type { StrategyDefinition, StrategyInstance, TensorState } from './strategy.js';

export const promptTuningConfigSchema = z
  .object({
    /** Soft tokens n (the paper finds gains flatten beyond about 20). */
    tokens: z.number().int('tokens must be an integer').positive('tokens must be > 0').default(8),
    /** 'vocab': copies of random vocabulary embeddings; 'random': U(−0.5, 0.5). */
    init: z.enum(['vocab', 'random'], { error: "init must be 'vocab' or 'random'" }).default('vocab'),
    /** Seed of the init (which tokens, or which uniform values). */
    seed: z.number().int('seed must be an integer').nonnegative('seed must be ≥ 0').default(0),
  })
  .strict();

export type PromptTuningConfig = z.infer<typeof promptTuningConfigSchema>;

/** The state name (and PEFT file key) of the soft prompt. */
export const PROMPT_EMBEDDINGS = 'prompt_embeddings';

/** n distinct vocabulary ids drawn with `seed`, the image placeholder excluded (n ≤ V − 1). */
export function sampleVocabIds(vocabSize: number, imageTokenId: number, n: number, seed: number): Int32Array {
  const pool = Array.from({ length: vocabSize }, (_, i) => i).filter((i) => i !== imageTokenId);
  if (n > pool.length) throw new Error(`prompt: init 'vocab' needs ${n} distinct tokens but the vocabulary offers ${pool.length}; use fewer tokens or init 'random'`);
  const rng = new Rng(streamSeed('prompt_embeddings', seed));
  // partial Fisher–Yates: the first n entries become a uniform sample without replacement
  for (let i = 0; i < n; i++) {
    const j = rng.int(i, pool.length - 1);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return Int32Array.from(pool.slice(0, n));
}

/** The initial soft prompt (n, W) on the device. */
function initialPrompt(model: MultimodalModel, c: PromptTuningConfig): Tensor {
  const t = model.config.text;
  if (c.init === 'random') return rand(model.rt, [c.tokens, t.width], streamSeed('prompt_embeddings', c.seed), { low: -0.5, high: 0.5 });
  const ids = sampleVocabIds(t.vocabSize, model.config.imageTokenId, c.tokens, c.seed);
  const table = model.language_model.model.embed_tokens.weight; // (V, W)
  return noGrad(() => tidy(() => indexSelect(table, 0, tensor(model.rt, ids, [ids.length], { dtype: 'i32' }))));
}

/** The model dimensions PEFT's config records, by config object (filled by apply; see `peft.config`). */
const peftDims = new WeakMap<PromptTuningConfig, { token_dim: number; num_layers: number; num_attention_heads: number }>();

function promptInstance(model: MultimodalModel, c: PromptTuningConfig): StrategyInstance {
  if (model.softPrompt) throw new Error('prompt: the model already carries a soft prompt; remove the first one before applying another');
  const init = initialPrompt(model, c);
  const prompt = new Parameter(init); // (n, W)
  init.dispose();
  const t = model.config.text;
  peftDims.set(c, { token_dim: t.width, num_layers: t.layers, num_attention_heads: t.heads });
  model.softPrompt = prompt;
  let removed = false;
  const trainable = new Map<string, Parameter>([[PROMPT_EMBEDDINGS, prompt]]);
  const live = (what: string) => {
    if (removed) throw new Error(`prompt.${what}: the soft prompt was removed`);
  };
  return {
    trainable,
    modules: ['language_model.model.embed_tokens'],
    merge() {
      throw new Error('prompt.merge: a soft prompt cannot be merged (it is extra input tokens, not a weight)');
    },
    setEnabled(on) {
      live(on ? 'enable' : 'disable');
      model.softPrompt = on ? prompt : null;
    },
    async state() {
      return new Map<string, TensorState>([[PROMPT_EMBEDDINGS, { shape: [...prompt.shape], data: (await prompt.toArray()) as Float32Array }]]);
    },
    loadState(state) {
      live('loadState');
      checkState('prompt', trainable, state);
      prompt.rt.write(prompt.buffer, state.get(PROMPT_EMBEDDINGS)!.data);
    },
    extraStateBytes: () => prompt.size * 4,
    remove() {
      if (removed) return;
      if (model.softPrompt === prompt) model.softPrompt = null;
      prompt.dispose();
      removed = true;
    },
  };
}

export const promptTuningStrategy: StrategyDefinition<PromptTuningConfig> = {
  name: 'prompt',
  paradigm: 'additive',
  description: 'Prompt tuning: n learned soft-token embeddings placed before the text (vocab or uniform init); PEFT-compatible files',
  schema: promptTuningConfigSchema,
  mergeable: false,
  peft: {
    config: (c) => {
      const dims = peftDims.get(c);
      if (!dims) throw new Error('prompt: PEFT config asked for a config that was never applied to a model');
      return {
        peft_type: 'PROMPT_TUNING',
        task_type: 'CAUSAL_LM',
        num_virtual_tokens: c.tokens,
        ...dims,
        num_transformer_submodules: 1,
        prompt_tuning_init: c.init === 'vocab' ? 'SAMPLE_VOCAB' : 'RANDOM',
        prompt_tuning_init_text: null,
        tokenizer_name_or_path: null,
        inference_mode: true,
      };
    },
    fileKey: (name) => name,
    stateName: (key) => (key === PROMPT_EMBEDDINGS ? key : null),
  },
  apply: promptInstance,
};
