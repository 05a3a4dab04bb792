import { type DirectoryRegistry } from '../src/index';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { sampleRequest } from './fixtures/sample';
import { tempRegistryEachTest } from '../src/testing-hooks';

/** Makes the next write into a lock file (any `.lock*` name) fail as a full disk does. */
const disk = vi.hoisted(() => ({ failNextLockWrite: false }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    if (disk.failNextLockWrite && basename(String(args[0])).startsWith('.lock')) {
      disk.failNextLockWrite = false;
      const enospc = (): Promise<never> =>
        Promise.reject(
          Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }),
        );
      Object.assign(handle, { writeFile: enospc, write: enospc });
    }
    return handle;
  };
  return { ...actual, open, default: { ...actual, open } };
});

let dir: string;
let registry: DirectoryRegistry;
tempRegistryEachTest(async (d, r) => {
  [dir, registry] = [d, r];
  await registry.publish('m', sampleRequest('1'));
  await registry.publish('m', sampleRequest('2'));
});

describe('a full disk while taking the lock', () => {
  it('fails the promote, leaves no lock behind, and the next alias change succeeds at once', async () => {
    disk.failNextLockWrite = true;
    await expect(registry.setAlias('m', 'production', 1)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(disk.failNextLockWrite).toBe(false); // the failure was really injected
    expect((await readdir(join(dir, 'm'))).filter((f) => f.startsWith('.lock'))).toEqual([]);

    const started = Date.now();
    expect((await registry.setAlias('m', 'production', 2)).to).toBe(2);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
