/**
 * `--arch` on the CLI: `keel pretrain --arch` builds the preset with --config merged on top, `keel
 * bench --arch` runs on the architecture's bundled base (an error saying how to produce a missing
 * one) or on --base, and every bench row carries the arch its model's config names.
 *
 * The bundled root is redirected to an empty directory for the missing-base cases, so they hold
 * whether or not packages/mllm/base-resampler has been produced.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ArchName } from '@keel/mllm';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageError } from './args.js';
import { main } from './main.js';

const bundled = vi.hoisted(() => ({ root: undefined as string | undefined }));
vi.mock('./model-dir.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('./model-dir.js')>();
  return { ...m, bundledBasePath: (arch?: ArchName, root?: string) => m.bundledBasePath(arch, root ?? bundled.root ?? m.BUNDLED_ROOT) };
});

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  return { out, err, last: () => err.join('').split('keel: ').at(-1) ?? '' };
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keel-arch-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
  bundled.root = undefined;
});

// overrides that shrink the model around the preset: the preset's patch size and connector kind stay
const TINY = {
  vision: { imageSize: 24, width: 16, layers: 1, heads: 2, intermediate: 16 },
  projector: { queries: 4, layers: 1, heads: 2 },
  text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 },
};
const QUICK = ['--steps', '2', '--batch', '2', '--eval', '1', '--pool', '8'];

describe('keel pretrain --arch', () => {
  it('rejects an unknown architecture, naming the choices', async () => {
    const { last } = capture();
    expect(await main(['pretrain', '--arch', 'conv', '--out', join(dir, 'never')])).toBe(2);
    expect(last()).toMatch(/--arch.*unknown architecture 'conv'; choose one of mlp, resampler/s);
  });

  it('builds the resampler preset with --config merged on top and records --arch', async () => {
    const cfg = join(dir, 'tiny.json');
    await writeFile(cfg, JSON.stringify(TINY));
    const out = join(dir, 'resampler');
    const { out: lines } = capture();
    expect(await main(['pretrain', '--arch', 'resampler', '--config', cfg, ...QUICK, '--out', out, '--json'])).toBe(0);
    const hf = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    // 24 from the file, 4 from the preset, the resampler from --arch with the file's sizes
    expect(hf).toMatchObject({ projector_type: 'resampler', image_seq_length: 4, vision_config: { image_size: 24, patch_size: 4, hidden_size: 16 } });
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.arch).toBe('resampler');
    expect(metrics.command).toMatch(/^keel pretrain --arch resampler .*--config \{"vision":\{"imageSize":24/);
    expect(await readFile(join(out, 'README.md'), 'utf8')).toContain('`keel pretrain --arch resampler ');
    expect(lines.map((l) => JSON.parse(l) as { event: string; arch?: string }).find((e) => e.event === 'done')?.arch).toBe('resampler');
  });

  it('rejects a --config that switches the connector family or fits only the other one (exit 2)', async () => {
    const cfg = join(dir, 'bad.json');
    const { last } = capture();
    await writeFile(cfg, JSON.stringify({ projector: { type: 'mlp' } }));
    expect(await main(['pretrain', '--arch', 'resampler', '--config', cfg, '--out', join(dir, 'never')])).toBe(2);
    expect(last()).toMatch(/--config \S*bad\.json: projector\.type "mlp" disagrees with --arch resampler/);
    await writeFile(cfg, JSON.stringify({ projector: { queries: 4 } }));
    expect(await main(['pretrain', '--config', cfg, '--out', join(dir, 'never')])).toBe(2);
    expect(last()).toMatch(/--config \S*bad\.json: projector\.queries: queries is a resampler setting.*on the --arch mlp preset/);
  });
});

describe('keel bench --arch', () => {
  it('a missing bundled base is a usage error saying how to produce it', async () => {
    const { bundledBasePath } = await import('./model-dir.js');
    const empty = await mkdtemp(join(dir, 'root-'));
    expect(() => bundledBasePath('resampler', empty)).toThrow(UsageError);
    bundled.root = empty;
    const { last } = capture();
    for (const arch of ['resampler', 'all']) {
      expect(await main(['bench', '--arch', arch, '--out', join(dir, 'never')])).toBe(2);
      expect(last()).toMatch(/the bundled (mlp|resampler) base \S+ does not exist: produce it with `keel pretrain --arch (mlp|resampler) --out \S+`, or pass a checkpoint with --base/);
    }
    expect(last()).toContain(`keel pretrain --arch mlp --out ${join(empty, 'base')}`); // all: the first missing, mlp
  });

  it('rejects an unknown arch and --base with --arch all', async () => {
    const { last } = capture();
    expect(await main(['bench', '--arch', 'conv'])).toBe(2);
    expect(last()).toMatch(/unknown architecture 'conv'; choose one of mlp, resampler, all/);
    expect(await main(['bench', '--arch', 'all', '--base', join(dir, 'resampler')])).toBe(2);
    expect(last()).toMatch(/--base \S+ is one checkpoint, of one architecture; use it with --arch mlp or --arch resampler/);
  });

  it('runs on a --base of the asked architecture; rows carry the arch of the model', async () => {
    const base = join(dir, 'resampler'); // written by the pretrain test above
    const json = join(dir, 'bench.json');
    capture();
    expect(await main(['bench', '--arch', 'resampler', '--base', base, '--steps', '2', '--batch', '2', '--eval', '4', '--strategies', 'full', '--tasks', 'mnist', '--out', join(dir, 'bench'), '--json', json])).toBe(0);
    const bench = JSON.parse(await readFile(json, 'utf8'));
    expect(bench.archs).toEqual(['resampler']);
    expect(Object.keys(bench.bases)).toEqual(['resampler']);
    expect(bench.base).toEqual(bench.bases.resampler);
    expect(Object.keys(bench.base.T)).toEqual(['mnist']);
    expect(bench.rows.map((r: { arch: string; strategy: string }) => [r.arch, r.strategy])).toEqual([['resampler', 'full']]);
    expect(bench).not.toHaveProperty('ranking');
    expect(bench.command).toMatch(/^keel bench --arch resampler /);
    expect(await readFile(join(dir, 'bench', 'bench.md'), 'utf8')).toMatch(/^## resampler · mnist: base T/m);
  });

  it('a --base of another architecture than --arch is a usage error naming both', async () => {
    const { last } = capture();
    expect(await main(['bench', '--arch', 'mlp', '--base', join(dir, 'resampler'), '--strategies', 'full', '--tasks', 'mnist', '--out', join(dir, 'never')])).toBe(2);
    expect(last()).toMatch(/resampler is a 'resampler' model \(the projector type in its config\.json\), not --arch mlp/);
  });
});
