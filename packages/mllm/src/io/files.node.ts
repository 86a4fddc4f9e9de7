/**
 * The file system side of checkpoint IO, Node only. Reached through `await import()` from
 * model-files.ts so browser bundles never load node:fs.
 *
 * writeFileAtomic gives readers all-or-nothing files: the bytes go to a temporary file in the
 * target's directory (same file system, so rename is atomic), are fsynced, then renamed over the
 * target; the directory is fsynced afterwards so the rename itself survives a crash. A failure at
 * any step removes the temporary file and leaves the old target untouched.
 *
 * Non-goals: locking against concurrent writers (the last rename wins), Windows directory fsync
 * (not supported by the OS; skipped).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export { join as joinPath };

const codeOf = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;

/** A file's bytes as a plain Uint8Array view (Node's Buffer is one underneath). */
export async function readBytes(path: string): Promise<Uint8Array> {
  const b = await readFile(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Like readBytes, but null when nothing exists at `path`. */
export async function readBytesIfExists(path: string): Promise<Uint8Array | null> {
  try {
    return await readBytes(path);
  } catch (e) {
    if (codeOf(e) === 'ENOENT') return null;
    throw e;
  }
}

/** What is at `path`: nothing, a regular file, a directory, or something else. */
export async function pathKind(path: string): Promise<'missing' | 'file' | 'directory' | 'other'> {
  try {
    const s = await stat(path);
    return s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
  } catch (e) {
    if (codeOf(e) === 'ENOENT' || codeOf(e) === 'ENOTDIR') return 'missing';
    throw e;
  }
}

/** Creates `path` and its parents if needed; an existing directory is fine, a file in the way is not. */
export async function ensureDir(path: string): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new Error(`ensureDir: expected a directory path, got ${JSON.stringify(path)}`);
  try {
    await mkdir(path, { recursive: true });
  } catch (e) {
    throw new Error(`ensureDir: cannot create directory ${path}: ${(e as Error).message}`, { cause: e });
  }
  const kind = await pathKind(path);
  if (kind !== 'directory') throw new Error(`ensureDir: ${path} exists but is a ${kind}, not a directory`);
}

/** Replaces `path` with `data` (a string is written as UTF-8) so that readers see old or new, never half. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new Error(`writeFileAtomic: expected a file path, got ${JSON.stringify(path)}`);
  if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
    throw new Error(`writeFileAtomic: ${path}: data must be a Uint8Array or a string, got ${data === null ? 'null' : typeof data}`);
  }
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (e) {
    await unlink(temp).catch(() => undefined); // may not exist if open failed
    throw new Error(`writeFileAtomic: cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
