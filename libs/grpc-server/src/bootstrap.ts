import {
  type DynamicModule,
  type INestMicroservice,
  Logger,
  type LogLevel,
  Module,
  type Type,
} from '@nestjs/common';
import { releaseDecodedReads } from './decoder-reads';
import { NestFactory } from '@nestjs/core';
import { type MicroserviceOptions, Transport } from '@nestjs/microservices';
import type { ChannelOptions, Server, ServerCredentials } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import {
  loadPackageDefinition,
  reflectionPackageDefinition,
  PROTO_PACKAGES,
  servicesIn,
  type PROTO_FILES,
} from '@deit-serve/proto';
import { type AccessRules, authInterceptor, exposeRepeatedAuthorization, TokenAuthenticator } from './auth';
import { GrpcExceptionFilter } from './errors';
import { undecodableRequestInterceptor } from './undecodable';
import { type RefusalListener, refusalInterceptors } from './refusals';
import { applyFlowControlWindow } from './flow-control';
import { HealthPortModule } from './health';
import { loadServerSecurity, type SecurityConfig, type ServerSecurity } from './security';

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
  /**
   * Bearer tokens and TLS, from loadServerSecurity. Without tokens every caller may call every
   * method (logged as a warning at start); without TLS the server speaks plain text.
   */
  security?: ServerSecurity;
  /** The role each served method needs (required when `security` has tokens). */
  access?: AccessRules;
  /** A second, plain-text port serving only grpc.health.v1 (0 or absent: none). */
  healthPort?: number;
  /**
   * HTTP/2 receive window of every stream and connection, in bytes (absent: HTTP/2's 64 KiB). Large
   * requests — tensors — then arrive in one round trip instead of one per 64 KiB (flow-control.ts).
   */
  flowControlWindowBytes?: number;
  /**
   * Told of each call refused below the handlers (authentication, an undecodable or oversized
   * message), so that request counts include them.
   */
  onRefused?: RefusalListener;
}

/** The root of a service whose health is also served on its own port. */
@Module({})
class ServiceRootModule {}

/**
 * Creates a NestJS gRPC microservice with the house defaults: messages coded by the generated
 * codecs, grpc.health.v1, optional server reflection, domain errors mapped to gRPC statuses, and
 * graceful shutdown on SIGTERM; with `security`, bearer-token roles on every call but health, and
 * TLS (README "Security").
 */
export async function createGrpcMicroservice(
  module: Type | DynamicModule,
  options: GrpcServiceOptions,
): Promise<INestMicroservice> {
  const protoFiles = [...new Set([...options.protoFiles, 'health' as const])];
  const packageDefinition = loadPackageDefinition(protoFiles);
  const logger = new Logger('gRPC');
  // Received messages' HTTP/2 reads die young instead of with their calls (fewer full GCs).
  if (!releaseDecodedReads()) logger.warn("grpc-js's stream decoder changed: finished reads are kept");
  const tokens = options.security?.tokens;
  if (tokens && !options.access)
    throw new Error('authentication needs the access rules of the served methods');
  const authenticator = tokens ? new TokenAuthenticator(tokens) : undefined;
  const root = options.healthPort
    ? {
        module: ServiceRootModule,
        imports: [module, HealthPortModule.register(options.host, options.healthPort)],
      }
    : module;
  const credentials = options.security?.tls?.credentials ?? options.credentials;
  const refusals = options.onRefused ? refusalInterceptors(options.onRefused) : undefined;
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(root, {
    logger: options.logLevels ?? ['error', 'warn', 'log'],
    // Start-up errors reach the caller (main() reports them and exits) instead of Nest's process.exit.
    abortOnError: false,
    transport: Transport.GRPC,
    options: {
      url: `${options.host}:${options.port}`,
      package: [...options.packages, PROTO_PACKAGES.health],
      packageDefinition,
      maxReceiveMessageLength: options.maxMessageBytes,
      maxSendMessageLength: options.maxMessageBytes,
      channelOptions: {
        ...options.channelOptions,
        // Server interceptors see every call of every service (reflection too) before its handler.
        interceptors: [
          ...(refusals ? [refusals.innermost] : []),
          ...(authenticator
            ? [authInterceptor(authenticator, options.access ?? {}, new Logger('auth'))]
            : []),
          undecodableRequestInterceptor(),
          ...(refusals ? [refusals.outermost] : []),
        ],
      },
      gracefulShutdown: true,
      ...(credentials ? { credentials } : {}),
      onLoadPackageDefinition: (_pkg: unknown, server: Server) => {
        // The server is bound (not yet serving: handlers are added after this); new sessions get the window.
        if (options.flowControlWindowBytes) applyFlowControlWindow(server, options.flowControlWindowBytes);
        if (authenticator) exposeRepeatedAuthorization(server);
        if (!options.reflection) return;
        // The descriptors buf compiled (not proto-loader's rebuilt ones, which reflection clients
        // cannot resolve); only the services this process serves are listed.
        // ReflectionService reads nothing but each entry's `fileDescriptorProtos`.
        type ReflectedPackage = ConstructorParameters<typeof ReflectionService>[0];
        new ReflectionService(reflectionPackageDefinition() as unknown as ReflectedPackage, {
          services: servicesIn([...options.packages, PROTO_PACKAGES.health]),
        }).addToServer(server);
        logger.log(`server reflection enabled${authenticator ? ' (for callers with a valid token)' : ''}`);
      },
    },
  });
  logSecurity(logger, options.security);
  app.useGlobalFilters(new GrpcExceptionFilter());
  app.enableShutdownHooks();
  return app;
}

/** Says at start how callers are checked; an open or plain-text service is said loudly. */
function logSecurity(logger: Logger, security: ServerSecurity | undefined): void {
  const tokens = security?.tokens;
  const tls = security?.tls;
  if (tokens) {
    logger.log(
      `authentication on: ${tokens.length} bearer token(s) (${tokens.map((t) => t.name).join(', ')})`,
    );
  } else {
    logger.warn(
      'UNAUTHENTICATED: DEIT_AUTH_TOKENS_FILE is not set, so any caller that reaches this port may call ' +
        'every method; set it before exposing the service (README "Security")',
    );
  }
  if (tls) {
    logger.log(
      `TLS on${tls.mutual ? ', mutual (client certificates required)' : ''}: ${tls.subject}, valid until ${tls.validTo}`,
    );
  } else if (tokens) {
    logger.warn(
      'plain-text gRPC: bearer tokens cross the network readable; set DEIT_TLS_CERT_FILE and DEIT_TLS_KEY_FILE',
    );
  } else {
    logger.log('plain-text gRPC (DEIT_TLS_CERT_FILE not set)');
  }
}

const LOG_LEVELS = ['error', 'warn', 'log', 'debug', 'verbose'] as const;

/** NestJS log levels enabled by a threshold such as `log` (error, warn and log). */
export function logLevelsUpTo(level: (typeof LOG_LEVELS)[number]): LogLevel[] {
  return LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(level) + 1);
}

/**
 * The security options of a service from its configuration: the tokens and TLS files read and checked
 * (one ConfigError for every problem), the app's access rules, the plain-text health port.
 */
export function securityOptions(
  config: SecurityConfig & { readonly healthPort: number },
  access: AccessRules,
): Pick<GrpcServiceOptions, 'security' | 'access' | 'healthPort'> {
  return { security: loadServerSecurity(config), access, healthPort: config.healthPort };
}
