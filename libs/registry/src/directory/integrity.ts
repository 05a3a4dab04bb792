import { IntegrityError, NotFoundError } from '@deit-serve/core';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_FILE, safeParseManifest, type FileEntry, type Manifest } from '../manifest';
import type { FileCheck, VerifyReport } from '../storage';
import { hashFile, isNotFound } from './fs-util';
import { versionLabel as label, type RegistryLayout } from './layout';

/**
 * Reads a stored version and checks it against its manifest: a manifest that is not valid or describes
 * another version, and files missing, truncated or changed, are IntegrityErrors naming the file.
 */
export class VersionIntegrity {
  constructor(private readonly layout: RegistryLayout) {}

  async readManifest(model: string, version: number): Promise<Manifest> {
    const path = join(this.layout.versionDir(model, version), MANIFEST_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (isNotFound(error))
        throw new NotFoundError(`${label(model, version)} does not exist`, { cause: error });
      throw error;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new IntegrityError(`${label(model, version)}: file "${MANIFEST_FILE}" is not valid JSON`, {
        cause: error,
      });
    }
    const result = safeParseManifest(json);
    if (!result.ok)
      throw new IntegrityError(
        `${label(model, version)}: file "${MANIFEST_FILE}" is invalid: ${result.problem}`,
      );
    if (result.manifest.name !== model || result.manifest.version !== version) {
      throw new IntegrityError(
        `${label(model, version)}: file "${MANIFEST_FILE}" describes ${label(result.manifest.name, result.manifest.version)}`,
      );
    }
    return result.manifest;
  }

  /** Checks one stored file against its manifest entry; `full` also re-hashes it. */
  async checkFile(
    model: string,
    version: number,
    path: string,
    expected: FileEntry,
    mode: 'full' | 'size',
  ): Promise<FileCheck> {
    const where = `${label(model, version)}: file "${path}"`;
    const check: FileCheck = { path, ok: false, expected };
    const file = join(this.layout.versionDir(model, version), path);
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch (error) {
      if (!isNotFound(error)) throw error;
      return { ...check, problem: `${where} is missing` };
    }
    check.actual = { size };
    if (size !== expected.size) {
      return {
        ...check,
        problem: `${where} is ${size < expected.size ? 'truncated' : 'corrupt'}: ${size} bytes, manifest says ${expected.size}`,
      };
    }
    if (mode === 'full') {
      const actual = await hashFile(file);
      check.actual = actual;
      if (actual.size !== expected.size) {
        return {
          ...check,
          problem: `${where} changed while being read: ${actual.size} bytes, manifest says ${expected.size}`,
        };
      }
      if (actual.sha256 !== expected.sha256) {
        return {
          ...check,
          problem: `${where} is corrupt: sha256 ${actual.sha256}, manifest says ${expected.sha256}`,
        };
      }
    }
    return { ...check, ok: true };
  }

  /** Throws the first problem of the manifest's files, leaving out `skip`. */
  async assertIntact(
    model: string,
    version: number,
    manifest: Manifest,
    mode: 'full' | 'size',
    skip?: ReadonlySet<string>,
  ): Promise<void> {
    for (const [path, entry] of Object.entries(manifest.files)) {
      if (skip?.has(path)) continue;
      const check = await this.checkFile(model, version, path, entry, mode);
      if (!check.ok)
        throw new IntegrityError(check.problem ?? `${label(model, version)}: file "${path}" is damaged`);
    }
  }

  /** A file's bytes, hashed as read: what is returned is what the manifest promised. */
  async readChecked(model: string, version: number, path: string, entry: FileEntry): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.layout.versionDir(model, version), path));
    } catch (error) {
      if (isNotFound(error))
        throw new IntegrityError(`${label(model, version)}: file "${path}" is missing`, { cause: error });
      throw error;
    }
    if (bytes.byteLength !== entry.size) {
      throw new IntegrityError(
        `${label(model, version)}: file "${path}" is ${bytes.byteLength < entry.size ? 'truncated' : 'corrupt'}: ${bytes.byteLength} bytes, manifest says ${entry.size}`,
      );
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (sha256 !== entry.sha256) {
      throw new IntegrityError(
        `${label(model, version)}: file "${path}" is corrupt: sha256 ${sha256}, manifest says ${entry.sha256}`,
      );
    }
    return bytes;
  }

  /** Every file re-hashed; problems are reported, not thrown. */
  async verify(model: string, version: number): Promise<VerifyReport> {
    let manifest: Manifest;
    try {
      manifest = await this.readManifest(model, version);
    } catch (error) {
      if (error instanceof IntegrityError)
        return { model, version, ok: false, problem: error.message, files: [] };
      throw error;
    }
    const files: FileCheck[] = [];
    for (const [path, entry] of Object.entries(manifest.files)) {
      files.push(await this.checkFile(model, version, path, entry, 'full'));
    }
    return { model, version, ok: files.every((f) => f.ok), files };
  }
}
