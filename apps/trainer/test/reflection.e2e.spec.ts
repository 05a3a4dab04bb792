import 'reflect-metadata';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { bufCurl, grpcurl, grpcurlPath, startTestService, type TestService } from '@deit-serve/testing';
import { PROTO_PACKAGES, SERVICE_NAMES } from '@deit-serve/proto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../src/app.module';

/**
 * The trainer's server reflection, used by clients that are not this project's code (`buf curl
 * --reflect`, grpcurl): the schema they get from the server alone is enough to call ListJobs and to
 * describe a message with a google.protobuf.Timestamp field.
 */
const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';
const grpcurlBinary = grpcurlPath();
const SERVICE = SERVICE_NAMES.trainer;

let trainer: TestService;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deit-trainer-reflection-'));
  const vars = {
    DEIT_GRPC_HOST: '127.0.0.1',
    DEIT_JOBS_DB: join(dir, 'jobs.sqlite'),
    DEIT_TRAINER_WORK_DIR: dir,
  };
  trainer = await startTestService(
    (port) =>
      AppModule.register(loadConfig(trainerConfigSpec, { ...vars, DEIT_TRAINER_GRPC_PORT: String(port) }), {
        kinds: {},
      }),
    { protoFiles: ['trainer'], packages: [PROTO_PACKAGES.trainer] },
  );
}, 60_000);

afterAll(async () => {
  await trainer?.close();
});

describe('trainer reflection through buf curl', () => {
  it('lists the trainer and health services and calls ListJobs', async () => {
    const services = await bufCurl(trainer.address, ['--list-services', '{addr}']);
    expect(services.stderr).toBe('');
    expect(services.stdout.split('\n')).toEqual(expect.arrayContaining([SERVICE, SERVICE_NAMES.health]));
    expect(services.stdout).not.toContain(PROTO_PACKAGES.inference);
    const jobs = await bufCurl(trainer.address, ['--reflect', '-d', '{}', `{addr}/${SERVICE}/ListJobs`]);
    expect(jobs.stderr).toBe('');
    expect(jobs.code).toBe(0);
    expect(JSON.parse(jobs.stdout)).toEqual({});
  });
});

describe.skipIf(!grpcurlBinary && !inCi)('trainer reflection through grpcurl', () => {
  it('describes the service and a message with a Timestamp, and calls ListJobs', async () => {
    if (!grpcurlBinary)
      throw new Error('grpcurl is not installed: run bash tools/scripts/ci-deploy.sh --tools-only');
    const service = await grpcurl(grpcurlBinary, trainer.address, ['describe', SERVICE]);
    expect(service.stderr).toBe('');
    expect(service.stdout).toContain('rpc ListJobs');
    const job = await grpcurl(grpcurlBinary, trainer.address, ['describe', 'deit.trainer.v1.Job']);
    expect(job.stderr).toBe('');
    expect(job.stdout).toMatch(/\.google\.protobuf\.Timestamp created_at = \d+;/);
    const jobs = await grpcurl(grpcurlBinary, trainer.address, [`${SERVICE}/ListJobs`], ['-d', '{}']);
    expect(jobs.stderr).toBe('');
    expect(jobs.code).toBe(0);
  });
});
