import { Controller, Inject, Logger, UseInterceptors } from '@nestjs/common';
import type { Metadata, ServerDuplexStream, ServerUnaryCall } from '@grpc/grpc-js';
import { ResourceExhaustedError } from '@deit-serve/core';
import { releaseReceivedBytes, toGrpcError } from '@deit-serve/grpc-server';
import { OipService, UnimplementedError } from '@deit-serve/oip';
import { oip } from '@deit-serve/proto';
import { catchError, finalize, from, map, mergeMap, type Observable, of } from 'rxjs';
import { callContext, STREAM_MAX_IN_FLIGHT } from '../inference.controller';
import { RequestMetricsInterceptor } from '../request-metrics.interceptor';

/**
 * The Open Inference Protocol (`inference.GRPCInferenceService`, KServe v2 / Triton) beside
 * deit.inference.v1 on the same port; the mapping lives in @deit-serve/oip.
 */
@Controller()
@UseInterceptors(RequestMetricsInterceptor)
@oip.GRPCInferenceServiceControllerMethods()
export class OipController implements oip.GRPCInferenceServiceController {
  private readonly logger = new Logger('OipController');

  constructor(
    private readonly service: OipService,
    @Inject(STREAM_MAX_IN_FLIGHT) private readonly streamMaxInFlight: number,
  ) {}

  serverLive(): oip.ServerLiveResponse {
    return this.service.serverLive();
  }

  serverReady(): oip.ServerReadyResponse {
    return this.service.serverReady();
  }

  modelReady(request: oip.ModelReadyRequest): Promise<oip.ModelReadyResponse> {
    return this.service.modelReady(request);
  }

  serverMetadata(): oip.ServerMetadataResponse {
    return this.service.serverMetadata();
  }

  modelMetadata(request: oip.ModelMetadataRequest): Promise<oip.ModelMetadataResponse> {
    return this.service.modelMetadata(request);
  }

  modelInfer(
    request: oip.ModelInferRequest,
    _metadata?: Metadata,
    call?: ServerUnaryCall<unknown, unknown>,
  ): Promise<oip.ModelInferResponse> {
    const { context, settle } = callContext(call);
    return this.service
      .modelInfer(request, context)
      .then((response) => {
        // Answered: every item was computed, so nothing reads the request's tensor bytes any more.
        releaseReceivedBytes(request.rawInputContents);
        return response;
      })
      .finally(settle);
  }

  /** Each request answered in turn for its id; a bad one gets `error_message` and the stream goes on. */
  modelStreamInfer(
    requests: Observable<oip.ModelInferRequest>,
    _metadata?: Metadata,
    call?: ServerDuplexStream<unknown, unknown>,
  ): Observable<oip.ModelStreamInferResponse> {
    const { context, settle } = callContext(call);
    let unanswered = 0;
    const failed = (error: unknown): oip.ModelStreamInferResponse => ({
      errorMessage: toGrpcError(error, this.logger).message,
      inferResponse: undefined,
    });
    return requests.pipe(
      mergeMap((request): Observable<oip.ModelStreamInferResponse> => {
        if (unanswered >= this.streamMaxInFlight) {
          return of(
            failed(
              new ResourceExhaustedError(
                `${this.streamMaxInFlight} requests of this stream are still unanswered; wait for answers before sending more`,
              ),
            ),
          );
        }
        unanswered++;
        return from(this.service.modelInfer(request, context)).pipe(
          map((inferResponse) => ({ errorMessage: '', inferResponse })),
          catchError((error: unknown) => of(failed(error))),
          finalize(() => unanswered--),
        );
      }),
      finalize(settle),
    );
  }

  modelConfig(request: oip.ModelConfigRequest): Promise<oip.ModelConfigResponse> {
    return this.service.modelConfig(request);
  }

  modelStatistics(request: oip.ModelStatisticsRequest): Promise<oip.ModelStatisticsResponse> {
    return this.service.modelStatistics(request);
  }

  repositoryIndex(request: oip.RepositoryIndexRequest): Promise<oip.RepositoryIndexResponse> {
    return this.service.repositoryIndex(request);
  }

  repositoryModelLoad(request: oip.RepositoryModelLoadRequest): Promise<oip.RepositoryModelLoadResponse> {
    return this.service.repositoryModelLoad(request);
  }

  repositoryModelUnload(): never {
    return this.service.repositoryModelUnload();
  }

  systemSharedMemoryStatus(): never {
    throw sharedMemory('system');
  }

  systemSharedMemoryRegister(): never {
    throw sharedMemory('system');
  }

  systemSharedMemoryUnregister(): never {
    throw sharedMemory('system');
  }

  cudaSharedMemoryStatus(): never {
    throw sharedMemory('CUDA');
  }

  cudaSharedMemoryRegister(): never {
    throw sharedMemory('CUDA');
  }

  cudaSharedMemoryUnregister(): never {
    throw sharedMemory('CUDA');
  }

  traceSetting(): never {
    throw new UnimplementedError(
      'TraceSetting is not supported: deit-serve has no request tracing to configure',
    );
  }

  logSettings(): never {
    throw new UnimplementedError(
      'LogSettings is not supported: the log level is set by DEIT_LOG_LEVEL at start',
    );
  }
}

function sharedMemory(kind: 'system' | 'CUDA'): UnimplementedError {
  return new UnimplementedError(
    `the ${kind} shared memory extension is not supported: send tensors in raw_input_contents or contents`,
  );
}
