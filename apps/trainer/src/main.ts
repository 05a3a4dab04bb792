import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { fineTuneJobKinds, sourcesSpecCheck } from '@deit-serve/finetune';
import { createGrpcMicroservice, logLevelsUpTo } from '@deit-serve/grpc-server';
import { DEIT_PRESET_NAMES } from '@deit-serve/model';
import { DirectoryRegistry } from '@deit-serve/registry';
import { AppModule } from './app.module';

async function main(): Promise<void> {
  const config = loadConfig(trainerConfigSpec);
  const registry = await DirectoryRegistry.open(config.registryDir, { create: true });
  const app = await createGrpcMicroservice(
    AppModule.register(config, {
      kinds: fineTuneJobKinds(),
      specOptions: { presets: DEIT_PRESET_NAMES },
      specChecks: [sourcesSpecCheck({ registry, teacherThreads: 1 })],
    }),
    {
      host: config.grpcHost,
      port: config.grpcPort,
      protoFiles: ['trainer'],
      packages: ['deit.trainer.v1'],
      maxMessageBytes: config.maxMessageBytes,
      reflection: config.reflection,
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
