/**
 * Full fine-tuning and module selection: train every base parameter, or the subset whose names match
 * `targets`. One method covers the survey's module-selection variants, e.g.
 *   projector only     targets: ['multi_modal_projector.**']
 *   vision tower       targets: ['vision_tower.**']
 *   last 2 LLM layers  targets: ['language_model.model.layers.2', 'language_model.model.layers.3']
 *   LayerNorm-only     targets: ['**.layer_norm?', '**.pre_layrnorm', '**.*_layernorm', 'language_model.model.norm']
 * (the glob matches a parameter's full name or any module above it; see targets.ts).
 *
 * Non-goals: per-group learning rates (the handle's optimizer takes one lr), layer-wise decay.
 */
import { z } from 'zod';
import { selectiveInstance } from './selective.js';
import type { StrategyDefinition } from './strategy.js';
import { selectParameters, targetPatterns } from './targets.js';

export const fullConfigSchema = z
  .object({
    /** Parameter or module name globs; the default trains everything. */
    targets: targetPatterns.default(['**']),
  })
  .strict();

export type FullConfig = z.infer<typeof fullConfigSchema>;

export const fullStrategy: StrategyDefinition<FullConfig> = {
  name: 'full',
  paradigm: 'selective',
  description: 'full fine-tuning, or only the parameters under `targets` (projector, vision tower, last layers, norms …)',
  schema: fullConfigSchema,
  mergeable: true,
  apply(model, config) {
    return selectiveInstance('full', selectParameters(model, config.targets, 'full'));
  },
};
