import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  return { out, err };
}

afterEach(() => vi.restoreAllMocks());

describe('keel CLI', () => {
  it('info --json prints adapter, features and limits of a real adapter', async () => {
    const { out } = capture();
    expect(await main(['info', '--json'])).toBe(0);
    const info = JSON.parse(out.join('\n')) as {
      adapter: { vendor: string; architecture: string; device: string; description: string };
      features: string[];
      limits: Record<string, number>;
    };
    expect(Object.keys(info.adapter).sort()).toEqual(['architecture', 'description', 'device', 'vendor']);
    expect(info.adapter.vendor.length + info.adapter.description.length).toBeGreaterThan(0);
    expect(Array.isArray(info.features)).toBe(true);
    expect(info.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(info.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
  });

  it('info prints a readable report', async () => {
    const { out } = capture();
    expect(await main(['info'])).toBe(0);
    expect(out.join('\n')).toMatch(/adapter\n\s+vendor/);
    expect(out.join('\n')).toMatch(/maxStorageBufferBindingSize\s+\d+/);
  });

  it('smoke runs a GPU computation that matches the CPU', async () => {
    const { out } = capture();
    expect(await main(['smoke', '--n', '10001', '--json'])).toBe(0);
    const r = JSON.parse(out.join('')) as { n: number; maxError: number };
    expect(r.n).toBe(10001);
    expect(r.maxError).toBeLessThan(1e-5);
  });

  it('exits 2 on an unknown flag or command, naming it', async () => {
    const { err } = capture();
    expect(await main(['info', '--bogus'])).toBe(2);
    expect(err.join('')).toContain('--bogus');
    expect(await main(['frobnicate'])).toBe(2);
    expect(err.join('')).toContain('frobnicate');
  });

  it('exits 2 on a bad option value', async () => {
    const { err } = capture();
    expect(await main(['smoke', '--n', 'abc'])).toBe(2);
    expect(err.join('')).toMatch(/--n/);
    expect(await main(['pretrain', '--steps', '0'])).toBe(2);
    expect(err.join('')).toMatch(/--steps.*expected a positive integer, got '0'/s);
  });

  it('strategies lists every registered method with its paradigm', async () => {
    const { out } = capture();
    expect(await main(['strategies', '--json'])).toBe(0);
    const list = JSON.parse(out.join('')) as { name: string; paradigm: string }[];
    expect(list.map((s) => s.name)).toEqual(expect.arrayContaining(['full', 'bitfit', 'lora']));
    expect(list.find((s) => s.name === 'lora')?.paradigm).toBe('reparameterization');
  });

  it('pretrain writes a loadable checkpoint directory with metrics and a model card', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keel-pretrain-'));
    try {
      const { out } = capture();
      expect(await main(['pretrain', '--out', dir, '--steps', '2', '--batch', '2', '--eval', '2', '--json'])).toBe(0);
      const done = out.map((l) => JSON.parse(l) as { event: string; scores?: Record<string, number> }).find((e) => e.event === 'done');
      expect(Object.keys(done?.scores ?? {})).toEqual(expect.arrayContaining(['caption', 'vqa', 'text', 'mnist', 'novel', 'count']));
      expect((await readdir(dir)).sort()).toEqual(['README.md', 'config.json', 'metrics.json', 'model.safetensors', 'tokenizer.json']);
      expect(await readFile(join(dir, 'README.md'), 'utf8')).toMatch(/2 steps × 2 examples/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pretrain --config applies model overrides (patch merge) and rejects bad files with exit 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keel-pretrain-'));
    try {
      const cfg = join(dir, 'arch.json');
      await writeFile(cfg, JSON.stringify({ vision: { patchSize: 4, width: 16, layers: 1, heads: 2, intermediate: 16 }, projector: { downsample: 2 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } }));
      const { err } = capture();
      expect(await main(['pretrain', '--out', join(dir, 'ckpt'), '--steps', '1', '--batch', '2', '--eval', '1', '--config', cfg, '--json'])).toBe(0);
      const hf = JSON.parse(await readFile(join(dir, 'ckpt', 'config.json'), 'utf8'));
      expect(hf).toMatchObject({ projector_downsample: 2, image_seq_length: 16, vision_config: { patch_size: 4 } });
      expect(await readFile(join(dir, 'ckpt', 'README.md'), 'utf8')).toMatch(/2×2 patch merge/);
      await writeFile(cfg, JSON.stringify({ projector: { downsample: 3 } }));
      expect(await main(['pretrain', '--out', join(dir, 'x'), '--config', cfg])).toBe(2);
      expect(err.join('')).toMatch(/--config .*arch\.json: projector\.downsample: the 4×4 patch grid is not divisible by downsample 3/);
      await writeFile(cfg, '{"vision": ');
      expect(await main(['pretrain', '--out', join(dir, 'x'), '--config', cfg])).toBe(2);
      expect(err.join('')).toMatch(/not valid JSON/);
      expect(await main(['pretrain', '--out', join(dir, 'x'), '--config', join(dir, 'missing.json')])).toBe(2);
      expect(err.join('')).toMatch(/missing\.json: cannot read the file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
