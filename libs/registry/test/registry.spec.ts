import {
  DomainError,
  FailedPreconditionError,
  IntegrityError,
  InvalidArgumentError,
  NotFoundError,
} from '@deit-serve/core';
import { DirectoryRegistry, type PublishRequest } from '../src/index';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { sampleRequest } from './fixtures/sample';
import { tempRegistryEachTest } from '../src/testing-hooks';

let dir: string;
let registry: DirectoryRegistry;
tempRegistryEachTest((d, r) => {
  [dir, registry] = [d, r];
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

describe('publish', () => {
  it('assigns increasing versions and stores files, labels and manifest', async () => {
    const first = await registry.publish('deit-tiny', sampleRequest('one'));
    const second = await registry.publish('deit-tiny', sampleRequest('two'));
    expect([first.version, second.version]).toEqual([1, 2]);
    expect(await registry.listModels()).toEqual(['deit-tiny']);
    expect(await registry.listVersions('deit-tiny')).toEqual([1, 2]);

    const versionDir = join(dir, 'deit-tiny', '2');
    expect((await readdir(versionDir)).sort()).toEqual(['labels.txt', 'manifest.json', 'model.onnx']);
    expect(await readFile(join(versionDir, 'labels.txt'), 'utf8')).toBe('cat\ndog\nbird\n');
    const manifest = JSON.parse(await readFile(join(versionDir, 'manifest.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(manifest).toMatchObject({
      schema_version: 1,
      name: 'deit-tiny',
      version: 2,
      preset: 'deit_tiny_distilled_patch4_32',
    });
    expect(manifest['files']).toEqual({
      'labels.txt': { sha256: createHash('sha256').update('cat\ndog\nbird\n').digest('hex'), size: 13 },
      'model.onnx': { sha256: createHash('sha256').update('onnx:two').digest('hex'), size: 8 },
    });
    expect(second.manifest.lineage?.hyperparameters).toEqual({
      lr: 0.0005,
      epochs: 3,
      augment: { mixup: 0.8 },
    });

    const loaded = await registry.loadVersion('deit-tiny:1');
    expect(loaded.files.get('model.onnx')?.toString()).toBe('onnx:one');
    // Staging leaves nothing behind.
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
  });

  it('copies files given by path and takes labels from labels.txt', async () => {
    const source = join(dir, '..', `${Date.now()}-src`);
    await mkdir(source);
    await writeFile(join(source, 'model.onnx'), 'onnx-from-disk');
    await writeFile(join(source, 'labels.txt'), 'a\nb\n');
    await writeFile(join(source, 'curves.png'), Buffer.from([0x89, 0x50]));
    const request = sampleRequest('x');
    delete request.labels;
    const published = await registry.publish('m', {
      ...request,
      files: {
        'model.onnx': join(source, 'model.onnx'),
        'labels.txt': join(source, 'labels.txt'),
        'curves.png': join(source, 'curves.png'),
        'report.md': Buffer.from('# report\n'),
      },
    });
    expect(published.manifest.labels).toEqual({ '0': 'a', '1': 'b' });
    const loaded = await registry.loadVersion('m', { files: ['model.onnx', 'report.md', 'curves.png'] });
    expect(loaded.files.get('model.onnx')?.toString()).toBe('onnx-from-disk');
    expect(loaded.files.get('report.md')?.toString()).toBe('# report\n');
    expect(await cleanupDir(source)).toBe(true);
  });

  it.each<[string, (r: PublishRequest) => PublishRequest, string]>([
    [
      'no model.onnx',
      (r) => ({ ...r, files: { 'x.onnx': Buffer.from('x') } }),
      'files must include model.onnx',
    ],
    [
      'a nested file name',
      (r) => ({ ...r, files: { ...r.files, 'a/b.txt': Buffer.from('x') } }),
      'file name "a/b.txt" is invalid',
    ],
    [
      'a manifest.json file',
      (r) => ({ ...r, files: { ...r.files, 'manifest.json': Buffer.from('{}') } }),
      'written by the registry',
    ],
    [
      'a missing source path',
      (r) => ({ ...r, files: { 'model.onnx': '/nonexistent/model.onnx' } }),
      '/nonexistent/model.onnx does not exist',
    ],
    ['no labels at all', (r) => ({ ...r, labels: undefined }), 'labels: required'],
    [
      'labels.txt disagreeing with labels',
      (r) => ({ ...r, files: { ...r.files, 'labels.txt': Buffer.from('x\n') } }),
      'labels.txt and labels disagree',
    ],
    [
      'a bad input spec',
      (r) => ({ ...r, input: { ...r.input, std: [0, 1, 1] } }),
      'input.std.0: must be > 0',
    ],
  ])('refuses %s with INVALID_ARGUMENT and stores nothing', async (_what, change, message) => {
    const error = await rejection(registry.publish('m', change(sampleRequest('x'))));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toContain(message);
    expect(await registry.listModels()).toEqual([]);
    expect(await readdir(join(dir, '.tmp')).catch(() => [])).toEqual([]);
  });

  it('refuses bad model names', async () => {
    const error = await rejection(registry.publish('../escape', sampleRequest('x')));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toContain('must not contain ".."');
  });
});

async function cleanupDir(path: string): Promise<boolean> {
  await rm(path, { recursive: true, force: true });
  return true;
}

describe('refs and resolution', () => {
  it('resolves a bare name to production when set, else to the newest version', async () => {
    await registry.publish('m', sampleRequest('1'));
    await registry.publish('m', sampleRequest('2'));
    expect(await registry.resolve('m')).toEqual({ model: 'm', version: 2, via: 'latest' });
    await registry.setAlias('m', 'production', 1);
    await registry.publish('m', sampleRequest('3'));
    // A new version does not silently become the default once production is set.
    expect(await registry.resolve('m')).toEqual({
      model: 'm',
      version: 1,
      via: 'alias',
      alias: 'production',
    });
    expect(await registry.resolve('m:3')).toEqual({ model: 'm', version: 3, via: 'version' });
  });

  it('reports unknown models, versions and aliases as NOT_FOUND with what exists', async () => {
    await registry.publish('m', sampleRequest('1'));
    const unknownModel = await rejection(registry.resolve('nope'));
    expect(unknownModel).toBeInstanceOf(NotFoundError);
    expect(unknownModel.message).toBe('unknown model "nope" (known: m)');
    const unknownVersion = await rejection(registry.getManifest('m:7'));
    expect(unknownVersion.message).toBe('model "m" has no version 7 (versions: 1)');
    const unknownAlias = await rejection(registry.loadVersion('m@staging'));
    expect(unknownAlias).toBeInstanceOf(NotFoundError);
    expect(unknownAlias.message).toBe('model "m" has no alias "staging" (it has no aliases)');
    expect(await rejection(registry.resolve('nope@production'))).toBeInstanceOf(NotFoundError);
    expect(await rejection(registry.resolve('Bad'))).toBeInstanceOf(InvalidArgumentError);
    const missingFile = await rejection(registry.loadVersion('m', { files: ['curves.png'] }));
    expect(missingFile).toBeInstanceOf(NotFoundError);
  });
});

describe('integrity', () => {
  beforeEach(async () => {
    await registry.publish('m', sampleRequest('original'));
  });
  const modelFile = (): string => join(dir, 'm', '1', 'model.onnx');

  it('refuses a file with flipped bytes, naming it, on every read path', async () => {
    await writeFile(modelFile(), 'onnx:originaX'); // same size, different content
    for (const read of [() => registry.getManifest('m'), () => registry.loadVersion('m:1')]) {
      const error = await rejection(read());
      expect(error).toBeInstanceOf(IntegrityError);
      expect(error.kind).toBe('DATA_LOSS');
      expect(error.message).toMatch(/^m:1: file "model.onnx" is corrupt: sha256 [0-9a-f]{64}, manifest says/);
    }
    const report = await registry.verify('m');
    expect(report.ok).toBe(false);
    expect(report.files.find((f) => f.path === 'model.onnx')?.problem).toContain('is corrupt');
    expect(report.files.find((f) => f.path === 'labels.txt')?.ok).toBe(true);
    // The cheap check cannot see same-size corruption; the full check is the default.
    await expect(registry.getManifest('m', { integrity: 'size' })).resolves.toBeDefined();
  });

  it('refuses truncated and missing files, naming them', async () => {
    await truncate(modelFile(), 4);
    const truncated = await rejection(registry.loadVersion('m'));
    expect(truncated.message).toBe('m:1: file "model.onnx" is truncated: 4 bytes, manifest says 13');
    expect(await rejection(registry.getManifest('m', { integrity: 'size' }))).toBeInstanceOf(IntegrityError);
    await rm(join(dir, 'm', '1', 'labels.txt'));
    // Loading model.onnx alone still refuses a version that lost another file.
    await writeFile(modelFile(), 'onnx:original');
    const missing = await rejection(registry.loadVersion('m'));
    expect(missing.message).toBe('m:1: file "labels.txt" is missing');
  });

  it('refuses a damaged or foreign manifest as DATA_LOSS naming manifest.json', async () => {
    const path = join(dir, 'm', '1', 'manifest.json');
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.slice(0, 40));
    expect((await rejection(registry.getManifest('m'))).message).toBe(
      'm:1: file "manifest.json" is not valid JSON',
    );
    expect((await registry.verify('m:1')).problem).toContain('manifest.json');
    await writeFile(path, text.replace('"crop_pct": 0.875', '"crop_pct": 7'));
    const invalid = await rejection(registry.getManifest('m'));
    expect(invalid).toBeInstanceOf(IntegrityError);
    expect(invalid.message).toContain('m:1: file "manifest.json" is invalid: input.crop_pct');
    await writeFile(path, text.replace('"version": 1', '"version": 5'));
    expect((await rejection(registry.getManifest('m'))).message).toBe(
      'm:1: file "manifest.json" describes m:5',
    );
  });

  it('refuses to point an alias at a damaged version', async () => {
    await writeFile(modelFile(), 'onnx:originaX');
    expect(await rejection(registry.setAlias('m', 'production', 1))).toBeInstanceOf(IntegrityError);
    expect(await registry.getAliases('m')).toEqual({});
  });
});

describe('aliases', () => {
  beforeEach(async () => {
    for (const payload of ['1', '2', '3']) await registry.publish('m', sampleRequest(payload));
  });

  it('moves atomically, records who/when/from/to/why and rolls back step by step', async () => {
    await registry.setAlias('m', 'production', 1, { actor: 'ci', reason: 'first' });
    await registry.setAlias('m', 'production', 2, { actor: 'ci' });
    await registry.setAlias('m', 'staging', 3, { actor: 'ci' });
    await registry.setAlias('m', 'production', 3, { actor: 'alice', reason: 'better top-1' });
    expect(await registry.getAliases('m')).toEqual({ production: 3, staging: 3 });

    const back = await registry.rollback('m', 'production', { actor: 'bob', reason: 'latency regression' });
    expect(back).toMatchObject({
      action: 'rollback',
      from: 3,
      to: 2,
      actor: 'bob',
      reason: 'latency regression',
    });
    expect((await registry.resolve('m')).version).toBe(2);
    expect((await registry.rollback('m', 'production')).to).toBe(1);
    const nothingLeft = await rejection(registry.rollback('m', 'production'));
    expect(nothingLeft).toBeInstanceOf(FailedPreconditionError);
    expect(nothingLeft.message).toContain('was unset before its last move');

    const history = await registry.aliasHistory('m', 'production');
    expect(history.map((e) => [e.seq, e.action, e.from, e.to])).toEqual([
      [1, 'set', null, 1],
      [2, 'set', 1, 2],
      [4, 'set', 2, 3],
      [5, 'rollback', 3, 2],
      [6, 'rollback', 2, 1],
    ]);
    expect(history[2]).toMatchObject({
      actor: 'alice',
      reason: 'better top-1',
      model: 'm',
      alias: 'production',
    });
    expect(Date.parse(history[0]?.at ?? '')).toBeGreaterThan(0);
    // Only whole files: no temporary leftovers of the atomic writes.
    expect((await readdir(join(dir, 'm', 'aliases'))).sort()).toEqual(['production.json', 'staging.json']);
  });

  it('has nothing to roll back for a fresh alias, and deletes with a record', async () => {
    expect(await rejection(registry.rollback('m', 'canary'))).toBeInstanceOf(FailedPreconditionError);
    await registry.setAlias('m', 'canary', 2);
    expect((await registry.setAlias('m', 'canary', 2)).seq).toBe(1); // no-op: same target
    await registry.deleteAlias('m', 'canary', { reason: 'done' });
    expect(await registry.getAliases('m')).toEqual({});
    expect(await rejection(registry.resolve('m@canary'))).toBeInstanceOf(NotFoundError);
    expect((await registry.rollback('m', 'canary')).to).toBe(2);
    expect(await rejection(registry.deleteAlias('m', 'other'))).toBeInstanceOf(NotFoundError);
    expect(await rejection(registry.setAlias('m', 'Prod', 1))).toBeInstanceOf(InvalidArgumentError);
    expect(await rejection(registry.setAlias('m', 'prod', 9))).toBeInstanceOf(NotFoundError);
  });

  it('serialises concurrent moves: every change sees the previous one', async () => {
    const targets = [1, 2, 3, 1, 2, 3, 1, 2];
    await Promise.all(targets.map((v, i) => registry.setAlias('m', 'production', v, { actor: `w${i}` })));
    const history = await registry.aliasHistory('m', 'production');
    expect(history.map((e) => e.seq)).toEqual(history.map((_, i) => i + 1));
    for (let i = 1; i < history.length; i++) expect(history[i]?.from).toBe(history[i - 1]?.to);
    expect((await registry.getAliases('m'))['production']).toBe(history[history.length - 1]?.to);
  });

  it('recovers a history line lost in a crash between pointer and history writes', async () => {
    await registry.setAlias('m', 'production', 1);
    await registry.setAlias('m', 'production', 2);
    const historyPath = join(dir, 'm', 'alias-history.jsonl');
    const lines = (await readFile(historyPath, 'utf8')).split('\n');
    // Drop the last entry and leave a torn half line, as a crash mid-append would.
    await writeFile(historyPath, lines[0] + '\n' + (lines[1] ?? '').slice(0, 10));
    expect((await registry.aliasHistory('m')).map((e) => e.to)).toEqual([1, 2]);
    expect((await registry.rollback('m', 'production')).to).toBe(1);
    expect((await registry.aliasHistory('m')).map((e) => [e.seq, e.to])).toEqual([
      [1, 1],
      [2, 2],
      [3, 1],
    ]);
  });

  it('takes over a lock left by a dead process', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    await writeFile(
      join(dir, 'm', '.lock'),
      JSON.stringify({ token: 't', pid: Number(dead.stdout), host: hostname(), acquired_at: Date.now() }),
    );
    const started = Date.now();
    await registry.setAlias('m', 'production', 1);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('gives up with ABORTED when a live lock is held too long', async () => {
    const busy = await DirectoryRegistry.open(dir, { lockTimeoutMs: 100 });
    await writeFile(
      join(dir, 'm', '.lock'),
      JSON.stringify({ token: 't', pid: process.pid, host: `${hostname()}-other`, acquired_at: Date.now() }),
    );
    const error = await rejection(busy.setAlias('m', 'production', 1));
    expect(error.kind).toBe('ABORTED');
  });
});

describe('gc', () => {
  it('keeps the newest N, aliased versions and rollback targets; never reuses numbers', async () => {
    for (let i = 1; i <= 6; i++) await registry.publish('m', sampleRequest(String(i)));
    await registry.publish('other', sampleRequest('o'));
    await registry.setAlias('m', 'production', 1);
    await registry.setAlias('m', 'production', 2);
    const dry = await registry.gc({ keepLast: 2, dryRun: true });
    expect(dry.removed).toEqual([
      { model: 'm', version: 4 },
      { model: 'm', version: 3 },
    ]);
    expect(await registry.listVersions('m')).toEqual([1, 2, 3, 4, 5, 6]);

    const report = await registry.gc({ keepLast: 2 });
    expect(report.removed).toEqual(dry.removed);
    expect(report.protected).toEqual([
      { model: 'm', version: 2, reason: 'alias production' },
      { model: 'm', version: 1, reason: 'rollback target of production' },
    ]);
    expect(await registry.listVersions('m')).toEqual([1, 2, 5, 6]);
    expect(await registry.listVersions('other')).toEqual([1]);
    expect(await readdir(join(dir, 'm', '.claims'))).toEqual(['6']);

    await registry.gc({ keepLast: 1 });
    expect(await registry.listVersions('m')).toEqual([1, 2, 6]);
    // Removed numbers stay burnt.
    expect((await registry.publish('m', sampleRequest('7'))).version).toBe(7);
    expect(await rejection(registry.gc({ keepLast: 0 }))).toBeInstanceOf(InvalidArgumentError);
  });

  it('removes stale temporary directories only', async () => {
    await mkdir(join(dir, '.tmp', 'publish-m-stale'), { recursive: true });
    await writeFile(join(dir, '.tmp', 'publish-m-stale', 'model.onnx'), 'half');
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(dir, '.tmp', 'publish-m-stale', 'model.onnx'), old, old);
    await utimes(join(dir, '.tmp', 'publish-m-stale'), old, old);
    await mkdir(join(dir, '.tmp', 'publish-m-fresh'));
    await registry.publish('m', sampleRequest('1'));
    await mkdir(join(dir, 'm', 'aliases'));
    await writeFile(join(dir, 'm', 'aliases', 'production.json.tmp-1-abc'), '{"half');
    await utimes(join(dir, 'm', 'aliases', 'production.json.tmp-1-abc'), old, old);
    const report = await registry.gc({ keepLast: 3 });
    expect(report.tempRemoved.sort()).toEqual([
      '.tmp/publish-m-stale',
      'm/aliases/production.json.tmp-1-abc',
    ]);
    expect(await readdir(join(dir, 'm', 'aliases'))).toEqual([]);
    expect(await readdir(join(dir, '.tmp'))).toEqual(['publish-m-fresh']);
  });
});
