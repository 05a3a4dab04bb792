import { IntegrityError, InvalidArgumentError } from '@deit-serve/core';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileNameSchema, MANIFEST_FILE, MODEL_FILE, type FileEntry } from '../manifest';
import type { PublishFileSource } from '../storage';
import { copyNewFile, hashFile, isNotFound, writeNewFile } from './fs-util';

/** The files of a publish request, checked: flat valid names, bytes or paths, model.onnx among them. */
export function validateSources(files: unknown): Map<string, PublishFileSource> {
  if (typeof files !== 'object' || files === null) {
    throw new InvalidArgumentError(`files must be an object mapping file names to bytes or paths`);
  }
  const sources = new Map<string, PublishFileSource>();
  for (const [name, source] of Object.entries(files)) {
    const result = fileNameSchema.safeParse(name);
    if (!result.success) {
      throw new InvalidArgumentError(
        `file name ${JSON.stringify(name)} is invalid: ${result.error.issues.map((i) => i.message).join('; ')}`,
      );
    }
    if (!(source instanceof Uint8Array) && typeof source !== 'string') {
      throw new InvalidArgumentError(`file ${JSON.stringify(name)}: expected bytes or a path`);
    }
    sources.set(name, source);
  }
  if (!sources.has(MODEL_FILE)) throw new InvalidArgumentError(`files must include ${MODEL_FILE}`);
  return sources;
}

export async function readSource(name: string, source: PublishFileSource): Promise<Buffer> {
  if (typeof source !== 'string') return Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  try {
    return await readFile(source);
  } catch (error) {
    if (isNotFound(error))
      throw new InvalidArgumentError(`file ${JSON.stringify(name)}: ${source} does not exist`, {
        cause: error,
      });
    throw error;
  }
}

export async function writeSource(
  source: PublishFileSource,
  target: string,
  name: string,
): Promise<FileEntry> {
  if (typeof source !== 'string') return writeNewFile(target, source);
  try {
    return await copyNewFile(source, target);
  } catch (error) {
    if (isNotFound(error))
      throw new InvalidArgumentError(`file ${JSON.stringify(name)}: ${source} does not exist`, {
        cause: error,
      });
    throw error;
  }
}

/**
 * Reads back every staged file just before the rename that publishes it: the checksums in the manifest
 * describe the bytes as they were written, and a file changed since (another process, a bad disk) would
 * otherwise be published under them and only be refused by readers later.
 */
export async function verifyStaged(
  staging: string,
  files: Readonly<Record<string, FileEntry>>,
  manifestBytes: Uint8Array,
  what: string,
): Promise<void> {
  const changed = (path: string, detail: string) =>
    new IntegrityError(
      `${what}: file "${path}" changed after it was written (${detail}); nothing was published`,
    );
  for (const [path, expected] of Object.entries(files)) {
    let actual: { sha256: string; size: number };
    try {
      actual = await hashFile(join(staging, path));
    } catch (error) {
      if (isNotFound(error)) throw changed(path, 'it is gone');
      throw error;
    }
    if (actual.size !== expected.size || actual.sha256 !== expected.sha256) {
      throw changed(
        path,
        `${actual.size} bytes, sha256 ${actual.sha256}; written: ${expected.size} bytes, sha256 ${expected.sha256}`,
      );
    }
  }
  let manifest: Buffer;
  try {
    manifest = await readFile(join(staging, MANIFEST_FILE));
  } catch (error) {
    if (isNotFound(error)) throw changed(MANIFEST_FILE, 'it is gone');
    throw error;
  }
  if (!manifest.equals(manifestBytes)) throw changed(MANIFEST_FILE, 'its content differs');
}
