import {
  Controller,
  type DynamicModule,
  Inject,
  Injectable,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleDestroy,
} from '@nestjs/common';
import { Server, ServerCredentials, status as grpcStatus } from '@grpc/grpc-js';
import { healthV1, healthV1Client } from '@deit-serve/proto';
import { BehaviorSubject, distinctUntilChanged, map, type Observable } from 'rxjs';

const { HealthCheckResponse_ServingStatus: ServingStatus } = healthV1;
type ServingStatus = healthV1.HealthCheckResponse_ServingStatus;

/**
 * Serving status per service name, as grpc.health.v1 defines it. The empty name is the server as a
 * whole: Kubernetes' native gRPC probe and grpc-health-probe ask for it by default.
 */
@Injectable()
export class HealthStatus implements OnModuleDestroy {
  private readonly statuses = new Map<string, BehaviorSubject<ServingStatus>>();

  set(service: string, status: ServingStatus): void {
    const subject = this.statuses.get(service);
    if (subject) subject.next(status);
    else this.statuses.set(service, new BehaviorSubject(status));
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service)?.value;
  }

  /** Marks every known service NOT_SERVING (shutdown drain). */
  setAllNotServing(): void {
    for (const subject of this.statuses.values()) subject.next(ServingStatus.NOT_SERVING);
  }

  changes(service: string): Observable<ServingStatus> {
    let subject = this.statuses.get(service);
    if (!subject) {
      // Watch on an unknown service reports SERVICE_UNKNOWN, then follows it if it appears.
      subject = new BehaviorSubject<ServingStatus>(ServingStatus.SERVICE_UNKNOWN);
      this.statuses.set(service, subject);
    }
    return subject.pipe(distinctUntilChanged());
  }

  onModuleDestroy(): void {
    for (const subject of this.statuses.values()) subject.complete();
  }
}

@Controller()
@healthV1.HealthControllerMethods()
export class HealthController implements healthV1.HealthController {
  constructor(private readonly health: HealthStatus) {}

  check(request: healthV1.HealthCheckRequest): healthV1.HealthCheckResponse {
    const status = this.health.get(request.service);
    if (status === undefined || status === ServingStatus.SERVICE_UNKNOWN) {
      throw new UnknownHealthServiceError(request.service);
    }
    return { status };
  }

  watch(request: healthV1.HealthCheckRequest): Observable<healthV1.HealthCheckResponse> {
    return this.health.changes(request.service).pipe(map((status) => ({ status })));
  }
}

/** Check on an unknown service answers NOT_FOUND, as the health protocol requires. */
export class UnknownHealthServiceError extends Error {
  constructor(readonly service: string) {
    super(`unknown service ${JSON.stringify(service)}`);
  }
}

/** grpc.health.v1 for every service process. */
@Module({ providers: [HealthStatus], controllers: [HealthController], exports: [HealthStatus] })
export class HealthModule {}

const HEALTH_PORT = Symbol('health-port');

/**
 * grpc.health.v1, and nothing else, on a second, plain-text port: the kubelet's native gRPC probes
 * cannot speak TLS, so a TLS service answers them here. It follows the same HealthStatus, stays up
 * through the shutdown drain (reporting NOT_SERVING), and stops last.
 */
@Module({ imports: [HealthModule] })
export class HealthPortModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private server?: Server;

  constructor(
    private readonly health: HealthStatus,
    @Inject(HEALTH_PORT) private readonly address: { host: string; port: number },
  ) {}

  static register(host: string, port: number): DynamicModule {
    return { module: HealthPortModule, providers: [{ provide: HEALTH_PORT, useValue: { host, port } }] };
  }

  async onApplicationBootstrap(): Promise<void> {
    const server = new Server();
    server.addService(healthV1Client.HealthService, healthServer(this.health));
    const url = `${this.address.host}:${this.address.port}`;
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(url, ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    this.server = server;
    new Logger('gRPC').log(`grpc.health.v1 only, plain text, on ${url}`);
  }

  onApplicationShutdown(): void {
    this.server?.forceShutdown();
  }
}

/** The grpc-js implementation of Check and Watch over a HealthStatus (the Nest controller's twin). */
function healthServer(health: HealthStatus): healthV1Client.HealthServer {
  // The two generated enums are the same proto enum, numbered alike.
  const wire = (s: ServingStatus): healthV1Client.HealthCheckResponse_ServingStatus => s;
  return {
    check: (call, callback) => {
      const status = health.get(call.request.service);
      if (status === undefined || status === ServingStatus.SERVICE_UNKNOWN) {
        callback({
          code: grpcStatus.NOT_FOUND,
          details: new UnknownHealthServiceError(call.request.service).message,
        });
      } else callback(null, { status: wire(status) });
    },
    watch: (call) => {
      const subscription = health.changes(call.request.service).subscribe({
        next: (status) => call.write({ status: wire(status) }),
        complete: () => call.end(),
      });
      call.on('cancelled', () => subscription.unsubscribe());
    },
  };
}
