import { loadSync, type MethodDefinition as LoaderMethod, type PackageDefinition } from '@grpc/proto-loader';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { InferenceServiceService } from './generated/grpc-js/deit/inference/v1/inference';
import { TrainerServiceService } from './generated/grpc-js/deit/trainer/v1/trainer';
import { HealthService } from './generated/grpc-js/grpc/health/v1/health';
import { GRPCInferenceServiceService } from './generated/grpc-js/grpc_service';
import { GRPC_LOADER_OPTIONS, includeDirs, PROTO_FILES } from './proto-files';

type AnyMethod = MethodDefinition<unknown, unknown>;

/**
 * What a request deserializer returns for bytes that are not a valid message, instead of throwing:
 * grpc-js answers a throwing deserializer with INTERNAL, but the fault is the caller's, so a server
 * interceptor (libs/grpc-server) answers this with INVALID_ARGUMENT before any handler sees it.
 */
export class UndecodableRequest {
  constructor(
    /** Fully qualified message type, e.g. `deit.inference.v1.ClassifyRequest`. */
    readonly type: string,
    readonly reason: string,
  ) {}

  get message(): string {
    return `the request is not a valid ${this.type} protobuf message (${this.reason})`;
  }
}

const GENERATED_SERVICES: readonly Record<string, AnyMethod>[] = [
  InferenceServiceService as unknown as Record<string, AnyMethod>,
  TrainerServiceService as unknown as Record<string, AnyMethod>,
  HealthService as unknown as Record<string, AnyMethod>,
  GRPCInferenceServiceService as unknown as Record<string, AnyMethod>,
];

/**
 * A package definition for NestJS's gRPC transport (`packageDefinition` option) that keeps
 * proto-loader's descriptors (for server reflection) but encodes and decodes every message with the
 * ts-proto generated codecs. Handlers therefore receive and return exactly the generated types:
 * absent sub-messages are `undefined` (proto-loader would give `null`), Timestamps are `Date`.
 */
export function loadPackageDefinition(files: readonly (keyof typeof PROTO_FILES)[]): PackageDefinition {
  const definition = loadSync(
    files.map((f) => PROTO_FILES[f]),
    { ...GRPC_LOADER_OPTIONS, includeDirs: includeDirs() },
  );
  const generatedByPath = new Map<string, AnyMethod>();
  for (const service of GENERATED_SERVICES) {
    for (const method of Object.values(service)) generatedByPath.set(method.path, method);
  }
  for (const [name, entry] of Object.entries(definition)) {
    if (!isServiceDefinition(entry)) continue;
    for (const [methodName, method] of Object.entries(entry)) {
      const generated = generatedByPath.get(method.path);
      if (!generated) {
        throw new Error(
          `${name}.${methodName}: no generated codec for ${method.path}; run npm run proto:gen`,
        );
      }
      const { type } = (method as unknown as LoaderMethod<unknown, unknown>).requestType;
      const requestName = (type as { name?: string }).name ?? '';
      const requestType = `${name.slice(0, name.lastIndexOf('.'))}.${requestName}`;
      const decode = generated.requestDeserialize;
      // Replaced in place: proto-loader's method objects also carry the descriptors reflection reads.
      Object.assign(method, {
        requestSerialize: generated.requestSerialize,
        requestDeserialize: (bytes: Buffer): unknown => {
          try {
            return decode(bytes);
          } catch (error) {
            return new UndecodableRequest(
              requestType,
              error instanceof Error ? error.message : String(error),
            );
          }
        },
        responseSerialize: generated.responseSerialize,
        responseDeserialize: generated.responseDeserialize,
      });
    }
  }
  return definition;
}

function isServiceDefinition(
  entry: PackageDefinition[string],
): entry is ServiceDefinition & PackageDefinition[string] {
  return !('format' in entry) && Object.values(entry).every((m) => typeof m === 'object' && 'path' in m);
}
