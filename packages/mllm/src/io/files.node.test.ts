import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDir, pathKind, readBytes, readBytesIfExists, writeFileAtomic } from './files.node.js';

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'keel-files-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('files.node', () => {
  it('writes bytes and text atomically, replaces an existing file and leaves no temporary file', async () => {
    const path = join(root, 'a.bin');
    await writeFileAtomic(path, Uint8Array.from([1, 2, 3]));
    expect([...(await readBytes(path))]).toEqual([1, 2, 3]);
    await writeFileAtomic(path, 'héllo');
    expect(await readFile(path, 'utf8')).toBe('héllo');
    expect(await readdir(root)).toEqual(['a.bin']);
  });

  it('keeps the old target and removes its temporary file when the final rename fails', async () => {
    const target = join(root, 'occupied');
    await mkdir(target);
    await writeFile(join(target, 'inside.txt'), 'keep');
    await expect(writeFileAtomic(target, 'new')).rejects.toThrow(new RegExp(`^writeFileAtomic: cannot write ${target}: `));
    expect(await readFile(join(target, 'inside.txt'), 'utf8')).toBe('keep');
    expect((await readdir(root)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('fails naming the path when the directory does not exist, without creating it', async () => {
    const path = join(root, 'missing-dir', 'x.json');
    await expect(writeFileAtomic(path, '{}')).rejects.toThrow(/cannot write .*missing-dir\/x\.json: ENOENT/);
    expect(await pathKind(join(root, 'missing-dir'))).toBe('missing');
  });

  it('rejects data that is neither bytes nor text', async () => {
    await expect(writeFileAtomic(join(root, 'b'), 42 as unknown as string)).rejects.toThrow(/data must be a Uint8Array or a string, got number/);
    expect(await pathKind(join(root, 'b'))).toBe('missing');
  });

  it('ensureDir creates nested directories, accepts existing ones and refuses a file in the way', async () => {
    const nested = join(root, 'x', 'y', 'z');
    await ensureDir(nested);
    await ensureDir(nested);
    expect(await pathKind(nested)).toBe('directory');
    await writeFile(join(root, 'plain'), '');
    await expect(ensureDir(join(root, 'plain'))).rejects.toThrow(/ensureDir: (cannot create directory .*plain|.*plain exists but is a file)/);
  });

  it('readBytesIfExists returns null for a missing file and pathKind tells files from directories', async () => {
    expect(await readBytesIfExists(join(root, 'none'))).toBeNull();
    await expect(readBytes(join(root, 'none'))).rejects.toThrow(/ENOENT/);
    expect(await pathKind(join(root, 'a.bin'))).toBe('file');
    expect(await pathKind(join(root, 'a.bin', 'below'))).toBe('missing');
  });
});
