/**
 * The strategy registry: an explicit name → definition table. Methods are added by
 * `registerStrategy` calls (builtin.ts lists keel's own); nothing is discovered from the file
 * system, and every miss fails loudly with the names that do exist.
 *
 * Non-goals: unregistering, versioned names, lazy loading of method code.
 */
import type { StrategyDefinition } from './strategy.js';

// the config type is erased here; applyTuning validates with the definition's own schema
const strategies = new Map<string, StrategyDefinition<unknown>>();

/** Adds a method. A second definition under the same name is an error (never a silent replace). */
export function registerStrategy<C>(def: StrategyDefinition<C>): void {
  if (typeof def?.name !== 'string' || !/^[a-z][a-z0-9_-]*$/.test(def.name)) {
    throw new Error(`registerStrategy: name must be lowercase letters, digits, '-' or '_' starting with a letter, got ${JSON.stringify(def?.name)}`);
  }
  if (strategies.has(def.name)) throw new Error(`registerStrategy: a strategy named '${def.name}' is already registered`);
  strategies.set(def.name, def as StrategyDefinition<unknown>);
}

/** The definition registered as `name`; an unknown name throws, listing the registered ones. */
export function getStrategy(name: string): StrategyDefinition<unknown> {
  const def = strategies.get(name);
  if (!def) {
    const known = [...strategies.keys()];
    throw new Error(`unknown strategy ${JSON.stringify(name)}; registered strategies: ${known.length ? known.join(', ') : '(none — call registerBuiltinStrategies())'}`);
  }
  return def;
}

/** Every registered definition, in registration order. */
export function listStrategies(): StrategyDefinition<unknown>[] {
  return [...strategies.values()];
}
