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
  });
});
