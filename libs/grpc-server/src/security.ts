import { ServerCredentials } from '@grpc/grpc-js';
import { ConfigError, parseTokensFile, type TokenEntry } from '@deit-serve/config';
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The configuration variables of authentication and TLS (libs/config, both services). */
export interface SecurityConfig {
  readonly authTokensFile: string;
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  readonly tlsClientCaFile: string;
}

export interface ServerTls {
  readonly credentials: ServerCredentials;
  /** Clients must present a certificate signed by the client CA. */
  readonly mutual: boolean;
  /** For the start-up log: the certificate's subject and expiry. */
  readonly subject: string;
  readonly validTo: string;
}

/** What the files named by the configuration hold, checked. */
export interface ServerSecurity {
  /** Absent: authentication is off. */
  readonly tokens?: readonly TokenEntry[];
  /** Absent: plain text. */
  readonly tls?: ServerTls;
}

/**
 * Reads and checks the tokens file and the TLS files, once, at start-up. Every problem (unreadable
 * file, malformed entry, certificate and key that do not match, expired certificate, a key without
 * its certificate) is reported in one ConfigError, before anything listens.
 */
export function loadServerSecurity(config: SecurityConfig, now = new Date()): ServerSecurity {
  const problems: string[] = [];
  const read = (env: string, path: string): Buffer | undefined => {
    try {
      return readFileSync(path);
    } catch (error) {
      problems.push(`${env}=${JSON.stringify(path)}: cannot read it: ${(error as Error).message}`);
      return undefined;
    }
  };

  let tokens: TokenEntry[] | undefined;
  if (config.authTokensFile) {
    const text = read('DEIT_AUTH_TOKENS_FILE', config.authTokensFile);
    if (text) {
      const parsed = parseTokensFile(text.toString('utf8'));
      for (const p of parsed.problems)
        problems.push(`DEIT_AUTH_TOKENS_FILE=${JSON.stringify(config.authTokensFile)}: ${p}`);
      tokens = parsed.tokens;
    }
  }

  const tls = loadTls(config, read, problems, now);
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...(tokens ? { tokens } : {}), ...(tls ? { tls } : {}) };
}

function loadTls(
  config: SecurityConfig,
  read: (env: string, path: string) => Buffer | undefined,
  problems: string[],
  now: Date,
): ServerTls | undefined {
  const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = config;
  if (!tlsCertFile && !tlsKeyFile) {
    if (tlsClientCaFile)
      problems.push('DEIT_TLS_CLIENT_CA_FILE is set without DEIT_TLS_CERT_FILE and DEIT_TLS_KEY_FILE');
    return undefined;
  }
  if (!tlsCertFile || !tlsKeyFile) {
    problems.push('DEIT_TLS_CERT_FILE and DEIT_TLS_KEY_FILE go together: set both for TLS, or neither');
    return undefined;
  }
  const where = (env: string, path: string) => `${env}=${JSON.stringify(path)}`;

  const certPem = read('DEIT_TLS_CERT_FILE', tlsCertFile);
  let cert: X509Certificate | undefined;
  if (certPem) {
    try {
      cert = new X509Certificate(certPem);
      if (new Date(cert.validTo) < now)
        problems.push(
          `${where('DEIT_TLS_CERT_FILE', tlsCertFile)}: the certificate expired on ${cert.validTo}`,
        );
    } catch (error) {
      problems.push(
        `${where('DEIT_TLS_CERT_FILE', tlsCertFile)}: not a PEM certificate: ${(error as Error).message}`,
      );
    }
  }
  const keyPem = read('DEIT_TLS_KEY_FILE', tlsKeyFile);
  let key: KeyObject | undefined;
  if (keyPem) {
    try {
      key = createPrivateKey(keyPem);
    } catch (error) {
      problems.push(
        `${where('DEIT_TLS_KEY_FILE', tlsKeyFile)}: not an unencrypted PEM private key: ${(error as Error).message}`,
      );
    }
  }
  if (cert && key && !cert.checkPrivateKey(key))
    problems.push(`DEIT_TLS_KEY_FILE is not the private key of the certificate in DEIT_TLS_CERT_FILE`);

  let caPem: Buffer | undefined;
  if (tlsClientCaFile) {
    caPem = read('DEIT_TLS_CLIENT_CA_FILE', tlsClientCaFile);
    if (caPem) {
      try {
        new X509Certificate(caPem);
      } catch (error) {
        problems.push(
          `${where('DEIT_TLS_CLIENT_CA_FILE', tlsClientCaFile)}: not a PEM certificate: ${(error as Error).message}`,
        );
      }
    }
  }
  if (!cert || !certPem || !keyPem || problems.length > 0) return undefined;
  return {
    // With a client CA, grpc-js requires and verifies client certificates against it.
    credentials: ServerCredentials.createSsl(
      caPem ?? null,
      [{ cert_chain: certPem, private_key: keyPem }],
      caPem !== undefined,
    ),
    mutual: caPem !== undefined,
    subject: cert.subject.replace(/\n/g, ', '),
    validTo: cert.validTo,
  };
}
