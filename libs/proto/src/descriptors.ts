import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Reader } from 'protobufjs';
import { FileDescriptorProto, type IFileDescriptorProto } from 'protobufjs/ext/descriptor';
import { protoRoot } from './proto-files';

/**
 * `buf build --as-file-descriptor-set` of proto/ (imports included, with comments), written by
 * `npm run proto:gen` and checked by `npm run proto:check`. Server reflection serves these exact
 * descriptors: real file names, dependencies, fully qualified type names and snake_case fields, which
 * proto-loader's rebuilt descriptors lack (grpcurl and `buf curl --reflect` cannot use those).
 */
export const DESCRIPTOR_SET_FILE = 'descriptor-set.binpb';

/** One encoded `google.protobuf.FileDescriptorProto` per file of the descriptor set, bytes as written. */
export function fileDescriptorProtos(root: string = protoRoot()): Buffer[] {
  const set = readFileSync(join(root, DESCRIPTOR_SET_FILE));
  const reader = Reader.create(set);
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    // FileDescriptorSet has a single field: `repeated FileDescriptorProto file = 1` (length-delimited).
    if (tag >>> 3 === 1 && (tag & 7) === 2) files.push(Buffer.from(reader.bytes()));
    else reader.skipType(tag & 7);
  }
  if (files.length === 0) throw new Error(`${join(root, DESCRIPTOR_SET_FILE)} holds no file descriptors`);
  return files;
}

/**
 * The argument `@grpc/reflection`'s ReflectionService indexes: entries that carry
 * `fileDescriptorProtos`. One entry holding every file of the descriptor set.
 */
export function reflectionPackageDefinition(
  root?: string,
): Record<string, { fileDescriptorProtos: Buffer[] }> {
  return { 'descriptor-set': { fileDescriptorProtos: fileDescriptorProtos(root) } };
}

/** Fully qualified names of the services the descriptor set defines in `packages`. */
export function servicesIn(packages: readonly string[], root?: string): string[] {
  const wanted = new Set(packages);
  const services: string[] = [];
  for (const bytes of fileDescriptorProtos(root)) {
    const file = FileDescriptorProto.decode(bytes) as unknown as IFileDescriptorProto;
    if (file.package === undefined || !wanted.has(file.package)) continue;
    for (const service of file.service ?? []) services.push(`${file.package}.${service.name}`);
  }
  return services;
}
