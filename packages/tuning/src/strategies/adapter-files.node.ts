/**
 * The file system side of adapter IO, Node only: reached through `await import()` from apply.ts so
 * browser bundles never load node:fs. Each file is written to a temporary name and renamed, so a
 * reader sees the old or the new file, never half of one.
 *
 * Non-goals: locking against concurrent writers, fsync of the directory.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs.node.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type AdapterFiles } from './adapter-files.js';

/** Writes adapter_config.json and adapter_model.safetensors into `dir` (created if needed). */
export async function writeAdapterFiles(dir: string, files: AdapterFiles): Promise<void> {
  if (typeof dir !== 'string' || dir === '') throw new Error(`saveAdapter: expected a directory path, got ${JSON.stringify(dir)}`);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, ADAPTER_WEIGHTS_FILE), files.safetensors);
  await writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), files.configJson);
}

/** Reads the two adapter files of `dir`; a missing one is an error naming it. */
export async function readAdapterFiles(dir: string): Promise<AdapterFiles> {
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name));
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new Error(code === 'ENOENT' ? `${join(dir, name)} does not exist (an adapter directory holds ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE})` : `cannot read ${join(dir, name)}: ${(e as Error).message}`, { cause: e });
    }
  };
  const configJson = (await read(ADAPTER_CONFIG_FILE)).toString('utf8');
  const weights = await read(ADAPTER_WEIGHTS_FILE);
  return { configJson, safetensors: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) };
}
