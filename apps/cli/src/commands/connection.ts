import {
  type ChannelCredentials,
  type ClientOptions,
  credentials,
  InterceptingCall,
  type Interceptor,
} from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';

/** The flags of every command that talks to a service (parseArgs options). */
export const CONNECTION_OPTIONS = {
  token: { type: 'string' },
  tls: { type: 'boolean' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'tls-server-name': { type: 'string' },
} as const;

export const CONNECTION_USAGE = `Connection (README "Security"):
  --token T           bearer token, sent as "authorization: Bearer T" (default: $DEIT_TOKEN; the
                      variable keeps it out of the process list and shell history)
  --tls               TLS, trusting the system's CAs (default: on when $DEIT_TLS is 1 or true)
  --ca FILE           TLS, trusting the CA certificates in this PEM file (default: $DEIT_CA_FILE)
  --cert FILE --key FILE
                      client certificate and key (PEM) for mutual TLS; imply TLS
                      (default: $DEIT_CLIENT_CERT_FILE, $DEIT_CLIENT_KEY_FILE)
  --tls-server-name N the name the server's certificate must carry, when it is not the address's host
`;

export interface ConnectionFlags {
  token?: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  'tls-server-name'?: string;
}

/** How a client reaches a service: channel credentials and client options (token, server name). */
export interface Connection {
  credentials: ChannelCredentials;
  options: ClientOptions;
  tls: boolean;
}

/** A wrong connection flag or an unreadable file: the command line needs fixing. */
export class ConnectionError extends Error {}

/**
 * The connection that flags (over environment variables) ask for; reads the PEM files. Throws
 * ConnectionError for a combination that cannot work or a file that cannot be read.
 */
export function connectionOf(flags: ConnectionFlags, env: Record<string, string | undefined>): Connection {
  const token = flags.token ?? (env['DEIT_TOKEN'] || undefined);
  const ca = flags.ca ?? (env['DEIT_CA_FILE'] || undefined);
  const cert = flags.cert ?? (env['DEIT_CLIENT_CERT_FILE'] || undefined);
  const key = flags.key ?? (env['DEIT_CLIENT_KEY_FILE'] || undefined);
  const serverName = flags['tls-server-name'] ?? (env['DEIT_TLS_SERVER_NAME'] || undefined);
  const tlsEnv = (env['DEIT_TLS'] ?? '').toLowerCase();
  const tls =
    flags.tls === true || ['1', 'true', 'yes'].includes(tlsEnv) || !!ca || !!cert || !!key || !!serverName;

  if ((cert === undefined) !== (key === undefined))
    throw new ConnectionError('--cert and --key go together (a client certificate and its private key)');
  // A header value: printable ASCII without spaces. Never repeated back: it is a secret.
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token))
    throw new ConnectionError(
      'the token must be printable ASCII without spaces (check --token or DEIT_TOKEN)',
    );

  const options: ClientOptions = {};
  if (token !== undefined) options.interceptors = [bearerToken(token)];
  if (serverName) options['grpc.ssl_target_name_override'] = serverName;
  if (!tls) return { credentials: credentials.createInsecure(), options, tls };
  return {
    credentials: credentials.createSsl(
      ca === undefined ? null : readPem('--ca', ca),
      key === undefined ? null : readPem('--key', key),
      cert === undefined ? null : readPem('--cert', cert),
    ),
    options,
    tls,
  };
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConnectionError(
      `cannot read ${flag} ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
    );
  }
}

/** Adds `authorization: Bearer <token>` to every call, streams included, on any channel. */
function bearerToken(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Advice for an UNAVAILABLE service: a TLS mismatch looks the same as a service that is down. */
export function unreachableHint(connection: Connection | undefined): string {
  return connection?.tls
    ? 'is it running? (It must serve TLS with a certificate --ca trusts.)'
    : 'is it running? (If it serves TLS: --tls or --ca FILE.)';
}
