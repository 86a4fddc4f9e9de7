/**
 * Training checkpoints on disk (Node only). One directory holds one run's checkpoints (`keel tune`
 * uses <out>/checkpoints):
 *   checkpoint-<step>/   trainer_state.json + tensors.safetensors (checkpoint.ts)
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
  const name = `${PREFIX}${c.step}`;
  const target = join(dir, name);
  const tempName = `${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const temp = join(dir, tempName);
  await mkdir(dir, { recursive: true });
  try {
    await mkdir(temp);
    await writeFile(join(temp, CHECKPOINT_TENSORS_FILE), tensors);
    await writeFile(join(temp, CHECKPOINT_STATE_FILE), json);
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
  const path = await latestCheckpoint(dir);
  if (!path) throw new Error(`${dir}: no checkpoint (${join(dir, LATEST_FILE)} does not exist)`);
  const read = async (file: string) => {
    try {
      return await readFile(join(path, file));
    } catch (e) {
      throw new Error(isMissing(e) ? `${join(path, file)} does not exist (${join(dir, LATEST_FILE)} names an incomplete checkpoint)` : `cannot read ${join(path, file)}: ${(e as Error).message}`, { cause: e });
    }
  };
  const json = (await read(CHECKPOINT_STATE_FILE)).toString('utf8');
  const bytes = await read(CHECKPOINT_TENSORS_FILE);
  return decodeCheckpoint(json, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}
