import { execFileSync } from 'node:child_process';
import {
  appendFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  realpath,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
} from '@deit-serve/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileAccess, OutsideRootsError } from './file-access';

let base: string;
let root: string;
let outside: string;
let access: FileAccess;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'deit-file-access-')));
  root = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(join(root, 'sub'), { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(root, 'inside.bin'), 'inside');
  await writeFile(join(outside, 'secret.bin'), 'secret');
  await symlink(join(root, 'inside.bin'), join(root, 'alias.bin'));
  await symlink(join(outside, 'secret.bin'), join(root, 'escape.bin'));
  await symlink(outside, join(root, 'escape-dir'));
  await symlink(join(root, 'nowhere'), join(root, 'dangling.bin'));
  execFileSync('mkfifo', [join(root, 'pipe.bin')]);
  // A root reached through a symlink counts as its real path.
  await symlink(root, join(base, 'root-link'));
  access = new FileAccess([join(base, 'root-link')]);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

describe('FileAccess', () => {
  it('reads a regular file inside a root, and one a symlink inside the roots leads to', async () => {
    expect(text(await access.readFile(join(root, 'inside.bin')))).toBe('inside');
    const file = await access.openFile(join(root, 'alias.bin'));
    try {
      expect(file.realPath).toBe(join(root, 'inside.bin'));
      expect(text(await file.readAll())).toBe('inside');
    } finally {
      await file.close();
    }
  });

  it('refuses a file symlink and a folder symlink leading out, saying where only on the error', async () => {
    for (const path of [join(root, 'escape.bin'), join(root, 'escape-dir', 'secret.bin')]) {
      const error = (await access.readFile(path).catch((e: unknown) => e)) as OutsideRootsError;
      expect(error).toBeInstanceOf(OutsideRootsError);
      expect(error).toBeInstanceOf(PermissionDeniedError);
      expect(error.resolved).toBe(join(outside, 'secret.bin'));
      expect(error.message).not.toContain(outside);
      expect(error.message).not.toContain('secret"');
    }
    expect(
      (await access.readFile(join(outside, 'secret.bin')).catch((e: unknown) => e)) as Error,
    ).toMatchObject({ message: `"${join(outside, 'secret.bin')}" is outside the data roots` });
  });

  it('refuses a FIFO at once, and a folder or device opened as a file', async () => {
    const started = Date.now();
    await expect(access.readFile(join(root, 'pipe.bin'))).rejects.toThrow(
      new InvalidArgumentError(`"${join(root, 'pipe.bin')}" is not a regular file (a FIFO)`),
    );
    expect(Date.now() - started).toBeLessThan(1_000);
    await expect(access.readFile(join(root, 'sub'))).rejects.toThrow(/is not a regular file \(a directory\)/);
    await expect(FileAccess.anywhere.readFile('/dev/zero')).rejects.toThrow(
      /is not a regular file \(a character device\)/,
    );
  });

  it('refuses a file above the limit before reading, and never reads past the size it checked', async () => {
    const path = join(root, 'growing.bin');
    await writeFile(path, '12345');
    await expect(access.readFile(path, { maxBytes: 4 })).rejects.toThrow(
      new ResourceExhaustedError(`"${path}" is 5 bytes, more than the 4 allowed; not read`),
    );
    const file = await access.openFile(path, { maxBytes: 5 });
    try {
      await appendFile(path, 'more that was never checked');
      expect(text(await file.readAll())).toBe('12345');
      const chunks: string[] = [];
      for await (const chunk of file.chunks(2)) chunks.push(text(chunk));
      expect(chunks).toEqual(['12', '34', '5']);
    } finally {
      await file.close();
    }
  });

  it('reports a missing file, a dangling symlink and a missing root', async () => {
    await expect(access.readFile(join(root, 'missing.bin'))).rejects.toBeInstanceOf(NotFoundError);
    await expect(access.readFile(join(root, 'dangling.bin'))).rejects.toThrow(/cannot be resolved/);
    await expect(
      new FileAccess([join(base, 'no-root')]).readFile(join(root, 'inside.bin')),
    ).rejects.toBeInstanceOf(OutsideRootsError);
  });

  it('opens files close-on-exec (libuv adds O_CLOEXEC)', async () => {
    const file = await access.openFile(join(root, 'inside.bin'));
    try {
      const fd = Number(/\/proc\/self\/fd\/(\d+)/.exec(await readlinkOf(file))?.[1]);
      const flags = /flags:\s+(\d+)/.exec(await readFile(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0';
      expect(parseInt(flags, 8) & 0o2000000).toBe(0o2000000);
    } finally {
      await file.close();
    }
  });

  it('lists and opens the entries of the folder it opened, even after that folder is swapped away', async () => {
    const dir = join(root, 'swapped');
    await mkdir(dir);
    await writeFile(join(dir, 'a.bin'), 'first');
    const folder = await access.openDirectory(dir);
    try {
      // The name now leads out; the opened folder is still the checked one.
      await rename(dir, join(root, 'moved'));
      await symlink(outside, dir);
      expect((await folder.entries()).map((e) => e.name)).toEqual(['a.bin']);
      const file = await folder.openFile('a.bin');
      try {
        expect(text(await file.readAll())).toBe('first');
        expect(file.path).toBe(join(dir, 'a.bin'));
      } finally {
        await file.close();
      }
      await expect(folder.openFile('../inside.bin')).rejects.toThrow(/is not a name inside/);
    } finally {
      await folder.close();
    }
    // Opened by name now, it leads out.
    await expect(access.openDirectory(dir)).rejects.toBeInstanceOf(OutsideRootsError);
  });
});

/** The descriptor this process holds open on `file` (found by its real path). */
async function readlinkOf(file: { readonly realPath: string }): Promise<string> {
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target === file.realPath) return `/proc/self/fd/${fd}`;
  }
  throw new Error(`no descriptor open on ${file.realPath}`);
}
