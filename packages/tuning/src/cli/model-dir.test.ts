/**
 * A damaged model directory is the user's input (issue 8): loadCheckpoint and loadModelOrTuned turn
 * @keel/mllm's model-file errors into a UsageError (exit 2) that keeps the message naming the file.
 * Each case damages one file of a copy of the bundled base; the GPU is never reached.
 */
import { cp, mkdir, mkdtemp, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '@keel/kernels';
import { ConfigError, ModelFilesError, SafetensorsError } from '@keel/mllm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from './args.js';
import { bundledBasePath, loadCheckpoint, loadModelOrTuned } from './model-dir.js';

let rt: Runtime;
let dir = '';
beforeAll(async () => {
  rt = await Runtime.create();
  dir = await mkdtemp(join(tmpdir(), 'keel-model-dir-'));
});
afterAll(async () => {
  rt.destroy();
  await rm(dir, { recursive: true, force: true });
});

async function damagedBase(name: string, damage: (d: string) => Promise<void>): Promise<string> {
  const d = join(dir, name);
  await cp(bundledBasePath(), d, { recursive: true });
  await damage(d);
  return d;
}

const cases: [string, (d: string) => Promise<void>, new (...a: never[]) => Error, RegExp][] = [
  ['malformed', (d) => writeFile(join(d, 'config.json'), '{"model_type": "llava", '), ModelFilesError, /^\S*\/malformed\/config\.json: not valid JSON \(/],
  ['badfield', (d) => writeFile(join(d, 'config.json'), '{"model_type": "llava"}'), ConfigError, /^\S*\/badfield\/config\.json: invalid Hugging Face LLaVA config:\n {2}image_token_index/],
  ['notok', (d) => unlink(join(d, 'tokenizer.json')), ModelFilesError, /^\S*\/notok: tokenizer\.json is missing; the model cannot read or write text without it$/],
  ['badtok', (d) => writeFile(join(d, 'tokenizer.json'), '{"model": {"type": "CharLevel"}}'), ModelFilesError, /^\S*\/badtok\/tokenizer\.json: field "model\.type" is "CharLevel", an unknown model type/],
  ['truncated', (d) => truncate(join(d, 'model.safetensors'), 1000), SafetensorsError, /^\S*\/truncated\/model\.safetensors: /],
];

describe('a damaged model directory is a UsageError naming the file', () => {
  it.each(cases)('%s', async (name, damage, cause, message) => {
    const model = await damagedBase(name, damage);
    const live = rt.stats().liveBuffers;
    for (const load of [() => loadCheckpoint(rt, model), () => loadModelOrTuned(rt, model)]) {
      const e = await load().then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(UsageError);
      expect((e as Error).message).toMatch(message);
      expect((e as Error).cause).toBeInstanceOf(cause);
    }
    // nothing was left on the GPU by the failed loads
    expect(rt.stats().liveBuffers).toBe(live);
  });

  it('a tuning output whose base is damaged names the base file', async () => {
    const base = await damagedBase('adapter-base', (d) => writeFile(join(d, 'config.json'), '[]'));
    const out = join(dir, 'adapter');
    await mkdir(out);
    await writeFile(join(out, 'adapter_config.json'), JSON.stringify({ strategy: 'lora', config: {}, base_model_name_or_path: base }));
    const e = await loadModelOrTuned(rt, out).then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message).toMatch(/adapter-base\/config\.json: invalid Hugging Face LLaVA config:\n {2}\(root\): expected a JSON object, got an array/);
  });
});
