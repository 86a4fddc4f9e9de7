/**
 * The one atomic file writer of @keel/tuning (Node only): adapters, metrics, bench results and
 * reports all go through it. The data goes to a uniquely named temporary file in the target's
 * directory, which is then renamed over the target, so a reader sees the old file or the new one,
 * never half of one; on failure the temporary file is removed and the error names the target.
 *
 * Non-goals: fsync, locking against concurrent writers (the last rename wins).
 */
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (e) {
    await unlink(temp).catch(() => undefined); // absent when writeFile itself failed
    throw new Error(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}
