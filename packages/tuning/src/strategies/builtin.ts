/**
 * keel's own methods, registered explicitly: this import list IS the list of built-in strategies
 * (no file-system discovery). `registerBuiltinStrategies()` is idempotent, so every entry point
 * (applyTuning, the CLI, tests) may call it first.
 *
 * Non-goals: plug-in loading; third-party methods call registerStrategy themselves.
 */
import { bitfitStrategy } from './bitfit.js';
import { doraStrategy } from './dora.js';
import { hftStrategy } from './hft.js';
import { houlsbyStrategy } from './houlsby.js';
import { ia3Strategy } from './ia3.js';
import { importanceTopkStrategy } from './importance-topk.js';
import { magnitudeMaskStrategy } from './magnitude-mask.js';
import { prefixTuningStrategy } from './prefix-tuning.js';
import { promptTuningStrategy } from './prompt-tuning.js';
import { spiderStrategy } from './spider.js';
import { fullStrategy } from './full.js';
import { loraStrategy } from './lora.js';
import { dareStrategy, tiesStrategy, wiseFtStrategy } from './posthoc.js';
import { ewcStrategy, l2spStrategy } from './regularized.js';
import { listStrategies, registerStrategy } from './registry.js';
import type { AnyStrategyDefinition } from './strategy.js';

/** The built-in definitions in the order `keel strategies` lists them (selective → additive → reparameterization). */
export const BUILTIN_STRATEGIES: readonly AnyStrategyDefinition[] = [
  // selective
  fullStrategy,
  bitfitStrategy,
  hftStrategy,
  spiderStrategy,
  importanceTopkStrategy,
  magnitudeMaskStrategy,
  l2spStrategy,
  ewcStrategy,
  wiseFtStrategy,
  dareStrategy,
  tiesStrategy,
  // additive
  houlsbyStrategy,
  promptTuningStrategy,
  prefixTuningStrategy,
  ia3Strategy,
  // reparameterization
  loraStrategy,
  doraStrategy,
];

/** Registers every built-in method not registered yet (a same-named foreign definition is an error). */
export function registerBuiltinStrategies(): void {
  const present = new Map(listStrategies().map((d) => [d.name, d]));
  for (const def of BUILTIN_STRATEGIES) {
    const existing = present.get(def.name);
    if (existing === (def as object)) continue;
    if (existing) throw new Error(`registerBuiltinStrategies: another definition already holds the built-in name '${def.name}'`);
    registerStrategy(def);
  }
}
