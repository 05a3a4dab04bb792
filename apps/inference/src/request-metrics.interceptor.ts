import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { toGrpcError } from '@deit-serve/grpc-server';
import { InferenceMetrics } from '@deit-serve/inference-engine';
import type { inferenceV1 } from '@deit-serve/proto';
import { type Observable, tap } from 'rxjs';

/** toGrpcError without its logging: the exception filter logs (once) when it maps the same error. */
const QUIET = { error: () => undefined };

/**
 * `deit_requests_total{method, code}` and `deit_request_duration_seconds{method}`. A unary call counts
 * once, with the status it ends with; a ClassifyStream counts each item, since each is a request
 * with its own outcome.
 */
@Injectable()
export class RequestMetricsInterceptor implements NestInterceptor {
  constructor(private readonly metrics: InferenceMetrics) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const method = methodName(context);
    if (method === 'ClassifyStream') {
      return next.handle().pipe(
        tap((item) => {
          const { error, response } = item as inferenceV1.ClassifyStreamResponse;
          this.count(method, error ? error.code : status.OK);
          if (response?.timing)
            this.metrics.requestSeconds.observe({ method }, response.timing.totalMs / 1000);
        }),
      );
    }
    const start = performance.now();
    const done = (code: status) => {
      this.count(method, code);
      this.metrics.requestSeconds.observe({ method }, (performance.now() - start) / 1000);
    };
    return next.handle().pipe(
      tap({
        next: () => done(status.OK),
        error: (error: unknown) => done(toGrpcError(error, QUIET).code),
      }),
    );
  }

  private count(method: string, code: status): void {
    this.metrics.countRequest(method, code);
  }
}

/** The proto method name, from the call's path (`/deit.inference.v1.InferenceService/Classify`). */
function methodName(context: ExecutionContext): string {
  // Nest passes (request, metadata, call); streaming handlers are wrapped and lose their names.
  const call = context.getArgByIndex<{ getPath?: () => string } | undefined>(2);
  const path = call?.getPath?.();
  if (path) return path.slice(path.lastIndexOf('/') + 1);
  const handler = context.getHandler().name;
  return handler.charAt(0).toUpperCase() + handler.slice(1);
}
