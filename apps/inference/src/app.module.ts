import { type DynamicModule, Module, type OnApplicationBootstrap } from '@nestjs/common';
import type { InferenceConfig } from '@deit-serve/config';
import { HealthModule, HealthStatus } from '@deit-serve/grpc-server';
import { healthV1 } from '@deit-serve/proto';

export const CONFIG = Symbol('inference-config');

@Module({})
export class AppModule implements OnApplicationBootstrap {
  constructor(private readonly health: HealthStatus) {}

  static register(config: InferenceConfig): DynamicModule {
    return { module: AppModule, imports: [HealthModule], providers: [{ provide: CONFIG, useValue: config }] };
  }

  onApplicationBootstrap(): void {
    // Not serving until a model is loaded: the classification service lands with the model registry
    // and runtime (see README, status).
    this.health.set('', healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING);
  }
}
