import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manifestSchema, type ModelRegistry, type VersionInfo } from '@deit-serve/registry';
import { initDeitWeights, numel, resolveDeitConfig } from '@deit-serve/model';
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

const MODEL_ONNX = join(__dirname, '..', '..', '..', 'registry', 'fmnist-deit', '1', 'model.onnx');

function catalog(info: VersionInfo, reads: string[] = []): ModelCatalog {
  const registry = {
    getManifest: () => Promise.resolve(info),
    loadVersion: (ref: { name: string; version: number }, options: { files: string[] }) => {
      reads.push(`${ref.name}:${ref.version} ${options.files.join(',')}`);
      return Promise.resolve({ ...info, files: new Map([['model.onnx', readFileSync(MODEL_ONNX)]]) });
    },
  } as unknown as ModelRegistry;
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

describe('ModelCatalog.describe parameters', () => {
  it("counts the version's parameters from its ONNX file, as the network defines them, reading the file once", async () => {
    const reads: string[] = [];
    const models = catalog(versionInfo(null), reads);
    // The committed default model is deit_pico_distilled_patch4_28 with 10 classes.
    const config = resolveDeitConfig({ preset: 'deit_pico_distilled_patch4_28', numClasses: 10 });
    let expected = 0;
    for (const tensor of initDeitWeights(config, 0).values()) expected += numel(tensor.shape);
    expect(expected).toBeGreaterThan(600_000);
    expect((await models.describe('fmnist-deit:1')).parameters).toBe(expected);
    expect((await models.describe('fmnist-deit:1')).parameters).toBe(expected);
    expect(reads).toEqual(['fmnist-deit:1 model.onnx']);
  });
});
