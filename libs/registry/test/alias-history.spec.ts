import { FailedPreconditionError, NotFoundError } from '@deit-serve/core';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AliasFiles } from '../src/directory/alias-files';
import { AliasHistory, nextEntry, type AliasTargets } from '../src/directory/alias-history';
import { RegistryLayout } from '../src/directory/layout';
import { tempDir } from './fixtures/sample';

let dir: string;
let cleanup: () => Promise<void>;
let history: AliasHistory;
/** Versions the fake store has; a version outside it is unknown, one in `damaged` fails its hash check. */
let versions: Set<number>;
let damaged: Set<number>;

const targets: AliasTargets = {
  requireModel: () => Promise.resolve(),
  requireIntact: (model, version) => {
    if (!versions.has(version))
      return Promise.reject(new NotFoundError(`${model}:${version} does not exist`));
    if (damaged.has(version)) return Promise.reject(new Error(`${model}:${version} is corrupt`));
    return Promise.resolve();
  },
  requireVersion: (model, version) =>
    versions.has(version) ? Promise.resolve() : Promise.reject(new NotFoundError(`${model}:${version} gone`)),
};

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  versions = new Set([1, 2, 3]);
  damaged = new Set();
  const layout = new RegistryLayout(dir, { timeoutMs: 1000, staleMs: 1000 });
  await mkdir(layout.modelDir('m')); // a model's directory exists once it has a version
  history = new AliasHistory(layout, new AliasFiles(layout.root), targets);
});
afterEach(async () => {
  await cleanup();
});

describe('AliasHistory (alias policy against a fake store)', () => {
  it('records each move and walks back through earlier targets on repeated rollbacks', async () => {
    await history.set('m', 'prod', 1, { actor: 'a' });
    await history.set('m', 'prod', 2, { actor: 'a' });
    await history.set('m', 'prod', 3, { actor: 'a', reason: 'better' });
    expect((await history.rollback('m', 'prod', { actor: 'b' })).to).toBe(2);
    expect((await history.rollback('m', 'prod', { actor: 'b' })).to).toBe(1);
    await expect(history.rollback('m', 'prod')).rejects.toBeInstanceOf(FailedPreconditionError);
    expect((await history.entries('m', 'prod')).map((e) => [e.action, e.from, e.to])).toEqual([
      ['set', null, 1],
      ['set', 1, 2],
      ['set', 2, 3],
      ['rollback', 3, 2],
      ['rollback', 2, 1],
    ]);
    expect(await history.current('m')).toEqual({ prod: 1 });
  });

  it('refuses to point an alias at a version whose files fail the check, and records nothing', async () => {
    damaged.add(2);
    await history.set('m', 'prod', 1);
    await expect(history.set('m', 'prod', 2)).rejects.toThrow('m:2 is corrupt');
    expect(await history.entries('m')).toHaveLength(1);
    expect(await history.current('m')).toEqual({ prod: 1 });
  });

  it('turns a rollback to a version that no longer exists into FAILED_PRECONDITION', async () => {
    await history.set('m', 'prod', 1);
    await history.set('m', 'prod', 2);
    versions.delete(1);
    await expect(history.rollback('m', 'prod')).rejects.toThrow(
      new FailedPreconditionError('cannot roll back m@prod to version 1: m:1 does not exist'),
    );
  });

  it('restores a history line lost in a crash from its pointer file on the next change', async () => {
    await history.set('m', 'prod', 1);
    await history.set('m', 'prod', 2);
    const file = join(dir, 'm', 'alias-history.jsonl');
    const [first] = (await readFile(file, 'utf8')).split('\n');
    await writeFile(file, `${first}\n`); // the second append never happened
    expect((await history.entries('m')).map((e) => e.seq)).toEqual([1, 2]); // read side already sees it
    await history.set('m', 'staging', 3);
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([1, 2, 3]);
  });

  it('numbers a change after the highest seq and stamps who and why', () => {
    const entry = nextEntry(
      'm',
      [{ seq: 7 } as never, { seq: 3 } as never],
      {
        alias: 'a',
        action: 'set',
        from: null,
        to: 1,
      },
      { actor: 'me', reason: 'r' },
    );
    expect(entry).toMatchObject({ seq: 8, model: 'm', alias: 'a', actor: 'me', reason: 'r' });
  });
});
