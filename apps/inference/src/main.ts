import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { loadConfig, inferenceConfigSpec } from '@deit-serve/config';
import { createGrpcMicroservice, logLevelsUpTo } from '@deit-serve/grpc-server';
import { AppModule } from './app.module';

async function main(): Promise<void> {
  const config = loadConfig(inferenceConfigSpec);
  const app = await createGrpcMicroservice(AppModule.register(config), {
    host: config.grpcHost,
    port: config.grpcPort,
    protoFiles: [],
    packages: [],
    maxMessageBytes: config.maxMessageBytes,
    reflection: config.reflection,
    logLevels: logLevelsUpTo(config.logLevel),
  });
  await app.listen();
  new Logger('inference').log(`gRPC listening on ${config.grpcHost}:${config.grpcPort}`);
}

main().catch((error: unknown) => {
  // A bad configuration is reported in full, and the process exits before anything listens.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
