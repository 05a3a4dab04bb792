import { Metadata } from '@grpc/grpc-js';
import { hashToken, type TokenEntry } from '@deit-serve/config';
import { DomainError } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import { type AccessRules, methodRoles, requirementOf, TokenAuthenticator } from './auth';

const tokens: TokenEntry[] = [
  { name: 'web', sha256: hashToken('web-token'), roles: ['classify'] },
  { name: 'ci', sha256: hashToken('ci-token'), roles: ['train'] },
  { name: 'ops', sha256: hashToken('ops-token'), roles: ['admin'] },
];
const rules: AccessRules = {
  '/demo.v1.Demo/Read': 'classify',
  '/demo.v1.Demo/Train': 'train',
};
const auth = new TokenAuthenticator(tokens);

function metadata(...authorization: string[]): Metadata {
  const md = new Metadata();
  for (const value of authorization) md.add('authorization', value);
  return md;
}

/** The refusal of a call, as kind and message. */
function refusal(path: string, md: Metadata): { kind: string; message: string } {
  try {
    auth.authorize(path, md, rules);
  } catch (error) {
    if (error instanceof DomainError) return { kind: error.kind, message: error.message };
    throw error;
  }
  throw new Error(`${path} was allowed`);
}

describe('methodRoles', () => {
  it('maps each method of a generated service definition to its full path', () => {
    const service = { read: { path: '/demo.v1.Demo/Read' }, train: { path: '/demo.v1.Demo/Train' } };
    expect(methodRoles(service, { read: 'classify', train: 'train' })).toEqual(rules);
  });
});

describe('requirementOf', () => {
  it('leaves health open, asks any valid token for reflection, the mapped role otherwise', () => {
    expect(requirementOf('/grpc.health.v1.Health/Check', rules)).toBe('open');
    expect(requirementOf('/grpc.health.v1.Health/Watch', rules)).toBe('open');
    expect(requirementOf('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', rules)).toBe(
      'authenticated',
    );
    expect(requirementOf('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', rules)).toBe(
      'authenticated',
    );
    expect(requirementOf('/demo.v1.Demo/Train', rules)).toBe('train');
  });

  it('reserves a method nobody mapped to admin (fail closed)', () => {
    expect(requirementOf('/demo.v1.Demo/Forgotten', rules)).toBe('admin');
  });
});

describe('TokenAuthenticator', () => {
  it('identifies a token by its SHA-256 and nothing else', () => {
    expect(auth.identify('ci-token')?.name).toBe('ci');
    expect(auth.identify('ci-token ')).toBeUndefined();
    expect(auth.identify(hashToken('ci-token'))).toBeUndefined();
  });

  it('lets a token with the role through, and admin through everything', () => {
    expect(auth.authorize('/demo.v1.Demo/Read', metadata('Bearer web-token'), rules)?.name).toBe('web');
    expect(auth.authorize('/demo.v1.Demo/Train', metadata('bearer  ci-token'), rules)?.name).toBe('ci');
    for (const path of ['/demo.v1.Demo/Read', '/demo.v1.Demo/Train', '/demo.v1.Demo/Forgotten'])
      expect(auth.authorize(path, metadata('Bearer ops-token'), rules)?.name).toBe('ops');
  });

  it('needs no token for health, and any valid one for reflection', () => {
    expect(auth.authorize('/grpc.health.v1.Health/Check', metadata(), rules)).toBeUndefined();
    const reflection = '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo';
    expect(auth.authorize(reflection, metadata('Bearer web-token'), rules)?.name).toBe('web');
    expect(refusal(reflection, metadata()).kind).toBe('UNAUTHENTICATED');
  });

  it('answers UNAUTHENTICATED to missing, malformed, repeated or unknown credentials, never echoing them', () => {
    expect(refusal('/demo.v1.Demo/Read', metadata())).toEqual({
      kind: 'UNAUTHENTICATED',
      message:
        'no credentials: send the metadata "authorization: Bearer <token>" (deit CLI: --token or DEIT_TOKEN); ' +
        'a value with leading or trailing whitespace is malformed in HTTP/2 and dropped before it reaches the service',
    });
    for (const value of ['Basic d2ViLXRva2Vu', 'web-token', 'Bearer', 'Bearer a b']) {
      const r = refusal('/demo.v1.Demo/Read', metadata(value));
      expect(r, value).toEqual({
        kind: 'UNAUTHENTICATED',
        message: 'malformed authorization metadata: expected "Bearer <token>"',
      });
    }
    expect(refusal('/demo.v1.Demo/Read', metadata('Bearer web-token', 'Bearer ci-token')).message).toBe(
      'more than one authorization metadata value',
    );
    const unknown = refusal('/demo.v1.Demo/Read', metadata('Bearer guessed-token'));
    expect(unknown).toEqual({
      kind: 'UNAUTHENTICATED',
      message: 'invalid token: this server does not know it (check it, or ask for one)',
    });
  });

  it('answers PERMISSION_DENIED to a known token without the role, naming the role it needs', () => {
    expect(refusal('/demo.v1.Demo/Train', metadata('Bearer web-token'))).toEqual({
      kind: 'PERMISSION_DENIED',
      message:
        'token "web" may not call /demo.v1.Demo/Train: that needs role "train" (the token has classify)',
    });
    const forgotten = refusal('/demo.v1.Demo/Forgotten', metadata('Bearer ci-token'));
    expect(forgotten.kind).toBe('PERMISSION_DENIED');
    expect(forgotten.message).not.toContain('ci-token');
  });
});
