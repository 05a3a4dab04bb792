import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { inferenceConfigSpec, loadConfig } from '@deit-serve/config';
import { InferenceMetrics } from '@deit-serve/inference-engine';
import {
  applyHeapGrowth,
  createGrpcMicroservice,
  logLevelsUpTo,
  securityOptions,
} from '@deit-serve/grpc-server';
import { oip, PROTO_PACKAGES } from '@deit-serve/proto';
import { INFERENCE_ACCESS } from './access';
import { AppModule } from './app.module';
import { OIP_ACCESS } from './oip/access';

async function main(): Promise<void> {
  const config = loadConfig(inferenceConfigSpec);
  applyHeapGrowth(config.v8HeapGrowingPercent);
  // Calls refused below the handlers count in deit_requests_total too; the metrics exist once the app does.
  const counted: { metrics?: InferenceMetrics } = {};
  const app = await createGrpcMicroservice(AppModule.register(config), {
    host: config.grpcHost,
    port: config.grpcPort,
    protoFiles: ['inference', 'oip'],
    packages: [PROTO_PACKAGES.inference, oip.INFERENCE_PACKAGE_NAME],
    maxMessageBytes: config.maxMessageBytes,
    flowControlWindowBytes: config.flowControlWindow,
    reflection: config.reflection,
    // Tokens and TLS files are read and checked here: a bad one stops the start, before listening.
    ...securityOptions(config, { ...INFERENCE_ACCESS, ...OIP_ACCESS }),
    channelOptions: {
      'grpc.max_concurrent_streams': config.maxConcurrentStreams,
      ...(config.maxConnectionAgeMs > 0 && {
        'grpc.max_connection_age_ms': config.maxConnectionAgeMs,
        'grpc.max_connection_age_grace_ms': config.shutdownGraceMs,
      }),
    },
    logLevels: logLevelsUpTo(config.logLevel),
    onRefused: (path, code) => counted.metrics?.countRefusal(path, code),
  });
  counted.metrics = app.get(InferenceMetrics);
  // Past the grace period a drain that still waits on open streams is cut short.
  process.once('SIGTERM', () => setTimeout(() => process.exit(1), config.shutdownGraceMs).unref());
  await app.listen();
  new Logger('inference').log(
    `gRPC on ${config.grpcHost}:${config.grpcPort}, metrics on :${config.metricsPort}/metrics`,
  );
}

main().catch((error: unknown) => {
  // A bad configuration is reported in full, and the process exits before anything listens.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
