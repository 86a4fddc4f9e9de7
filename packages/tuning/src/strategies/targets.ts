/**
 * Target selection by module-name patterns, shared by every method. Patterns are autograd's
 * dotted-name globs (`*` one path segment, `**` any number, a pattern also matching everything
 * below a module it names), tested against the model's HF-style names, e.g.
 *   'multi_modal_projector.**'                   the projector
 *   'language_model.**.q_proj'                   every decoder layer's query projection
 *   'language_model.model.layers.3'              one decoder layer (everything below it)
 *   '**.layer_norm?', '**.*layernorm', '**.norm' every normalization layer
 *   'connector.**'                               the connector, whatever its family
 * `connector` is an alias of the connector's module name: a pattern that is exactly `connector` or
 * starts with `connector.` matches what the same pattern with `multi_modal_projector` in its place
 * matches. Every connector family keeps all of its parameters under `multi_modal_projector.` (the
 * MLP's linear_1/linear_2, the resampler's latents, layers.{i}.cross_attn.q_proj, …), so a method
 * names "the connector" with one pattern that works on every architecture; family-specific names
 * below it (`connector.linear_1`) still need that family. Only the leading segment is an alias:
 * `**.connector` means a module named connector, which keel's models do not have.
 * A pattern that selects nothing is an error naming it: a typo must not silently train nothing.
 *
 * Non-goals: regular-expression targets (globs cover the model's names), exclusion lists.
 */
import { Linear, globToRegExp, type Module, type Parameter } from '@keel/autograd';
import { z } from 'zod';

/** The connector's module name in every keel model, HF LLaVA's. */
export const CONNECTOR_MODULE = 'multi_modal_projector';
const ALIAS = 'connector';

/** `pattern` with a leading `connector` alias spelled as the module name (file comment). */
export function resolveTargetAlias(pattern: string): string {
  return pattern === ALIAS || pattern.startsWith(`${ALIAS}.`) ? CONNECTOR_MODULE + pattern.slice(ALIAS.length) : pattern;
}

/** The RegExp of a target pattern, alias resolved: what every target selection tests names against. */
export const targetRegExp = (pattern: string): RegExp => globToRegExp(resolveTargetAlias(pattern));

/** A non-empty list of non-empty glob strings. */
export const targetPatterns = z.array(z.string().min(1, 'a target pattern must not be empty')).min(1, 'give at least one target pattern');

function examples(names: readonly string[]): string {
  const shown = names.slice(0, 4).map((n) => `'${n}'`);
  return `${shown.join(', ')}${names.length > 4 ? `, … (${names.length} in all)` : ''}`;
}

/** A config's target pattern selects nothing in this model: the user's input is wrong, not the code. */
export class TargetPatternError extends Error {
  override name = 'TargetPatternError';
}

/**
 * The Linear modules whose path matches any pattern, by path (model order). Throws naming every
 * pattern that matches no Linear module.
 */

export function selectLinears(model: Module, patterns: readonly string[], method: string): Map<string, Linear> {
  const linears = [...model.namedModules()].filter((e): e is [string, Linear] => e[1] instanceof Linear);
  const out = new Map<string, Linear>();
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const re = targetRegExp(pattern);
    const hits = linears.filter(([path]) => re.test(path));
    if (hits.length === 0) unmatched.push(`'${pattern}'`);
    for (const [path, m] of hits) out.set(path, m);
  }
  if (unmatched.length) {
    throw new TargetPatternError(`${method}: target pattern${unmatched.length > 1 ? 's' : ''} ${unmatched.join(', ')} match${unmatched.length > 1 ? '' : 'es'} no Linear module (Linear modules are named like ${examples(linears.map(([p]) => p))})`);
  }
  // model order, whatever the pattern order
  return new Map(linears.filter(([path]) => out.has(path)));
}

/**
 * The parameters whose name matches any pattern and passes `keep`, by name (model order). Throws
 * naming every pattern that selects no such parameter.
 */
export function selectParameters(model: Module, patterns: readonly string[], method: string, keep: (name: string) => boolean = () => true, what = 'parameter'): Map<string, Parameter> {
  const params = [...model.namedParameters()].filter(([name]) => keep(name));
  const chosen = new Set<string>();
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const re = targetRegExp(pattern);
    const hits = params.filter(([name]) => re.test(name));
    if (hits.length === 0) unmatched.push(`'${pattern}'`);
    for (const [name] of hits) chosen.add(name);
  }
  if (unmatched.length) {
    const named = params.length ? `${what}s are named like ${examples(params.map(([n]) => n))}` : `the model has no ${what}s at all`;
    throw new TargetPatternError(`${method}: target pattern${unmatched.length > 1 ? 's' : ''} ${unmatched.join(', ')} match${unmatched.length > 1 ? '' : 'es'} no ${what} (${named})`);
  }
  return new Map(params.filter(([name]) => chosen.has(name)));
}

/** Target patterns of the last `n` decoder layers ('language_model.model.layers.{i}'), for "last-N layers" tuning. */
export function lastDecoderLayers(model: { config: { text: { layers: number } } }, n: number): string[] {
  const L = model.config.text.layers;
  if (!Number.isInteger(n) || n < 1 || n > L) throw new Error(`lastDecoderLayers: n must be an integer in [1, ${L}] (the decoder has ${L} layers), got ${n}`);
  return Array.from({ length: n }, (_, k) => `language_model.model.layers.${L - n + k}`);
}

/** Every normalization layer of the model (vision LayerNorms, decoder RMSNorms), for LayerNorm-only tuning. */
export const NORM_TARGETS: readonly string[] = ['**.layer_norm?', '**.pre_layrnorm', '**.*_layernorm', 'language_model.model.norm'];
