import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { createGrpcMicroservice, logLevelsUpTo, securityOptions } from '@deit-serve/grpc-server';
import { DEIT_PRESET_NAMES } from '@deit-serve/model';
import { PROTO_PACKAGES } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { TRAINER_ACCESS } from './access';
import { AppModule } from './app.module';
import { sourceChecks } from './spec-checks';

async function main(): Promise<void> {
  const config = loadConfig(trainerConfigSpec);
  const registry = await DirectoryRegistry.open(config.registryDir, { create: true });
  const app = await createGrpcMicroservice(
    AppModule.register(config, {
      specOptions: { presets: DEIT_PRESET_NAMES },
      specChecks: sourceChecks(registry),
      registry,
    }),
    {
      host: config.grpcHost,
      port: config.grpcPort,
      protoFiles: ['trainer'],
      packages: [PROTO_PACKAGES.trainer],
      maxMessageBytes: config.maxMessageBytes,
      flowControlWindowBytes: config.flowControlWindow,
      reflection: config.reflection,
      // Tokens and TLS files are read and checked here: a bad one stops the start, before listening.
      ...securityOptions(config, TRAINER_ACCESS),
      channelOptions: { 'grpc.max_concurrent_streams': config.maxConcurrentStreams },
      logLevels: logLevelsUpTo(config.logLevel),
    },
  );
  process.once('SIGTERM', () => setTimeout(() => process.exit(1), config.shutdownGraceMs + 5000).unref());
  await app.listen();
  new Logger('trainer').log(`gRPC on ${config.grpcHost}:${config.grpcPort}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
