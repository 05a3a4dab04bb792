import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Options } from '@grpc/proto-loader';

/**
 * The folder holding the `.proto` sources. NestJS's gRPC transport loads the contracts at run time,
 * so the files ship beside the code: found by walking up from this module (source tree, `dist/`
 * build, container image alike) unless DEIT_PROTO_DIR says where they are.
 */
export function protoRoot(): string {
  const fromEnv = process.env['DEIT_PROTO_DIR'];
  if (fromEnv) return fromEnv;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', 'buf.yaml'))) return join(dir, 'proto');
    if (dirname(dir) === dir) break;
  }
  throw new Error(`cannot find the proto/ folder above ${__dirname}; set DEIT_PROTO_DIR`);
}

/** Proto files of each service, relative to protoRoot(). */
export const PROTO_FILES = {
  inference: 'deit/inference/v1/inference.proto',
  trainer: 'deit/trainer/v1/trainer.proto',
  health: 'grpc/health/v1/health.proto',
} as const;

/**
 * @grpc/proto-loader options under which decoded messages have exactly the shape of the ts-proto
 * generated types (camelCase fields, numeric enums, numbers for 64-bit integers, defaults filled,
 * `Date` for Timestamps through the wrappers the generated code registers). A test holds this.
 */
export const GRPC_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: Number,
  enums: Number,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: false,
  includeDirs: [],
};

export function grpcLoaderOptions(): Options {
  return { ...GRPC_LOADER_OPTIONS, includeDirs: [protoRoot()] };
}
