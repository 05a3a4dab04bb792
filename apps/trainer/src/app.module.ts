import { type DynamicModule, Module, type OnApplicationBootstrap } from '@nestjs/common';
import type { TrainerConfig } from '@deit-serve/config';
import { HealthModule, HealthStatus } from '@deit-serve/grpc-server';
import { healthV1 } from '@deit-serve/proto';

export const CONFIG = Symbol('trainer-config');

@Module({})
export class AppModule implements OnApplicationBootstrap {
  constructor(private readonly health: HealthStatus) {}

  static register(config: TrainerConfig): DynamicModule {
    return { module: AppModule, imports: [HealthModule], providers: [{ provide: CONFIG, useValue: config }] };
  }

  onApplicationBootstrap(): void {
    this.health.set('', healthV1.HealthCheckResponse_ServingStatus.SERVING);
  }
}
