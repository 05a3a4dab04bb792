import 'reflect-metadata';
import { trainerConfigSpec, loadConfig } from '@deit-serve/config';
import { healthV1 } from '@deit-serve/proto';
import { healthCheck, startTestService, type TestService } from '@deit-serve/testing';
import { FINE_TUNE_JOB_KIND, PathSandbox, type JobKinds } from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppModule } from './app.module';
import { JOB_KINDS } from './tokens';
import { TrainerController } from './trainer.controller';

const dir = mkdtempSync(join(tmpdir(), 'deit-trainer-app-'));

describe('trainer app', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService((port) =>
      AppModule.register(
        loadConfig(trainerConfigSpec, {
          DEIT_TRAINER_GRPC_PORT: String(port),
          DEIT_JOBS_DB: join(dir, 'jobs.sqlite'),
          DEIT_TRAINER_WORK_DIR: dir,
          DEIT_TRAINER_DATA_ROOTS: `${join(dir, 'data')}:relative/data`,
          DEIT_MAX_DATASET_IMAGES: '300',
        }),
        {},
      ),
    );
  });

  afterAll(() => service.close());

  it('reports its overall health as SERVING at start', async () => {
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
  });

  it('builds one sandbox: StartFineTune checks with it, and the fine-tune job kind carries it to the workers', () => {
    const sandbox = service.app.get(PathSandbox);
    expect(sandbox.roots).toEqual([join(dir, 'data'), join(process.cwd(), 'relative/data')]);
    expect(service.app.get(TrainerController)['sandbox']).toBe(sandbox);
    const kinds = service.app.get<symbol, JobKinds>(JOB_KINDS);
    expect(Object.keys(kinds)).toEqual([FINE_TUNE_JOB_KIND]);
    expect(kinds[FINE_TUNE_JOB_KIND]).toEqual({
      module: expect.stringMatching(/[/\\]fine-tune-job\.[jt]s$/),
      export: 'fineTuneJob',
      config: expect.objectContaining({
        sandbox: sandbox.config,
        datasetLimits: expect.objectContaining({ maxImages: 300 }),
      }),
    });
  });
});
