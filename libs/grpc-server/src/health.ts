import { Controller, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { healthV1 } from '@deit-serve/proto';
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
