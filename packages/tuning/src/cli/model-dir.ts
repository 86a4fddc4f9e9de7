/**
 * Where the CLI's models come from (Node only):
 *   - the bundled bases shipped with @keel/mllm, one per architecture preset (@keel/mllm arch.ts):
 *     `packages/mllm/base` (mlp, the default `--base`) and `packages/mllm/base-resampler`; a
 *     missing one is a UsageError saying which `keel pretrain --arch` writes it;
 *   - a checkpoint directory (config.json + model.safetensors + tokenizer.json);
 *   - a `keel tune --out` directory (adapter_config.json + adapter_model.safetensors), whose
 *     adapter_config.json names its base in base_model_name_or_path: the base is loaded and the
 *     adapter applied on top.
 * A directory that is neither is an error listing what it holds. A damaged checkpoint (a config.json
 * that is not JSON or not a LLaVA config, a missing tokenizer.json, truncated or mismatched weights)
 * is the user's input, not a bug: loadCheckpoint turns @keel/mllm's model-file errors into a
 * UsageError (exit 2) with the message that names the file.
 */
import { existsSync } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '@keel/kernels';
import { ARCH_NAMES, ConfigError, loadModel, ModelFilesError, SafetensorsError, type ArchName, type LoadedModel } from '@keel/mllm';
import { ADAPTER_CONFIG_FILE, readAdapterConfig } from '../strategies/adapter-files.js';
import { loadTuning, type TuningHandle } from '../strategies/apply.js';
import { UsageError } from './args.js';

/** The @keel/mllm package directory, where the bundled bases live. */
export const BUNDLED_ROOT = fileURLToPath(new URL('../', import.meta.resolve('@keel/mllm'))).replace(/\/$/, '');

/** The directory name of each architecture's bundled base under the package. */
const BUNDLED_DIRS: Readonly<Record<ArchName, string>> = { mlp: 'base', resampler: 'base-resampler' };

/**
 * The base checkpoint of `arch` shipped inside @keel/mllm (`root` is the package directory, for
 * tests); a UsageError when it has not been produced.
 */
export function bundledBasePath(arch: ArchName = 'mlp', root = BUNDLED_ROOT): string {
  const dir = BUNDLED_DIRS[arch];
  if (dir === undefined) throw new UsageError(`unknown architecture '${String(arch)}' (known: ${ARCH_NAMES.join(', ')})`);
  const path = join(root, dir);
  if (!existsSync(join(path, 'config.json'))) {
    throw new UsageError(`the bundled ${arch} base ${path} does not exist: produce it with \`keel pretrain --arch ${arch} --out ${path}\`, or pass a checkpoint with --base`);
  }
  return path;
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

export interface LoadedTuned extends LoadedModel {
  /** The applied adapter when `dir` was a tuning output; null for a plain checkpoint. */
  handle: TuningHandle | null;
  /** The checkpoint the weights came from. */
  baseDir: string;
}

/** loadModel with the errors of damaged model files as UsageErrors; anything else (a bug, the GPU) passes through. */
export async function loadCheckpoint(rt: Runtime, dir: string): Promise<LoadedModel> {
  try {
    return await loadModel(rt, dir);
  } catch (e) {
    if (e instanceof ModelFilesError || e instanceof ConfigError || e instanceof SafetensorsError) throw new UsageError(e.message, { cause: e });
    throw e;
  }
}

/** Loads a checkpoint or a tuning output directory (file comment). */
export async function loadModelOrTuned(rt: Runtime, dir: string, flag = '--model'): Promise<LoadedTuned> {
  if (await exists(join(dir, 'config.json'))) {
    const loaded = await loadCheckpoint(rt, dir);
    return { ...loaded, handle: null, baseDir: dir };
  }
  if (await exists(join(dir, ADAPTER_CONFIG_FILE))) {
    const { readFile } = await import('node:fs/promises');
    const saved = readAdapterConfig(await readFile(join(dir, ADAPTER_CONFIG_FILE), 'utf8'), join(dir, ADAPTER_CONFIG_FILE));
    const named = saved.baseModel;
    if (!named) throw new UsageError(`${flag} ${dir}: ${ADAPTER_CONFIG_FILE} does not name its base model (base_model_name_or_path); pass the base with --base`);
    const baseDir = isAbsolute(named) ? named : resolve(dir, named);
    const loaded = await loadCheckpoint(rt, baseDir);
    try {
      const handle = await loadTuning(loaded.model, dir);
      return { ...loaded, handle, baseDir };
    } catch (e) {
      loaded.model.dispose();
      throw e;
    }
  }
  const held = await readdir(dir).catch(() => null);
  if (held === null) throw new UsageError(`${flag} ${dir}: no such directory`);
  throw new UsageError(`${flag} ${dir}: neither a checkpoint (config.json) nor a tuning output (${ADAPTER_CONFIG_FILE}); it holds: ${held.join(', ') || 'nothing'}`);
}
