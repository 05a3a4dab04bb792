import { Controller, Inject, Logger, UseInterceptors } from '@nestjs/common';
import type { Metadata, ServerDuplexStream, ServerUnaryCall } from '@grpc/grpc-js';
import { ResourceExhaustedError } from '@deit-serve/core';
import { ClassificationService, ModelCatalog } from '@deit-serve/inference-engine';
import { toGrpcError } from '@deit-serve/grpc-server';
import { inferenceV1 } from '@deit-serve/proto';
import { catchError, finalize, from, map, mergeMap, type Observable, of } from 'rxjs';
import { RequestMetricsInterceptor } from './request-metrics.interceptor';

/** Most un-answered items of one ClassifyStream call (DEIT_MAX_STREAM_IN_FLIGHT). */
export const STREAM_MAX_IN_FLIGHT = Symbol('stream-max-in-flight');

@Controller()
@UseInterceptors(RequestMetricsInterceptor)
@inferenceV1.InferenceServiceControllerMethods()
export class InferenceController implements inferenceV1.InferenceServiceController {
  private readonly logger = new Logger('InferenceController');

  constructor(
    private readonly classification: ClassificationService,
    private readonly catalog: ModelCatalog,
    @Inject(STREAM_MAX_IN_FLIGHT) private readonly streamMaxInFlight: number,
  ) {}

  classify(
    request: inferenceV1.ClassifyRequest,
    _metadata?: Metadata,
    call?: ServerUnaryCall<unknown, unknown>,
  ): Promise<inferenceV1.ClassifyResponse> {
    const { context, settle } = callContext(call);
    return this.classification.classify(request, context).finally(settle);
  }

  classifyStream(
    requests: Observable<inferenceV1.ClassifyStreamRequest>,
    _metadata?: Metadata,
    call?: ServerDuplexStream<unknown, unknown>,
  ): Observable<inferenceV1.ClassifyStreamResponse> {
    // The call's deadline and cancellation apply to every item: queued items of a stream whose
    // caller went away are dropped before compute, as unary calls are.
    const { context, settle } = callContext(call);
    // NestJS reads the request stream without backpressure, so the bound is enforced per item: one
    // that arrives while the call already has `streamMaxInFlight` un-answered items is answered at
    // once with RESOURCE_EXHAUSTED for its id (nothing is buffered for it), and the stream goes on.
    let unanswered = 0;
    return requests.pipe(
      mergeMap((item): Observable<inferenceV1.ClassifyStreamResponse> => {
        if (unanswered >= this.streamMaxInFlight) {
          const refusal = new ResourceExhaustedError(
            `${this.streamMaxInFlight} items of this stream are still unanswered; wait for answers before sending more`,
          );
          return of({ id: item.id, error: toGrpcError(refusal, this.logger) });
        }
        unanswered++;
        return from(this.classification.classify(item.request ?? emptyRequest(), context)).pipe(
          map((response): inferenceV1.ClassifyStreamResponse => ({ id: item.id, response })),
          // A bad item is answered for its id; the stream goes on.
          catchError((error: unknown) => of({ id: item.id, error: toGrpcError(error, this.logger) })),
          finalize(() => unanswered--),
        );
      }),
      finalize(settle),
    );
  }

  listModels(): Promise<inferenceV1.ListModelsResponse> {
    return this.catalog.list();
  }

  getModel(request: inferenceV1.GetModelRequest): Promise<inferenceV1.GetModelResponse> {
    return this.catalog.describe(request.model);
  }
}

function emptyRequest(): inferenceV1.ClassifyRequest {
  return { model: '', head: inferenceV1.Head.HEAD_UNSPECIFIED, topK: 0 };
}

/** What a unary or streaming server call tells about its caller. */
interface CallerState {
  getDeadline(): ReturnType<ServerUnaryCall<unknown, unknown>['getDeadline']>;
  once(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
}

/**
 * The caller's deadline and cancellation, so that abandoned work is dropped before compute. `settle`
 * once the call is answered: grpc-js also emits 'cancelled' when a finished call's stream closes
 * (measured: once per unary call), and aborting then would only build an AbortError per request.
 */
export function callContext(call: CallerState | undefined): {
  context: { deadline?: number; signal?: AbortSignal };
  settle: () => void;
} {
  if (!call) return { context: {}, settle: () => undefined };
  const controller = new AbortController();
  const abort = () => controller.abort();
  call.once('cancelled', abort);
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return {
    context: Number.isFinite(ms)
      ? { deadline: ms, signal: controller.signal }
      : { signal: controller.signal },
    settle: () => call.removeListener('cancelled', abort),
  };
}
