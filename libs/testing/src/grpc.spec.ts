import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { HealthModule, HealthStatus } from '@deit-serve/grpc-server';
import { healthV1 } from '@deit-serve/proto';
import { describe, expect, it } from 'vitest';
import { healthCheck, startTestService } from './grpc';

@Module({ imports: [HealthModule] })
class EmptyModule {}

describe('startTestService', () => {
  it('serves on a loopback port until closed', async () => {
    const service = await startTestService(() => EmptyModule);
    expect(service.address).toMatch(/^127\.0\.0\.1:\d+$/);
    await expect(healthCheck(service.address)).rejects.toMatchObject({ code: 5 }); // '' not registered: NOT_FOUND
    await service.close();
    await expect(healthCheck(service.address)).rejects.toMatchObject({ code: 14 }); // UNAVAILABLE
  });

  it('exposes the app for test set-up', async () => {
    const service = await startTestService(() => EmptyModule);
    service.app.get(HealthStatus).set('', healthV1.HealthCheckResponse_ServingStatus.SERVING);
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
    await service.close();
  });
});
