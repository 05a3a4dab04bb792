import { IntegrityError, NotFoundError } from '@deit-serve/core';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryRegistry } from '../src/index';
import { VersionIntegrity } from '../src/directory/integrity';
import { RegistryLayout } from '../src/directory/layout';
import { sampleRequest, tempDir } from './fixtures/sample';

let dir: string;
let cleanup: () => Promise<void>;
let integrity: VersionIntegrity;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  const registry = await DirectoryRegistry.open(dir);
  await registry.publish('m', sampleRequest('payload'));
  integrity = new VersionIntegrity(new RegistryLayout(dir, { timeoutMs: 1000, staleMs: 1000 }));
});
afterEach(async () => {
  await cleanup();
});

describe('VersionIntegrity (on its own, without the registry)', () => {
  it('reads the manifest of a stored version and reports every file intact', async () => {
    const manifest = await integrity.readManifest('m', 1);
    expect(manifest.name).toBe('m');
    const report = await integrity.verify('m', 1);
    expect(report.ok).toBe(true);
    expect(report.files.map((f) => f.path).sort()).toEqual(Object.keys(manifest.files).sort());
  });

  it('tells a missing version (NotFound) from a damaged manifest (Integrity)', async () => {
    await expect(integrity.readManifest('m', 2)).rejects.toBeInstanceOf(NotFoundError);
    await writeFile(join(dir, 'm', '1', 'manifest.json'), '{');
    await expect(integrity.readManifest('m', 1)).rejects.toThrow(
      new IntegrityError('m:1: file "manifest.json" is not valid JSON'),
    );
    expect(await integrity.verify('m', 1)).toMatchObject({ ok: false, files: [] });
  });

  it('names a truncated file in the cheap size check, and a same-size change only when re-hashing', async () => {
    const manifest = await integrity.readManifest('m', 1);
    const entry = manifest.files['model.onnx'];
    const path = join(dir, 'm', '1', 'model.onnx');
    await writeFile(path, 'X'.repeat(entry.size));
    expect(await integrity.checkFile('m', 1, 'model.onnx', entry, 'size')).toMatchObject({ ok: true });
    const full = await integrity.checkFile('m', 1, 'model.onnx', entry, 'full');
    expect(full.ok).toBe(false);
    expect(full.problem).toMatch(/^m:1: file "model.onnx" is corrupt: sha256 [0-9a-f]{64}, manifest says/);
    await expect(integrity.readChecked('m', 1, 'model.onnx', entry)).rejects.toBeInstanceOf(IntegrityError);

    await truncate(path, 1);
    await expect(integrity.assertIntact('m', 1, manifest, 'size')).rejects.toThrow(
      `m:1: file "model.onnx" is truncated: 1 bytes, manifest says ${entry.size}`,
    );
    // Files left out are not looked at: loadVersion checks the ones it reads while reading them.
    await integrity.assertIntact('m', 1, manifest, 'size', new Set(['model.onnx']));
  });
});
