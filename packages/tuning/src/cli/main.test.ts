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
      // merged over the --arch mlp preset (32×32 images, 4×4 patches, downsample 2): 32 / 4 = 8×8 patches → 16 tokens
      await writeFile(cfg, JSON.stringify({ vision: { imageSize: 32, patchSize: 4, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } }));
      const { err } = capture();
      expect(await main(['pretrain', '--out', join(dir, 'ckpt'), '--steps', '1', '--batch', '2', '--eval', '1', '--config', cfg, '--json'])).toBe(0);
      const hf = JSON.parse(await readFile(join(dir, 'ckpt', 'config.json'), 'utf8'));
      expect(hf).toMatchObject({ projector_downsample: 2, image_seq_length: 16, vision_config: { patch_size: 4 } });
      expect(await readFile(join(dir, 'ckpt', 'README.md'), 'utf8')).toMatch(/2×2 patch merge/);
      await writeFile(cfg, JSON.stringify({ projector: { downsample: 3 } }));
      expect(await main(['pretrain', '--out', join(dir, 'x'), '--config', cfg])).toBe(2);
      expect(err.join('')).toMatch(/--config .*arch\.json: projector\.downsample: the 8×8 patch grid is not divisible by downsample 3/); // the preset's 32 / 4
      await writeFile(cfg, '{"vision": ');
      expect(await main(['pretrain', '--out', join(dir, 'x'), '--config', cfg])).toBe(2);
      expect(err.join('')).toMatch(/not valid JSON/);
      expect(await main(['pretrain', '--out', join(dir, 'x'), '--config', join(dir, 'missing.json')])).toBe(2);
      expect(err.join('')).toMatch(/missing\.json: cannot read the file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('tune → eval → generate on the bundled base: adapter, metrics and scores; a tuned dir loads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keel-tune-'));
    try {
      const out = join(dir, 'run');
      const { out: lines } = capture();
      expect(await main(['tune', '--strategy', 'lora', '--task', 'count', '--steps', '2', '--batch', '2', '--eval', '2', '--out', out, '--json'])).toBe(0);
      const done = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.event === 'done')!;
      expect(done).toMatchObject({ strategy: 'lora', task: 'count' });
      for (const k of ['T', 'U', 'H', 'E', 'F', 'O', 'trainable_pct', 'peak_mb', 'sec_per_step']) expect(typeof done[k], k).toBe('number');
      expect((await readdir(out)).sort()).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'metrics.json', 'report.html', 'loss.png']));
      expect(await readFile(join(out, 'report.html'), 'utf8')).toMatch(/<svg/);
      const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));
      expect(metrics.result.strategy).toBe('lora');
      expect(metrics.evalCurve.map((p: { step: number }) => p.step)).toEqual([0, 2]);
      lines.length = 0;
      expect(await main(['eval', '--model', out, '--task', 'count', '--count', '2', '--json'])).toBe(0);
      const scores = JSON.parse(lines.join(''));
      expect(Object.keys(scores.scores)).toEqual(['count', 'caption', 'vqa', 'text']);
      // per question type: every task's examples counted once, and the task score is their mean
      for (const [task, kinds] of Object.entries(scores.byKind as Record<string, Record<string, { accuracy: number; count: number }>>)) {
        const all = Object.values(kinds);
        expect(all.reduce((a, v) => a + v.count, 0), task).toBe(2);
        expect(all.reduce((a, v) => a + v.accuracy * v.count, 0) / 2, task).toBeCloseTo(scores.scores[task], 12);
      }
      expect(Object.keys(scores.byKind)).toEqual(['count', 'caption', 'vqa', 'text']);
      expect(scores.T).toBeCloseTo(metrics.final.T, 12); // the saved adapter reproduces the tuned model
      const { getTask, encodePng, fromModelInput } = await import('@keel/mllm');
      const [sample] = await getTask('count').samples('test', 1, 0, { size: 64 });
      const png = join(dir, 'scene.png');
      await writeFile(png, encodePng(fromModelInput(sample!.image!, { size: 64 })));
      lines.length = 0;
      expect(await main(['generate', '--model', out, '--image', png, '--prompt', sample!.prompt, '--json'])).toBe(0);
      expect(typeof JSON.parse(lines.join('')).text).toBe('string');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('tune, eval and generate exit 2 naming a bad strategy, task, config field or image', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keel-tune-'));
    try {
      const { err } = capture();
      const last = () => err.join('').split('keel: ').at(-1) ?? '';
      expect(await main(['tune', '--strategy', 'qlora', '--task', 'mnist'])).toBe(2);
      expect(last()).toMatch(/unknown strategy "qlora"/);
      expect(await main(['tune', '--strategy', 'lora', '--task', 'vqa'])).toBe(2);
      expect(last()).toMatch(/--task vqa is a general task/);
      expect(await main(['tune', '--strategy', 'lora', '--task', 'digits'])).toBe(2);
      expect(last()).toMatch(/digits/);
      const cfg = join(dir, 'lora.json');
      await writeFile(cfg, JSON.stringify({ r: 0 }));
      expect(await main(['tune', '--strategy', 'lora', '--task', 'mnist', '--config', cfg])).toBe(2);
      expect(last()).toMatch(/lora\.json: lora config is invalid: r: rank r must be > 0/);
      await writeFile(cfg, JSON.stringify({ strategy: 'full' }));
      expect(await main(['tune', '--strategy', 'lora', '--task', 'mnist', '--config', cfg])).toBe(2);
      expect(last()).toMatch(/--strategy lora disagrees with "strategy": "full"/);
      expect(await main(['eval', '--model', dir, '--task', 'mnist'])).toBe(2);
      expect(last()).toMatch(/neither a checkpoint \(config\.json\) nor a tuning output/);
      const notPng = join(dir, 'x.png');
      await writeFile(notPng, 'GIF89a');
      const { bundledBasePath } = await import('./model-dir.js');
      expect(await main(['generate', '--model', bundledBasePath(), '--image', notPng, '--prompt', 'what color is the circle ?'])).toBe(2);
      expect(last()).toMatch(/x\.png: .*PNG/i);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('bench runs suite rows × tasks and writes bench.json in the documented shape, bench.md and bench.html', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keel-bench-'));
    try {
      const { out: lines } = capture();
      const json = join(dir, 'result.json');
      expect(await main(['bench', '--strategies', 'full,lora,spider', '--tasks', 'count', '--steps', '2', '--batch', '2', '--eval', '2', '--out', join(dir, 'b'), '--json', json, '--lr', 'spider=3e-3'])).toBe(0);
      const bench = JSON.parse(await readFile(json, 'utf8'));
      // --lr replaces the suite's lr of the rows it names; every row records the lr it ran with
      expect(bench.rows.map((r: { lr: number }) => r.lr)).toEqual([1e-3, 3e-3, 3e-3]);
      expect(bench.command).toContain('--lr spider=0.003');
      expect(Object.keys(bench.base.T)).toEqual(['count']);
      expect(typeof bench.base.U).toBe('number');
      expect(bench.rows.map((r: { strategy: string }) => r.strategy)).toEqual(['full', 'spider', 'lora']);
      for (const r of bench.rows) for (const k of ['task', 'T', 'U', 'H', 'E', 'F', 'O', 'trainable_pct', 'peak_mb', 'sec']) expect(r, k).toHaveProperty(k);
      expect((await readdir(join(dir, 'b'))).sort()).toEqual(expect.arrayContaining(['bench.html', 'bench.json', 'bench.md']));
      expect((await readFile(join(dir, 'b', 'bench.md'), 'utf8')).match(/^\| (\*\*)?(full|spider|lora)\b/gm)?.length).toBe(3);
      expect(lines.some((l) => l.includes('"event":"done"'))).toBe(true);
      const { err } = capture();
      expect(await main(['bench', '--strategies', 'full,qlora'])).toBe(2);
      expect(err.join('')).toMatch(/--strategies: unknown 'qlora'/);
      expect(await main(['bench', '--tasks', 'vqa'])).toBe(2);
      expect(err.join('')).toMatch(/'vqa' is a general task/);
      expect(await main(['bench', '--strategies', 'full', '--lr', 'spider=3e-3'])).toBe(2);
      expect(err.join('')).toMatch(/--lr: 'spider' names no strategy this bench runs \(full\)/);
      expect(await main(['bench', '--lr', 'spider=-1'])).toBe(2);
      expect(err.join('')).toMatch(/spider: lr '-1' is not a positive number/);
      expect(await main(['bench', '--lr', 'spider'])).toBe(2);
      expect(err.join('')).toMatch(/'spider' is not NAME=LR/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
