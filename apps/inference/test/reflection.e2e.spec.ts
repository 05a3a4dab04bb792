import { DirectoryRegistry } from '@deit-serve/registry';
import { bufCurl, grpcurl, grpcurlPath, publishTinyDeit } from '@deit-serve/testing';
import { PROTO_PACKAGES, SERVICE_NAMES } from '@deit-serve/proto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInference, type Inference } from './support';

/**
 * Server reflection, used by clients that are not this project's code: `buf curl --reflect` and
 * grpcurl (CI installs it; a developer without it sees those cases skipped, CI fails instead). Both
 * must resolve every type the service's methods use (google.protobuf.Timestamp included) and call a
 * method with the schema they got from the server alone.
 */
const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';
const grpcurlBinary = grpcurlPath();
const SERVICE = SERVICE_NAMES.inference;

let inference: Inference;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deit-reflection-'));
  await publishTinyDeit(await DirectoryRegistry.open(dir, { create: true }), 'tiny');
  inference = await startInference(dir);
}, 60_000);

afterAll(async () => {
  await inference?.close();
});

describe('server reflection through buf curl', () => {
  it('lists the inference and health services', async () => {
    const out = await bufCurl(inference.service.address, ['--list-services', '{addr}']);
    expect(out.stderr).toBe('');
    expect(out.stdout.split('\n')).toEqual(expect.arrayContaining([SERVICE, SERVICE_NAMES.health]));
    expect(out.stdout).not.toContain(PROTO_PACKAGES.trainer);
  });

  it('calls ListModels and GetModel with the reflected schema (Timestamp and snake_case fields resolve)', async () => {
    const list = await bufCurl(inference.service.address, [
      '--reflect',
      '-d',
      '{}',
      `{addr}/${SERVICE}/ListModels`,
    ]);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject({ models: [expect.objectContaining({ name: 'tiny' })] });
    const get = await bufCurl(inference.service.address, [
      '--reflect',
      '-d',
      '{"model":"tiny"}',
      `{addr}/${SERVICE}/GetModel`,
    ]);
    expect(get.stderr).toBe('');
    expect(get.code).toBe(0);
    // Field names as the proto spells them (JSON camelCase of snake_case), Timestamp as RFC 3339.
    expect(JSON.parse(get.stdout)).toMatchObject({
      clsOutput: expect.any(String),
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });
});

describe.skipIf(!grpcurlBinary && !inCi)('server reflection through grpcurl', () => {
  const binary = (): string => {
    if (!grpcurlBinary)
      throw new Error('grpcurl is not installed: run bash tools/scripts/ci-deploy.sh --tools-only');
    return grpcurlBinary;
  };

  it('lists and describes the service, its messages and google.protobuf.Timestamp', async () => {
    const list = await grpcurl(binary(), inference.service.address, ['list']);
    expect(list.stderr).toBe('');
    expect(list.stdout.split('\n')).toEqual(expect.arrayContaining([SERVICE, SERVICE_NAMES.health]));
    const service = await grpcurl(binary(), inference.service.address, ['describe', SERVICE]);
    expect(service.stderr).toBe('');
    expect(service.stdout).toContain(
      'rpc Classify ( .deit.inference.v1.ClassifyRequest ) returns ( .deit.inference.v1.ClassifyResponse )',
    );
    const timestamp = await grpcurl(binary(), inference.service.address, [
      'describe',
      'google.protobuf.Timestamp',
    ]);
    expect(timestamp.stderr).toBe('');
    expect(timestamp.stdout).toContain('int64 seconds = 1;');
  });

  it('calls ListModels with the reflected schema', async () => {
    const out = await grpcurl(binary(), inference.service.address, [`${SERVICE}/ListModels`], ['-d', '{}']);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ models: [expect.objectContaining({ name: 'tiny' })] });
  });
});
