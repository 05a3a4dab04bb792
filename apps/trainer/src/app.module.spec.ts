import 'reflect-metadata';
import { trainerConfigSpec, loadConfig } from '@deit-serve/config';
import { healthV1 } from '@deit-serve/proto';
import { healthCheck, startTestService, type TestService } from '@deit-serve/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppModule } from './app.module';

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
        }),
        { kinds: {} },
      ),
    );
  });

  afterAll(() => service.close());

  it('reports its overall health as SERVING at start', async () => {
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
  });
});
