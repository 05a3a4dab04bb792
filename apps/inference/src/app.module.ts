import {
  type DynamicModule,
  Inject,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type BeforeApplicationShutdown,
} from '@nestjs/common';
import type { Server } from 'node:http';
import type { InferenceConfig } from '@deit-serve/config';
import { HealthModule, HealthStatus } from '@deit-serve/grpc-server';
import {
  ClassificationService,
  InferenceMetrics,
  ModelCatalog,
  ModelHost,
} from '@deit-serve/inference-engine';
import { healthV1, SERVICE_NAMES } from '@deit-serve/proto';
import { DirectoryRegistry, type ModelRegistry } from '@deit-serve/registry';
import { InferenceController, STREAM_MAX_IN_FLIGHT } from './inference.controller';
import { OipController } from './oip/oip.controller';
import { oipProviders } from './oip/oip.providers';

export const CONFIG = Symbol('inference-config');
export const REGISTRY = Symbol('registry');

const { SERVING, NOT_SERVING } = healthV1.HealthCheckResponse_ServingStatus;
const INFERENCE_SERVICE = SERVICE_NAMES.inference;

@Module({})
export class AppModule implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('inference');
  private metricsServer?: Server;
  private retry?: NodeJS.Timeout;

  constructor(
    private readonly health: HealthStatus,
    private readonly host: ModelHost,
    private readonly metrics: InferenceMetrics,
    @Inject(CONFIG) private readonly config: InferenceConfig,
  ) {}

  static register(config: InferenceConfig): DynamicModule {
    const logger = new Logger('models');
    return {
      module: AppModule,
      imports: [HealthModule],
      controllers: [InferenceController, OipController],
      providers: [
        { provide: CONFIG, useValue: config },
        { provide: STREAM_MAX_IN_FLIGHT, useValue: config.maxStreamInFlight },
        { provide: InferenceMetrics, useFactory: () => new InferenceMetrics() },
        {
          provide: REGISTRY,
          // The inference service only reads the registry; it never creates one by accident.
          useFactory: () => DirectoryRegistry.open(config.registryDir, { create: false }),
        },
        {
          provide: ModelHost,
          inject: [REGISTRY, InferenceMetrics],
          useFactory: (registry: ModelRegistry, metrics: InferenceMetrics) =>
            new ModelHost(registry, {
              executionProvider: config.executionProvider,
              intraOpThreads: config.intraOpThreads,
              onnxThread: config.onnxThread,
              batching: {
                maxBatchSize: config.maxBatchSize,
                maxQueueDelayMs: config.maxQueueDelayMs,
                maxQueueSize: config.maxQueueSize,
              },
              watch: { mode: config.registryWatch, pollIntervalMs: config.registryPollMs },
              logger,
              onBatch: (model, size) =>
                metrics.batchSize.observe({ model: model.name, version: String(model.version) }, size),
              onLoaded: (model) => {
                metrics.loadedVersions.set({ model: model.name, version: String(model.version) }, 1);
                metrics.loads.inc({ model: model.name, outcome: 'ok' });
              },
              onUnloaded: (model) =>
                metrics.loadedVersions.remove({ model: model.name, version: String(model.version) }),
              onFallbacksChanged: (fallbacks) => metrics.setFallbacks(fallbacks),
              onLoadFailed: (name, error) => {
                metrics.loads.inc({ model: name, outcome: 'failed' });
                logger.error(
                  `loading ${name} failed: ${error instanceof Error ? error.message : String(error)}`,
                );
              },
            }),
        },
        {
          provide: ClassificationService,
          inject: [ModelHost, InferenceMetrics],
          useFactory: (host: ModelHost, metrics: InferenceMetrics) =>
            new ClassificationService(host, metrics, {
              defaultModel: config.defaultModel,
              maxDecodedPixels: config.maxDecodedPixels,
              maxDecodingPixels: config.maxDecodingPixels,
            }),
        },
        {
          provide: ModelCatalog,
          inject: [REGISTRY, ModelHost],
          useFactory: (registry: ModelRegistry, host: ModelHost) =>
            new ModelCatalog(registry, host, config.defaultModel),
        },
        ...oipProviders(config, REGISTRY, INFERENCE_SERVICE),
      ],
    };
  }

  async onApplicationBootstrap(): Promise<void> {
    this.health.set('', NOT_SERVING);
    this.health.set(INFERENCE_SERVICE, NOT_SERVING);
    if (this.config.metricsPort > 0) {
      this.metricsServer = await this.metrics.serve(this.config.grpcHost, this.config.metricsPort, () => ({
        status: healthV1.HealthCheckResponse_ServingStatus[this.health.get(INFERENCE_SERVICE) ?? NOT_SERVING],
        fallbacks: this.host.fallbacks(),
      }));
    }
    await this.host.watch();
    await this.loadDefaultModel();
  }

  /** Loads (and self-checks) the default model before reporting SERVING; retries until it can. */
  private async loadDefaultModel(): Promise<void> {
    try {
      const lease = await this.host.acquire(this.config.defaultModel);
      lease.release();
      this.health.set('', SERVING);
      this.health.set(INFERENCE_SERVICE, SERVING);
      const fallback = this.host
        .fallbacks()
        .find((f) => f.model === lease.model.name && f.servingVersion === lease.model.version);
      this.logger.log(
        `serving ${lease.model.key} as the default model (${this.config.defaultModel})` +
          (fallback ? `, a fallback: ${fallback.alias} names version ${fallback.wantedVersion}` : ''),
      );
    } catch (error) {
      this.logger.error(
        `default model ${this.config.defaultModel} is not available; NOT_SERVING until it is: ` +
          (error instanceof Error ? error.message : String(error)),
      );
      this.retry = setTimeout(() => void this.loadDefaultModel(), this.config.registryPollMs);
      this.retry.unref();
    }
  }

  beforeApplicationShutdown(): void {
    clearTimeout(this.retry);
    // Tell load balancers first, then let in-flight calls finish.
    this.health.setAllNotServing();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.host.close();
    await new Promise<void>((resolve) =>
      this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve(),
    );
  }
}
