/**
 * `keel pretrain --config` with sizes no model has (issue 8): the config file is rejected with exit
 * code 2, naming the file, the field and the limit, before a runtime is created or a model built.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { main } from './main.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keel-pretrain-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => vi.restoreAllMocks());

it.each([
  ['layers', { text: { layers: 1e9 } }, /text\.layers: 1000000000 layers exceed keel's limit of 1024/],
  ['width', { vision: { width: 1e9 } }, /vision\.width: width 1000000000 exceeds keel's limit of \d+/],
])('a config with an impossible %s exits 2 naming the field', async (_, config, message) => {
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify(config));
  const err: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const code = await main(['pretrain', '--config', file, '--steps', '1', '--batch', '1', '--eval', '1', '--out', join(dir, 'never')]);
  expect(code).toBe(2);
  expect(err.join('\n')).toMatch(/^keel: --config \S*config\.json: /);
  expect(err.join('\n')).toMatch(message);
});
