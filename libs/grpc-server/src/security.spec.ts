import { ConfigError, hashToken } from '@deit-serve/config';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadServerSecurity, type SecurityConfig } from './security';
import { createTestPki, type TestPki, writeTokensFile } from './testing';

const OFF: SecurityConfig = { authTokensFile: '', tlsCertFile: '', tlsKeyFile: '', tlsClientCaFile: '' };

/** The problems of a configuration expected to be refused. */
function problems(config: Partial<SecurityConfig>, now?: Date): readonly string[] {
  try {
    loadServerSecurity({ ...OFF, ...config }, now);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadServerSecurity', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = createTestPki();
  });

  it('is off (no tokens, plain text) when nothing is configured', () => {
    expect(loadServerSecurity(OFF)).toEqual({});
  });

  it('reads the tokens file and the TLS files', () => {
    const tokensFile = writeTokensFile(pki.dir, [{ name: 'web', token: 't0k3n', roles: ['classify'] }]);
    const security = loadServerSecurity({
      authTokensFile: tokensFile,
      tlsCertFile: pki.server.cert,
      tlsKeyFile: pki.server.key,
      tlsClientCaFile: '',
    });
    expect(security.tokens).toEqual([{ name: 'web', sha256: hashToken('t0k3n'), roles: ['classify'] }]);
    expect(security.tls?.mutual).toBe(false);
    expect(security.tls?.subject).toBe('CN=server');
    const mutual = loadServerSecurity({
      ...OFF,
      tlsCertFile: pki.server.cert,
      tlsKeyFile: pki.server.key,
      tlsClientCaFile: pki.ca.cert,
    });
    expect(mutual.tls?.mutual).toBe(true);
  });

  it('reports every unreadable or malformed file in one error, naming the variable', () => {
    const bad = join(pki.dir, 'bad.json');
    writeFileSync(bad, '{"tokens": [{"name": "x", "sha256": "nope", "roles": ["classify"]}]}');
    const garbage = join(pki.dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate');
    expect(
      problems({
        authTokensFile: bad,
        tlsCertFile: garbage,
        tlsKeyFile: join(pki.dir, 'missing.key'),
        tlsClientCaFile: garbage,
      }),
    ).toEqual([
      `DEIT_AUTH_TOKENS_FILE="${bad}": tokens[0].sha256: must be 64 hex digits (the SHA-256 of the token: \`deit auth hash-token\`)`,
      expect.stringMatching(/^DEIT_TLS_CERT_FILE=".*garbage.pem": not a PEM certificate: /),
      expect.stringMatching(/^DEIT_TLS_KEY_FILE=".*missing.key": cannot read it: ENOENT/),
      expect.stringMatching(/^DEIT_TLS_CLIENT_CA_FILE=".*garbage.pem": not a PEM certificate: /),
    ]);
    expect(() => loadServerSecurity({ ...OFF, authTokensFile: bad })).toThrow(
      /^invalid configuration:\n {2}- DEIT_AUTH_TOKENS_FILE=/,
    );
  });

  it('refuses a key that is not the certificate’s, and an expired certificate', () => {
    expect(problems({ tlsCertFile: pki.server.cert, tlsKeyFile: pki.client.key })).toEqual([
      'DEIT_TLS_KEY_FILE is not the private key of the certificate in DEIT_TLS_CERT_FILE',
    ]);
    const inAWeek = new Date(Date.now() + 7 * 86_400_000);
    expect(problems({ tlsCertFile: pki.server.cert, tlsKeyFile: pki.server.key }, inAWeek)).toEqual([
      expect.stringMatching(/^DEIT_TLS_CERT_FILE=".*server.crt": the certificate expired on /),
    ]);
  });

  it('refuses half a TLS configuration', () => {
    expect(problems({ tlsCertFile: pki.server.cert })).toEqual([
      'DEIT_TLS_CERT_FILE and DEIT_TLS_KEY_FILE go together: set both for TLS, or neither',
    ]);
    expect(problems({ tlsClientCaFile: pki.ca.cert })).toEqual([
      'DEIT_TLS_CLIENT_CA_FILE is set without DEIT_TLS_CERT_FILE and DEIT_TLS_KEY_FILE',
    ]);
  });
});
