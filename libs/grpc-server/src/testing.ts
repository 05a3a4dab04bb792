/** Test fixtures of the gRPC server library: a throw-away PKI for TLS, a tokens file. Specs only. */
import { Metadata } from '@grpc/grpc-js';
import { hashToken, type Role } from '@deit-serve/config';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files of one certificate and its key. */
export interface TestCert {
  cert: string;
  key: string;
}

/**
 * A throw-away PKI for TLS tests: a CA, a server certificate for `localhost` and 127.0.0.1, a client
 * certificate, both signed by it, and a second CA with a client certificate of its own (which the
 * first must refuse). Paths of PEM files in a fresh temporary folder.
 */
export interface TestPki {
  dir: string;
  ca: TestCert;
  server: TestCert;
  client: TestCert;
  otherCa: TestCert;
  otherClient: TestCert;
}

const OPENSSL = '/usr/bin/openssl';

/** Generates the PKI with openssl (P-256 keys: fast), valid for two days. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'deit-pki-'));
  const path = (name: string) => join(dir, name);
  const openssl = (args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' });
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  const ca = (name: string): TestCert => {
    const cert = { cert: path(`${name}.crt`), key: path(`${name}.key`) };
    openssl([
      'req',
      '-x509',
      ...keyArgs,
      '-keyout',
      cert.key,
      '-out',
      cert.cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return cert;
  };
  const leaf = (name: string, issuer: TestCert, extensions: string): TestCert => {
    const cert = { cert: path(`${name}.crt`), key: path(`${name}.key`) };
    writeFileSync(path(`${name}.ext`), extensions);
    openssl(['req', ...keyArgs, '-keyout', cert.key, '-out', path(`${name}.csr`), '-subj', `/CN=${name}`]);
    openssl([
      'x509',
      '-req',
      '-in',
      path(`${name}.csr`),
      '-CA',
      issuer.cert,
      '-CAkey',
      issuer.key,
      '-CAcreateserial',
      '-out',
      cert.cert,
      '-days',
      '2',
      '-extfile',
      path(`${name}.ext`),
    ]);
    return cert;
  };

  const rootCa = ca('deit-test-ca');
  const otherCa = ca('other-test-ca');
  return {
    dir,
    ca: rootCa,
    server: leaf(
      'server',
      rootCa,
      'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
    ),
    client: leaf('client', rootCa, 'extendedKeyUsage=clientAuth\n'),
    otherCa,
    otherClient: leaf('other-client', otherCa, 'extendedKeyUsage=clientAuth\n'),
  };
}

/** The bytes of a PEM file, for grpc-js credentials. */
export function pem(path: string): Buffer {
  return readFileSync(path);
}

/** Writes a tokens file (DEIT_AUTH_TOKENS_FILE) listing these tokens by their SHA-256; returns its path. */
export function writeTokensFile(
  dir: string,
  tokens: readonly { name: string; token: string; roles: Role[] }[],
): string {
  const file = join(dir, 'tokens.json');
  const entries = tokens.map(({ name, token, roles }) => ({ name, sha256: hashToken(token), roles }));
  writeFileSync(file, JSON.stringify({ tokens: entries }, null, 2));
  return file;
}

/** One token per role, for the services' authentication tests: `web` classifies, `ci` trains, `ops` is admin. */
export const ROLE_TOKENS = [
  { name: 'web', token: 'web-0123456789', roles: ['classify'] as Role[] },
  { name: 'ci', token: 'ci-0123456789', roles: ['train'] as Role[] },
  { name: 'ops', token: 'ops-0123456789', roles: ['admin'] as Role[] },
] as const;

/** Call metadata carrying `authorization: Bearer <token>`; none without a token. */
export function bearer(token?: string): Metadata {
  const md = new Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return md;
}
