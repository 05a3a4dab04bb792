import { DomainError, IntegrityError } from '@deit-serve/core';
import { DirectoryRegistry } from '../src/index';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { sampleRequest } from './fixtures/sample';
import { tempRegistryEachTest } from '../src/testing-hooks';

/** Well under the default 30 s stale age and 10 s lock timeout: "at once" for a lock takeover. */
const AT_ONCE_MS = 2000;

let dir: string;
let registry: DirectoryRegistry;
tempRegistryEachTest(async (d, r) => {
  [dir, registry] = [d, r];
  for (const payload of ['1', '2', '3']) await registry.publish('m', sampleRequest(payload));
});

async function rejection(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return error as DomainError;
  }
  throw new Error('expected a rejection');
}

describe('publish re-verifies what it wrote', () => {
  it.each([
    ['model.onnx', (bytes: Buffer) => Buffer.from(bytes.toString().replace('onnx', 'ONNX'))],
    ['manifest.json', (bytes: Buffer) => Buffer.from(bytes.toString().replace('"deit"', '"DEIT"'))],
  ])('refuses a staged %s changed before the rename, and publishes nothing', async (file, change) => {
    const tampering = await DirectoryRegistry.open(dir, {
      testHooks: {
        beforeCommit: async (staging) => {
          const path = join(staging, file);
          await writeFile(path, change(await readFile(path)));
        },
      },
    });
    const error = await rejection(tampering.publish('m', sampleRequest('4')));
    expect(error).toBeInstanceOf(IntegrityError);
    expect(error.message).toContain(`"${file}"`);
    expect(error.message).toMatch(/changed after it was written/);
    expect(await registry.listVersions('m')).toEqual([1, 2, 3]);
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
    // The next publish takes a fresh number; the refused one stays burnt, as after a crash.
    expect((await registry.publish('m', sampleRequest('5'))).version).toBe(5);
  });
});

describe('locks left behind', () => {
  it.each([
    ['empty', ''],
    ['half-written', '{"token":"ab'],
  ])('a lock file left %s does not block alias changes', async (_kind, content) => {
    await writeFile(join(dir, 'm', '.lock'), content);
    const started = Date.now();
    await registry.setAlias('m', 'production', 1);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    expect((await readdir(join(dir, 'm'))).filter((f) => f.startsWith('.lock'))).toEqual([]);
  });

  it('a lock of a dead process that never wrote its time does not block either', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    await writeFile(join(dir, 'm', '.lock'), JSON.stringify({ pid: Number(dead.stdout), host: hostname() }));
    const started = Date.now();
    await registry.setAlias('m', 'production', 2);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
  });
});

describe('a damaged alias file', () => {
  beforeEach(async () => {
    await registry.setAlias('m', 'production', 1);
    await registry.setAlias('m', 'production', 2);
    await registry.setAlias('m', 'staging', 3);
    await writeFile(join(dir, 'm', 'aliases', 'production.json'), '{"seq": 2, "to": ');
  });

  it('is reported with its file; the other aliases still list', async () => {
    const { aliases, broken } = await registry.inspectAliases('m');
    expect(aliases).toEqual({ staging: 3 });
    expect(broken).toEqual([
      {
        alias: 'production',
        file: 'm/aliases/production.json',
        problem: 'alias file m/aliases/production.json is not valid JSON',
        lastRecorded: 2,
      },
    ]);
    // Serving through it is refused as DATA_LOSS, not guessed.
    expect(await rejection(registry.resolve('m@production'))).toBeInstanceOf(IntegrityError);
  });

  it('does not block changes to the other aliases', async () => {
    expect((await registry.setAlias('m', 'staging', 1)).to).toBe(1);
    expect((await registry.rollback('m', 'staging')).to).toBe(3);
  });

  it('is repaired by pointing the alias again', async () => {
    const entry = await registry.setAlias('m', 'production', 3, { reason: 'repair' });
    expect(entry).toMatchObject({ from: 2, to: 3, action: 'set' });
    expect((await registry.resolve('m@production')).version).toBe(3);
    expect((await registry.aliasHistory('m', 'production')).map((e) => e.to)).toEqual([1, 2, 3]);
  });

  it('is rewritten from the history by repairAliases', async () => {
    const repaired = await registry.repairAliases('m');
    expect(repaired).toEqual([{ alias: 'production', file: 'm/aliases/production.json', restored: 2 }]);
    expect(await registry.getAliases('m')).toEqual({ production: 2, staging: 3 });
    expect((await registry.inspectAliases('m')).broken).toEqual([]);
    // History is untouched: the pointer again equals its last change, so rollback works as before.
    expect((await registry.aliasHistory('m')).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await registry.rollback('m', 'production')).to).toBe(1);
    expect(await registry.repairAliases('m')).toEqual([]);
  });

  it('stops gc, which would otherwise not know which version to keep, naming the repair', async () => {
    const error = await rejection(registry.gc({ keepLast: 1 }));
    expect(error).toBeInstanceOf(IntegrityError);
    expect(error.message).toContain('m/aliases/production.json');
    expect(error.message).toContain('deit models repair m');
    expect(await registry.listVersions('m')).toEqual([1, 2, 3]);
  });

  it('without any history is set aside by repairAliases', async () => {
    await writeFile(join(dir, 'm', 'aliases', 'canary.json'), 'garbage');
    const repaired = await registry.repairAliases('m');
    expect(repaired).toContainEqual({ alias: 'canary', file: 'm/aliases/canary.json', restored: null });
    expect(await registry.getAliases('m')).toEqual({ production: 2, staging: 3 });
    expect((await readdir(join(dir, 'm', 'aliases'))).some((f) => f.startsWith('canary.json.broken-'))).toBe(
      true,
    );
  });
});
