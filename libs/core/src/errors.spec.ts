import { describe, expect, it } from 'vitest';
import {
  DomainError,
  FailedPreconditionError,
  IntegrityError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
} from './errors';

describe('domain errors', () => {
  it.each([
    [new InvalidArgumentError('x'), 'INVALID_ARGUMENT', 'InvalidArgumentError'],
    [new NotFoundError('x'), 'NOT_FOUND', 'NotFoundError'],
    [new FailedPreconditionError('x'), 'FAILED_PRECONDITION', 'FailedPreconditionError'],
    [new IntegrityError('x'), 'DATA_LOSS', 'IntegrityError'],
    [new ResourceExhaustedError('x'), 'RESOURCE_EXHAUSTED', 'ResourceExhaustedError'],
    [new UnauthenticatedError('x'), 'UNAUTHENTICATED', 'UnauthenticatedError'],
    [new PermissionDeniedError('x'), 'PERMISSION_DENIED', 'PermissionDeniedError'],
  ])('%s carries kind %s and its class name', (error, kind, name) => {
    expect(error).toBeInstanceOf(DomainError);
    expect(error.kind).toBe(kind);
    expect(error.name).toBe(name);
  });

  it('keeps the cause', () => {
    const cause = new Error('disk');
    expect(new IntegrityError('bad file', { cause }).cause).toBe(cause);
  });
});
