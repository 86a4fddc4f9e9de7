/**
 * Architecture presets: the one place that says what `--arch mlp` and `--arch resampler` build.
 * Each is a partial MllmConfigInput laid over the schema defaults (config.ts), so both families
 * share the vision tower (32×32 images in 4×4 patches: an 8×8 grid, 3 blocks) and the language
 * model, and hand it the same number of image tokens: they differ only in the connector.
 *
 * A preset's key is its `projector.type`, so a model's config names its architecture (the bench
 * reads it from there, not from a flag) and a new connector family without a preset is a compile
 * error here.
 *
 * Precedence, lowest first: schema defaults < the preset < the caller's overrides (mergeConfig:
 * objects merge key by key, anything else — numbers, strings, arrays — replaces).
 *
 * Non-goals: presets for sizes (small/large); the sizes of the bundled bases are these.
 */
import type { MllmConfigInput, ProjectorConfig } from './config.js';

export type ArchName = ProjectorConfig['type'];

export interface Architecture {
  /** One line for --help and reports. */
  description: string;
  /** Overrides of the schema defaults. */
  config: MllmConfigInput;
}

export const ARCHITECTURES: Readonly<Record<ArchName, Architecture>> = {
  mlp: {
    description: 'LLaVA MLP projector after a VILA 2×2 patch merge: 8×8 patches → 16 image tokens',
    config: { vision: { imageSize: 32, patchSize: 4, layers: 3 }, projector: { downsample: 2 } },
  },
  resampler: {
    description: 'Perceiver resampler: 16 learned queries cross-attend to the 8×8 patches (2D sin-cos positions) → 16 image tokens',
    config: { vision: { imageSize: 32, patchSize: 4, layers: 3 }, projector: { type: 'resampler', queries: 16, layers: 2, heads: 4, positions: 'sincos2d' } },
  },
};

/** The preset names, in the order they are run and reported. */
export const ARCH_NAMES = Object.keys(ARCHITECTURES) as ArchName[];

export const isArchName = (s: string): s is ArchName => Object.hasOwn(ARCHITECTURES, s);

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `over` laid on `base` (file comment); neither input is modified. */
export function mergeConfig(base: MllmConfigInput, over: MllmConfigInput): MllmConfigInput {
  const merge = (a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = isPlainObject(v) && isPlainObject(a[k]) ? merge(a[k], v) : v;
    return out;
  };
  return merge(base as Record<string, unknown>, over as Record<string, unknown>) as MllmConfigInput;
}

/** The preset of `arch` with `overrides` on top. */
export function archConfig(arch: ArchName, overrides: MllmConfigInput = {}): MllmConfigInput {
  const preset = ARCHITECTURES[arch];
  if (!preset) throw new Error(`archConfig: unknown architecture '${String(arch)}' (known: ${ARCH_NAMES.join(', ')})`);
  return mergeConfig(preset.config, overrides);
}
