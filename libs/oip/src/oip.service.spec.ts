import { DomainError } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import { refOf, unknownModel } from './oip.service';

function failure(call: () => unknown): { kind: string; message: string } {
  try {
    call();
  } catch (error) {
    if (error instanceof DomainError) return { kind: error.kind, message: error.message };
    throw error;
  }
  throw new Error('expected a failure');
}

describe('refOf', () => {
  it('maps model_name and model_version onto registry references: empty version = production', () => {
    expect(refOf('fmnist-deit', '')).toBe('fmnist-deit');
    expect(refOf('fmnist-deit', '3')).toBe('fmnist-deit:3');
  });

  it('answers a name the registry cannot hold as an unknown model (NOT_FOUND), as Triton does', () => {
    for (const name of ['', 'a@production', 'a:3', '../etc']) {
      expect(failure(() => refOf(name, ''))).toEqual({
        kind: 'NOT_FOUND',
        message: `Request for unknown model: '${name}' is not found`,
      });
    }
  });

  it("refuses a version that is not an integer > 0 with Triton's message (INVALID_ARGUMENT)", () => {
    for (const version of ['0', 'abc', '-1', '1.5']) {
      expect(failure(() => refOf('m', version))).toEqual({
        kind: 'INVALID_ARGUMENT',
        message: `failed to get model version from specified version string '${version}', version should be an integral value > 0`,
      });
    }
  });
});

describe('unknownModel', () => {
  it('names the version when one was asked for', () => {
    expect(unknownModel('m', '7').message).toBe("Request for unknown model: 'm' version 7 is not found");
  });
});
