import {
  Metadata,
  type ServerInterceptingCallInterface,
  ServerInterceptingCall,
  type ServerInterceptor,
  status,
} from '@grpc/grpc-js';
import type { Logger } from '@nestjs/common';
import type { Role, TokenEntry } from '@deit-serve/config';
import { PermissionDeniedError, UnauthenticatedError } from '@deit-serve/core';
import { createHash, timingSafeEqual } from 'node:crypto';
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
const OPEN_SERVICES = ['/grpc.health.v1.Health/'];
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

const HINT = 'send the metadata "authorization: Bearer <token>" (deit CLI: --token or DEIT_TOKEN)';

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
            try {
              authenticator.authorize(method.path, metadata, rules);
            } catch (error) {
              const { code, message } = toGrpcError(error, logger);
              logger.warn(`refused ${method.path} from ${call.getPeer()}: ${status[code]}: ${message}`);
              call.sendStatus({ code, details: message, metadata: new Metadata() });
              return;
            }
            metadata.remove('authorization');
            forward(metadata);
          },
        }),
    });
}
