/**
 * Bad input to the `keel` CLI (issue 8) that cli/main.test.ts leaves out: each case must print
 * `keel: <message>` naming what is wrong and exit 2 (a usage error), before any training.
 *
 * Covered elsewhere: unknown flags and commands, bad option values, an unknown strategy or task, a
 * config file that is not JSON, rank 0, a non-PNG image (cli/main.test.ts); the method schemas and
 * target patterns through applyTuning (strategies/*.test.ts).
 */
import { cp, mkdtemp, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng } from '@keel/mllm';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from './cli/main.js';
import { bundledBasePath } from './cli/model-dir.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keel-bad-input-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => vi.restoreAllMocks());

/** Runs the CLI with console output captured; returns the exit code and the last `keel: …` message. */
async function run(argv: string[]): Promise<{ code: number; message: string }> {
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation(() => {});
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, message: err.join('').split('keel: ').at(-1) ?? '' };
}

async function configFile(name: string, fields: Record<string, unknown>): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, JSON.stringify(fields));
  return path;
}

const tuneWith = (strategy: string, config: string) => ['tune', '--strategy', strategy, '--task', 'count', '--config', config, '--steps', '1', '--batch', '1', '--eval', '1', '--out', join(dir, 'never')];

describe('tune: method settings', () => {
  it('a negative LoRA rank exits 2 naming the field', async () => {
    const r = await run(tuneWith('lora', await configFile('neg-rank.json', { r: -2 })));
    expect(r.code).toBe(2);
    expect(r.message).toMatch(/neg-rank\.json: lora config is invalid: r: rank r must be > 0/);
  });

  it.each([0, 1.5, -0.1])('a top-k fraction k = %d outside (0, 1] exits 2 naming the field', async (k) => {
    const r = await run(tuneWith('topk', await configFile('topk.json', { k })));
    expect(r.code).toBe(2);
    expect(r.message).toMatch(/topk\.json: topk config is invalid: k: k must be a fraction in \(0, 1\]/);
  });

  it('an unknown flag of a subcommand exits 2 naming it', async () => {
    const r = await run(['tune', '--strategy', 'lora', '--task', 'count', '--rank', '8']);
    expect(r.code).toBe(2);
    expect(r.message).toMatch(/unknown option '--rank'/);
  });

  it('a target pattern that matches nothing is named, with examples of real module names', async () => {
    const r = await run(tuneWith('lora', await configFile('targets.json', { targets: ['language_model.**.qkv'] })));
    expect(r.code).not.toBe(0);
    expect(r.message).toMatch(/lora: target pattern 'language_model\.\*\*\.qkv' matches no Linear module \(Linear modules are named like '/);
  });
});

describe('eval / generate: model directory and image', () => {
  /** A copy of the bundled base with `damage` applied. */
  async function damagedBase(name: string, damage: (d: string) => Promise<void>): Promise<string> {
    const d = join(dir, name);
    await cp(bundledBasePath(), d, { recursive: true });
    await damage(d);
    return d;
  }

  const broken: [string, (d: string) => Promise<void>, RegExp][] = [
    ['a malformed config.json', (d) => writeFile(join(d, 'config.json'), '{"model_type": "llava", '), /malformed\/config\.json: not valid JSON/],
    ['a config.json with a bad field', (d) => writeFile(join(d, 'config.json'), '{"model_type": "llava"}'), /badfield\/config\.json: invalid Hugging Face LLaVA config:\n {2}image_token_index/],
    ['a missing tokenizer.json', (d) => unlink(join(d, 'tokenizer.json')), /notok: tokenizer\.json is missing/],
    ['a truncated model.safetensors', (d) => truncate(join(d, 'model.safetensors'), 1000), /truncated\/model\.safetensors: /],
  ];
  const names = ['malformed', 'badfield', 'notok', 'truncated'];

  it.each(broken.map((b, i) => [...b, names[i]!] as const))('%s is named', async (_, damage, message, name) => {
    const model = await damagedBase(name, damage);
    const r = await run(['eval', '--model', model, '--task', 'count', '--count', '1']);
    expect(r.code).not.toBe(0);
    expect(r.message).toMatch(message);
  });

  // cli/model-dir.ts turns loadModel's ConfigError / ModelFilesError / SafetensorsError into a
  // UsageError, the one error main() exits 2 for
  it('a damaged model directory exits 2', async () => {
    const model = await damagedBase('exit-code', (d) => writeFile(join(d, 'config.json'), '{"model_type": "llava", '));
    expect((await run(['eval', '--model', model, '--task', 'count', '--count', '1'])).code).toBe(2);
  });

  it('a non-square image exits 2 naming the file and both sizes', async () => {
    const png = join(dir, 'wide.png');
    await writeFile(png, encodePng({ width: 3, height: 2, channels: 3, data: new Uint8Array(18) }));
    const r = await run(['generate', '--model', bundledBasePath(), '--image', png, '--prompt', 'what color is the circle ?']);
    expect(r.code).toBe(2);
    expect(r.message).toMatch(/--image .*wide\.png: the image is 3×2; the model takes square \d+×\d+ images/);
  });
});

// Target patterns can only be matched against a loaded model: tune() applies the method before it
// scores the base, and the CLI turns the TargetPatternError into a usage error
it('tune: a target pattern that matches nothing exits 2, naming the pattern', async () => {
  const r = await run(tuneWith('lora', await configFile('targets2.json', { targets: ['language_model.**.qkv'] })));
  expect(r.code).toBe(2);
  expect(r.message).toMatch(/'language_model\.\*\*\.qkv' matches no Linear module/);
});
