import 'reflect-metadata';
import { inferenceConfigSpec, loadConfig } from '@deit-serve/config';
import { healthV1 } from '@deit-serve/proto';
import { healthCheck, startTestService, type TestService } from '@deit-serve/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from './app.module';

describe('inference app', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService((port) =>
      AppModule.register(loadConfig(inferenceConfigSpec, { DEIT_GRPC_PORT: String(port) })),
    );
  });

  afterAll(() => service.close());

  it('reports its overall health as NOT_SERVING at start', async () => {
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING,
    );
  });
});
