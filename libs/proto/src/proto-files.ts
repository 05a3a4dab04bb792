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
  oip: 'third_party/oip/grpc_service.proto',
} as const;

/**
 * Folders under protoRoot() that are buf modules of their own: their files import each other by
 * names relative to the folder (`import "model_config.proto"`), as upstream wrote them.
 */
export const VENDORED_MODULES = ['third_party/oip'] as const;

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
  return { ...GRPC_LOADER_OPTIONS, includeDirs: includeDirs() };
}

/** Where proto-loader looks for imports: protoRoot() and each vendored module. */
export function includeDirs(): string[] {
  const root = protoRoot();
  return [root, ...VENDORED_MODULES.map((m) => join(root, m))];
}
