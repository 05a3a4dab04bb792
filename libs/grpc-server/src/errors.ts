import { ArgumentsHost, Catch, Logger, type RpcExceptionFilter } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { DomainError, type ErrorKind } from '@deit-serve/core';
import { randomUUID } from 'node:crypto';
import { throwError, type Observable } from 'rxjs';
import { UnknownHealthServiceError } from './health';

const STATUS_BY_KIND: Record<ErrorKind, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  UNAVAILABLE: status.UNAVAILABLE,
  DATA_LOSS: status.DATA_LOSS,
  ABORTED: status.ABORTED,
  INTERNAL: status.INTERNAL,
};

export interface GrpcError {
  code: status;
  message: string;
}

/** The one place where errors become gRPC statuses. */
export function toGrpcError(error: unknown, logger: Pick<Logger, 'error'>): GrpcError {
  if (error instanceof DomainError) return { code: STATUS_BY_KIND[error.kind], message: error.message };
  if (error instanceof UnknownHealthServiceError) return { code: status.NOT_FOUND, message: error.message };
  if (isGrpcError(error)) return error;
  // Unknown failures are logged in full under a correlation id; the caller gets only the id.
  const id = randomUUID();
  logger.error(
    `internal error ${id}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  return { code: status.INTERNAL, message: `internal error (correlation id ${id})` };
}

function isGrpcError(error: unknown): error is GrpcError {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { code?: unknown }).code === 'number' &&
    typeof (error as { message?: unknown }).message === 'string'
  );
}

@Catch()
export class GrpcExceptionFilter implements RpcExceptionFilter<unknown> {
  private readonly logger = new Logger('GrpcExceptionFilter');

  catch(exception: unknown, _host: ArgumentsHost): Observable<never> {
    const error = toGrpcError(exception, this.logger);
    return throwError(() => error);
  }
}
