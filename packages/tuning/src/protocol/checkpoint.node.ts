/**
 * Training checkpoints on disk (Node only). One directory holds one run's checkpoints (`keel tune`
 * and `keel pretrain` use <out>/checkpoints):
 *   checkpoint-<step>/   the run's files: trainer_state.json + tensors.safetensors for a tuning run
 *                        (checkpoint.ts), a model directory plus optimizer and trainer state for a
 *                        pre-training run (@keel/mllm pretrain-checkpoint.ts)
 *   latest               the name of the newest complete checkpoint directory, one line
 * `latest` is the only truth. A write fills checkpoint-<step>.<pid>.<random>.tmp/, renames it to
 * checkpoint-<step>, then replaces `latest` atomically (temp file + rename), and only then deletes
 * every other checkpoint-* entry (the temporary directory is the one `latest` names while the
 * checkpoint it replaces is the same step's). A process killed at any moment therefore leaves `latest` naming a
 * complete checkpoint (or absent before the first): a half-written .tmp directory, or a renamed
 * directory that `latest` does not name yet, is garbage the next write removes.
 *
 * Non-goals: fsync (an OS crash can still lose the last write), several writers on one directory,
 * keeping more than the newest checkpoint.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs.node.js';
import { CHECKPOINT_STATE_FILE, CHECKPOINT_TENSORS_FILE, decodeCheckpoint, encodeCheckpoint, type TuneCheckpoint } from './checkpoint.js';

export const LATEST_FILE = 'latest';
const PREFIX = 'checkpoint-';

const isMissing = (e: unknown) => (e as { code?: string }).code === 'ENOENT';

/** The directory `latest` names (a path under `dir`), or null when `dir` has no `latest`. */
export async function latestCheckpoint(dir: string): Promise<string | null> {
  const file = join(dir, LATEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (isMissing(e)) return null;
    throw new Error(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const name = text.trim();
  // a name inside `dir`, never a path out of it
  if (!name.startsWith(PREFIX) || name.includes('/') || name.includes('\\')) throw new Error(`${file}: expected the name of a ${PREFIX}<step> directory, got ${JSON.stringify(text.slice(0, 80))}`);
  return join(dir, name);
}

/** Writes `c` as dir/checkpoint-<step> and points `latest` at it (file comment); returns its path. */
export async function writeCheckpoint(dir: string, c: TuneCheckpoint): Promise<string> {
  const { json, tensors } = encodeCheckpoint(c); // before touching the disk: a bad checkpoint writes nothing
  return writeCheckpointFiles(dir, c.step, new Map<string, Uint8Array | string>([[CHECKPOINT_TENSORS_FILE, tensors], [CHECKPOINT_STATE_FILE, json]]));
}

/**
 * Writes `files` (name → content; strings as UTF-8) as dir/checkpoint-<step>, points `latest` at
 * it and removes older checkpoints (file comment); returns its path. Any run's checkpoint format
 * (`keel tune`'s, `keel pretrain`'s) goes through here.
 */
export async function writeCheckpointFiles(dir: string, step: number, files: ReadonlyMap<string, Uint8Array | string>): Promise<string> {
  if (!Number.isInteger(step) || step < 0) throw new Error(`writeCheckpointFiles: step must be an integer ≥ 0, got ${step}`);
  for (const f of files.keys()) if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(f)) throw new Error(`writeCheckpointFiles: ${JSON.stringify(f)} is not a plain file name`);
  const name = `${PREFIX}${step}`;
  const target = join(dir, name);
  const tempName = `${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const temp = join(dir, tempName);
  await mkdir(dir, { recursive: true });
  try {
    await mkdir(temp);
    for (const [f, content] of files) await writeFile(join(temp, f), content);
    const latest = join(dir, LATEST_FILE);
    if ((await latestCheckpoint(dir).catch(() => null)) === target) {
      // Replacing the checkpoint `latest` names (a fresh run reaching the step of an older run's
      // checkpoint): `latest` names the complete temporary directory until a copy of it is complete.
      await writeFileAtomic(latest, `${tempName}\n`);
      await rm(target, { recursive: true, force: true });
      await cp(temp, target, { recursive: true });
    } else {
      await rm(target, { recursive: true, force: true }); // an orphan of an interrupted write, if any
      await rename(temp, target);
    }
    await writeFileAtomic(latest, `${name}\n`);
  } catch (e) {
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw new Error(`cannot write the checkpoint ${target}: ${(e as Error).message}`, { cause: e });
  }
  for (const entry of await readdir(dir)) {
    if (entry.startsWith(PREFIX) && entry !== name) await rm(join(dir, entry), { recursive: true, force: true });
  }
  return target;
}

/** Reads the checkpoint `dir/latest` names; errors name the directory or file that is missing or bad. */
export async function readCheckpoint(dir: string): Promise<TuneCheckpoint> {
  const { path, files } = await readCheckpointFiles(dir, [CHECKPOINT_STATE_FILE, CHECKPOINT_TENSORS_FILE]);
  const bytes = files.get(CHECKPOINT_TENSORS_FILE)!;
  return decodeCheckpoint(new TextDecoder().decode(files.get(CHECKPOINT_STATE_FILE)!), bytes, path);
}

/** The named files of the checkpoint `dir/latest` names, and its path; a missing one is an error naming it. */
export async function readCheckpointFiles(dir: string, names: readonly string[]): Promise<{ path: string; files: Map<string, Uint8Array> }> {
  const path = await latestCheckpoint(dir);
  if (!path) throw new Error(`${dir}: no checkpoint (${join(dir, LATEST_FILE)} does not exist)`);
  const files = new Map<string, Uint8Array>();
  for (const file of names) {
    let b: Buffer;
    try {
      b = await readFile(join(path, file));
    } catch (e) {
      throw new Error(isMissing(e) ? `${join(path, file)} does not exist (${join(dir, LATEST_FILE)} names an incomplete checkpoint)` : `cannot read ${join(path, file)}: ${(e as Error).message}`, { cause: e });
    }
    files.set(file, new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  }
  return { path, files };
}
