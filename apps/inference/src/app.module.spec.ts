import 'reflect-metadata';
import { inferenceConfigSpec, loadConfig } from '@deit-serve/config';
import { healthV1 } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { healthCheck, startTestService, type TestService } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from './app.module';

const config = (port: number, registryDir: string) =>
  loadConfig(inferenceConfigSpec, {
    DEIT_GRPC_PORT: String(port),
    DEIT_METRICS_PORT: '0',
    DEIT_REGISTRY_DIR: registryDir,
  });

describe('inference app without a servable model', () => {
  let service: TestService;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deit-empty-'));
    await DirectoryRegistry.open(dir, { create: true });
    service = await startTestService((port) => AppModule.register(config(port, dir)));
  });

  afterAll(() => service.close());

  it('starts and reports NOT_SERVING while the default model is missing', async () => {
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING,
    );
  });

  it('refuses to start on a registry folder that does not exist, naming it', async () => {
    await expect(
      startTestService((port) => AppModule.register(config(port, '/nonexistent/registry'))),
    ).rejects.toThrow(/\/nonexistent\/registry/);
  });
});
