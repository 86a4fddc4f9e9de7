/**
 * BitFit (Ben Zaken et al. 2022): train only the bias terms. In keel's model the biases live in the
 * vision tower (attention and MLP linears, LayerNorms), the projector's two linears and nothing else:
 * the Llama decoder has no bias terms at all (bias-free projections, RMSNorm has a weight only), so
 * BitFit here adapts how the image reaches the language model, never the decoder itself. Norm
 * weights are not biases and stay frozen (use `full` with norm targets for LayerNorm-only tuning).
 *
 * Non-goals: adding biases where the architecture has none.
 */
import { z } from 'zod';
import { selectiveInstance } from './selective.js';
import type { StrategyDefinition } from './strategy.js';
import { selectParameters, targetPatterns } from './targets.js';

export const bitfitConfigSchema = z
  .object({
    /** Module name globs whose biases train; default every bias in the model. */
    targets: targetPatterns.default(['**']),
  })
  .strict();

export type BitfitConfig = z.infer<typeof bitfitConfigSchema>;

const isBias = (name: string) => name === 'bias' || name.endsWith('.bias');

export const bitfitStrategy: StrategyDefinition<BitfitConfig> = {
  name: 'bitfit',
  paradigm: 'selective',
  description: 'BitFit: train only the bias terms (vision tower and projector; the Llama decoder has none)',
  schema: bitfitConfigSchema,
  mergeable: true,
  apply(model, config) {
    return selectiveInstance('bitfit', selectParameters(model, config.targets, 'bitfit', isBias, 'bias parameter'));
  },
};
