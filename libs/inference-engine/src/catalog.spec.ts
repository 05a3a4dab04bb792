import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manifestSchema, type ModelRegistry, type VersionInfo } from '@deit-serve/registry';
import { describe, expect, it } from 'vitest';
import { ModelCatalog } from './catalog';
import type { ModelHost } from './model-host';

/** The committed default model's manifest, with the lineage a trainer job writes. */
function versionInfo(jobId: string | null): VersionInfo {
  const file = join(__dirname, '..', '..', '..', 'registry', 'fmnist-deit', '1', 'manifest.json');
  const manifest = manifestSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  return {
    model: 'fmnist-deit',
    version: 1,
    via: 'version',
    manifest: { ...manifest, lineage: { ...manifestSchema.shape.lineage.parse({}), job_id: jobId } },
  } as VersionInfo;
}

function catalog(info: VersionInfo): ModelCatalog {
  const registry = { getManifest: () => Promise.resolve(info) } as unknown as ModelRegistry;
  return new ModelCatalog(registry, {} as ModelHost, 'fmnist-deit');
}

describe('ModelCatalog.describe', () => {
  it("answers GetModel with the job that published the version (lineage.job_id), '' for none", async () => {
    expect((await catalog(versionInfo('3f2a-job')).describe('fmnist-deit:1')).lineage?.jobId).toBe(
      '3f2a-job',
    );
    expect((await catalog(versionInfo(null)).describe('fmnist-deit:1')).lineage?.jobId).toBe('');
  });
});
