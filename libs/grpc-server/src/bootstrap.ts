import {
  type DynamicModule,
  type INestMicroservice,
  Logger,
  type LogLevel,
  Module,
  type Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type MicroserviceOptions, Transport } from '@nestjs/microservices';
import type { ChannelOptions, Server, ServerCredentials } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { loadPackageDefinition, type PROTO_FILES } from '@deit-serve/proto';
import { GrpcExceptionFilter } from './errors';
import { HealthController, HealthStatus } from './health';

export interface GrpcServiceOptions {
  host: string;
  port: number;
  /** Proto files whose services this process serves (health is always added). */
  protoFiles: readonly (keyof typeof PROTO_FILES)[];
  /** Fully qualified proto packages to serve, e.g. `deit.inference.v1`. */
  packages: readonly string[];
  maxMessageBytes: number;
  reflection: boolean;
  channelOptions?: ChannelOptions;
  credentials?: ServerCredentials;
  logLevels?: LogLevel[];
}

/** grpc.health.v1 for every service process. */
@Module({ providers: [HealthStatus], controllers: [HealthController], exports: [HealthStatus] })
export class HealthModule {}

/**
 * Creates a NestJS gRPC microservice with the house defaults: messages coded by the generated
 * codecs, grpc.health.v1, optional server reflection, domain errors mapped to gRPC statuses, and
 * graceful shutdown on SIGTERM.
 */
export async function createGrpcMicroservice(
  module: Type | DynamicModule,
  options: GrpcServiceOptions,
): Promise<INestMicroservice> {
  const protoFiles = [...new Set([...options.protoFiles, 'health' as const])];
  const packageDefinition = loadPackageDefinition(protoFiles);
  const logger = new Logger('gRPC');
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(module, {
    logger: options.logLevels ?? ['error', 'warn', 'log'],
    // Start-up errors reach the caller (main() reports them and exits) instead of Nest's process.exit.
    abortOnError: false,
    transport: Transport.GRPC,
    options: {
      url: `${options.host}:${options.port}`,
      package: [...options.packages, 'grpc.health.v1'],
      packageDefinition,
      maxReceiveMessageLength: options.maxMessageBytes,
      maxSendMessageLength: options.maxMessageBytes,
      channelOptions: { ...options.channelOptions },
      gracefulShutdown: true,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      onLoadPackageDefinition: (pkg: unknown, server: Server) => {
        if (!options.reflection) return;
        new ReflectionService(pkg as ConstructorParameters<typeof ReflectionService>[0]).addToServer(server);
        logger.log('server reflection enabled');
      },
    },
  });
  app.useGlobalFilters(new GrpcExceptionFilter());
  app.enableShutdownHooks();
  return app;
}

const LOG_LEVELS = ['error', 'warn', 'log', 'debug', 'verbose'] as const;

/** NestJS log levels enabled by a threshold such as `log` (error, warn and log). */
export function logLevelsUpTo(level: (typeof LOG_LEVELS)[number]): LogLevel[] {
  return LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(level) + 1);
}
