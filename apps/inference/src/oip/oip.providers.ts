import type { Provider } from '@nestjs/common';
import type { InferenceConfig } from '@deit-serve/config';
import { HealthStatus } from '@deit-serve/grpc-server';
import { ClassificationService, InferenceMetrics, ModelHost } from '@deit-serve/inference-engine';
import { OipService } from '@deit-serve/oip';
import { healthV1 } from '@deit-serve/proto';
import type { ModelRegistry } from '@deit-serve/registry';

/** ServerMetadata's answer; npm sets the version when it starts the server. */
const SERVER = { name: 'deit-serve', version: process.env['npm_package_version'] ?? 'unknown' };

/**
 * OipService over the app's one engine: `registry` is the app's registry provider token, and
 * ServerReady / ModelReady follow the health status of `servingService`.
 */
export function oipProviders(config: InferenceConfig, registry: symbol, servingService: string): Provider[] {
  return [
    {
      provide: OipService,
      inject: [ClassificationService, ModelHost, registry, InferenceMetrics, HealthStatus],
      useFactory: (
        classification: ClassificationService,
        host: ModelHost,
        models: ModelRegistry,
        metrics: InferenceMetrics,
        health: HealthStatus,
      ) =>
        new OipService(classification, host, models, metrics, {
          server: SERVER,
          batching: {
            maxBatchSize: config.maxBatchSize,
            maxQueueDelayMs: config.maxQueueDelayMs,
            maxQueueSize: config.maxQueueSize,
          },
          ready: () => health.get(servingService) === healthV1.HealthCheckResponse_ServingStatus.SERVING,
        }),
    },
  ];
}
