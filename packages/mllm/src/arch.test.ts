import { describe, expect, it } from 'vitest';
import { ARCH_NAMES, ARCHITECTURES, archConfig, isArchName, mergeConfig } from './arch.js';
import { imageTokenCount, patchCount, resolveConfig, type MllmConfigInput } from './config.js';

describe('architecture presets', () => {
  it('each preset is valid, named by its projector type, and both feed the LLM the same image tokens', () => {
    expect(ARCH_NAMES).toEqual(['mlp', 'resampler']);
    const resolved = ARCH_NAMES.map((a) => resolveConfig(archConfig(a), `preset ${a}`));
    resolved.forEach((c, i) => expect(c.projector.type).toBe(ARCH_NAMES[i]));
    const [mlp, resampler] = resolved as [ReturnType<typeof resolveConfig>, ReturnType<typeof resolveConfig>];
    expect(patchCount(mlp)).toBe(64); // 32 / 4 = 8×8 patches
    expect(imageTokenCount(mlp)).toBe(patchCount(mlp) / mlp.projector.downsample ** 2);
    expect(imageTokenCount(resampler)).toBe(imageTokenCount(mlp));
    // only the connector differs
    expect(resampler.vision).toEqual(mlp.vision);
    expect(resampler.text).toEqual(mlp.text);
    for (const a of ARCH_NAMES) expect(ARCHITECTURES[a].description).toMatch(/^[^\n]{10,120}$/);
  });

  it('isArchName accepts the presets only', () => {
    expect(ARCH_NAMES.every(isArchName)).toBe(true);
    for (const s of ['all', 'MLP', 'toString', '']) expect(isArchName(s)).toBe(false);
  });
});

describe('mergeConfig', () => {
  it('merges objects key by key, lets the overrides win, and modifies neither input', () => {
    const base: MllmConfigInput = { vision: { imageSize: 48, patchSize: 6 }, projector: { type: 'resampler', queries: 16 } };
    const over: MllmConfigInput = { vision: { width: 96 }, projector: { queries: 8 }, text: { layers: 4 } };
    const copies = JSON.stringify([base, over]);
    expect(mergeConfig(base, over)).toEqual({ vision: { imageSize: 48, patchSize: 6, width: 96 }, projector: { type: 'resampler', queries: 8 }, text: { layers: 4 } });
    expect(JSON.stringify([base, over])).toBe(copies);
  });

  it('archConfig: schema defaults < preset < overrides', () => {
    const c = resolveConfig(archConfig('resampler', { projector: { queries: 8 }, vision: { layers: 1 } }));
    expect(c.projector).toMatchObject({ type: 'resampler', queries: 8, layers: 2, heads: 4, positions: 'sincos2d' });
    expect(c.vision).toMatchObject({ imageSize: 32, patchSize: 4, layers: 1, width: resolveConfig({}).vision.width });
    expect(() => archConfig('conv' as never)).toThrow(/unknown architecture 'conv' \(known: mlp, resampler\)/);
  });
});
