import {
  Metadata,
  type Server,
  type ServerInterceptingCallInterface,
  ServerInterceptingCall,
  type ServerInterceptor,
  status,
} from '@grpc/grpc-js';
import type { Logger } from '@nestjs/common';
import type { Role, TokenEntry } from '@deit-serve/config';
import { PermissionDeniedError, UnauthenticatedError } from '@deit-serve/core';
import { SERVICE_NAMES } from '@deit-serve/proto';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { toGrpcError } from './errors';

/** Full method path (`/deit.inference.v1.InferenceService/Classify`) → the role it needs. */
export type AccessRules = Readonly<Record<string, Role>>;

/**
 * The role each method of one generated service definition needs. Every method must be named, so a
 * method added to the proto does not compile until someone decides who may call it.
 */
export function methodRoles<S extends Record<string, { readonly path: string }>>(
  service: S,
  roles: { readonly [K in keyof S]: Role },
): AccessRules {
  return Object.fromEntries(Object.entries(service).map(([key, method]) => [method.path, roles[key]]));
}

/** Open to everyone: Kubernetes probes and load balancers carry no token. */
const OPEN_SERVICES = [`/${SERVICE_NAMES.health}/`];
/** Any valid token, whatever its roles: the API's shape is no secret from its callers. */
const ANY_CALLER_SERVICES = [
  '/grpc.reflection.v1alpha.ServerReflection/',
  '/grpc.reflection.v1.ServerReflection/',
];

/** What a call needs: nothing, a known token, or a known token with a role. */
export function requirementOf(path: string, rules: AccessRules): 'open' | 'authenticated' | Role {
  if (OPEN_SERVICES.some((prefix) => path.startsWith(prefix))) return 'open';
  if (ANY_CALLER_SERVICES.some((prefix) => path.startsWith(prefix))) return 'authenticated';
  // A method nobody assigned a role is for administrators only (fail closed).
  return rules[path] ?? 'admin';
}

/** `admin` implies every role. */
export function hasRole(entry: TokenEntry, role: Role): boolean {
  return entry.roles.includes('admin') || entry.roles.includes(role);
}

const HINT =
  'send the metadata "authorization: Bearer <token>" (deit CLI: --token or DEIT_TOKEN); ' +
  'a value with leading or trailing whitespace is malformed in HTTP/2 and dropped before it reaches the service';

/** Bearer tokens known by their SHA-256, compared in constant time. */
export class TokenAuthenticator {
  private readonly digests: { entry: TokenEntry; digest: Buffer }[];

  constructor(tokens: readonly TokenEntry[]) {
    this.digests = tokens.map((entry) => ({ entry, digest: Buffer.from(entry.sha256, 'hex') }));
  }

  get size(): number {
    return this.digests.length;
  }

  /** The entry of this token, if any. Every entry is compared, whichever matches, so timing tells nothing. */
  identify(token: string): TokenEntry | undefined {
    const digest = createHash('sha256').update(token, 'utf8').digest();
    let found: TokenEntry | undefined;
    for (const { entry, digest: known } of this.digests) {
      if (timingSafeEqual(digest, known) && found === undefined) found = entry;
    }
    return found;
  }

  /**
   * Who is calling `path`, or a domain error: UNAUTHENTICATED for missing, malformed or unknown
   * credentials, PERMISSION_DENIED for a known token without the role. Messages never echo the token.
   */
  authorize(path: string, metadata: Metadata, rules: AccessRules): TokenEntry | undefined {
    const needs = requirementOf(path, rules);
    if (needs === 'open') return undefined;
    const values = metadata.get('authorization');
    if (values.length === 0) throw new UnauthenticatedError(`no credentials: ${HINT}`);
    if (values.length > 1) throw new UnauthenticatedError('more than one authorization metadata value');
    const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(String(values[0]));
    if (!match?.[1])
      throw new UnauthenticatedError(`malformed authorization metadata: expected "Bearer <token>"`);
    const entry = this.identify(match[1]);
    if (!entry)
      throw new UnauthenticatedError(
        'invalid token: this server does not know it (check it, or ask for one)',
      );
    if (needs !== 'authenticated' && !hasRole(entry, needs)) {
      throw new PermissionDeniedError(
        `token "${entry.name}" may not call ${path}: that needs role "${needs}" ` +
          `(the token has ${entry.roles.join(', ')})`,
      );
    }
    return entry;
  }
}

/**
 * A grpc-js server interceptor that checks every call's bearer token before its handler runs
 * (streams included): one place for every service the process serves, reflection too. Refusals are
 * logged with the method and peer, never the token; the handler does not see the authorization value.
 */
/** Who made a call, as the interceptor identified them: only the interceptor writes here, never a caller. */
const callers = new WeakMap<Metadata, TokenEntry>();

/**
 * The token that authorised the call whose request metadata this is; undefined when authentication
 * is off (or the method is open). Handlers receive the same Metadata object the interceptor forwarded.
 */
export function callerOf(metadata: Metadata | undefined): TokenEntry | undefined {
  return metadata === undefined ? undefined : callers.get(metadata);
}

/** The part of grpc-js 1.14's Server this module reaches into (private there; checked at run time). */
interface ServerInternals {
  http2Servers?: Map<Http2Server, unknown>;
}

/**
 * Makes a repeated `authorization` header visible to {@link TokenAuthenticator.authorize}.
 *
 * Why: Node's http2 module treats `authorization` as a single-value header and keeps only the first
 * of several in the headers object it hands grpc-js, so the second value never reached the "more
 * than one" check and a request with two tokens was judged on the first. The raw header list still
 * has them all: a `stream` listener that runs before grpc-js's puts every value back, as an array,
 * which grpc-js turns into repeated metadata. Called once the server is bound, as the flow-control
 * window is; throws at start if a grpc-js upgrade moves the http2 servers.
 */
export function exposeRepeatedAuthorization(server: Server): void {
  const { http2Servers } = server as unknown as ServerInternals;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0) {
    throw new Error(
      'cannot reach the http2 servers of this @grpc/grpc-js version (Server.http2Servers) to check repeated authorization headers',
    );
  }
  for (const http2Server of http2Servers.keys()) {
    http2Server.prependListener(
      'stream',
      (_stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw?: string[]) => {
        const values = (raw ?? []).filter((_, i) => i % 2 === 1 && raw?.[i - 1] === 'authorization');
        if (values.length > 1) (headers as Record<string, unknown>)['authorization'] = values;
      },
    );
  }
}

export function authInterceptor(
  authenticator: TokenAuthenticator,
  rules: AccessRules,
  logger: Pick<Logger, 'warn' | 'error'>,
): ServerInterceptor {
  return (method, call: ServerInterceptingCallInterface) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, forward) => {
            let caller: TokenEntry | undefined;
            try {
              caller = authenticator.authorize(method.path, metadata, rules);
            } catch (error) {
              const { code, message } = toGrpcError(error, logger);
              logger.warn(`refused ${method.path} from ${call.getPeer()}: ${status[code]}: ${message}`);
              call.sendStatus({ code, details: message, metadata: new Metadata() });
              return;
            }
            metadata.remove('authorization');
            if (caller !== undefined) callers.set(metadata, caller);
            forward(metadata);
          },
        }),
    });
}
