import { join, resolve } from 'node:path';
import { MANIFEST_FILE } from '../manifest';
import { formatModelRef } from '../refs';
import { withFileLock, type LockOptions } from './lock';
import { exists, readdirIfExists } from './fs-util';

/** Staging and trash; ignored by readers, cleaned by gc. */
export const TEMP_DIR = '.tmp';
/** Version numbers handed out (never reused). */
export const CLAIMS_DIR = '.claims';
/** Serialises alias changes and gc of a model. */
export const LOCK_FILE = '.lock';
export const VERSION_DIR_PATTERN = /^[1-9][0-9]*$/;

/** `name:version`, as messages name a version. */
export function versionLabel(model: string, version: number): string {
  return formatModelRef({ name: model, kind: 'version', version });
}

/**
 * Where everything of a directory registry lives:
 *
 * ```
 * <root>/.tmp/                       staging and trash; ignored by readers, cleaned by gc
 * <root>/<model>/<version>/          model.onnx, manifest.json, labels.txt, reports...
 * <root>/<model>/.claims/<version>   version numbers handed out (never reused)
 * <root>/<model>/aliases/<alias>.json   current target = last change of the alias
 * <root>/<model>/alias-history.jsonl    every alias change, append-only
 * <root>/<model>/.lock               serialises alias changes and gc of the model
 * ```
 */
export class RegistryLayout {
  readonly root: string;

  constructor(
    root: string,
    private readonly lockOptions: LockOptions,
  ) {
    this.root = resolve(root);
  }

  get tempRoot(): string {
    return join(this.root, TEMP_DIR);
  }
  modelDir(model: string): string {
    return join(this.root, model);
  }
  versionDir(model: string, version: number): string {
    return join(this.root, model, String(version));
  }
  claimsDir(model: string): string {
    return join(this.root, model, CLAIMS_DIR);
  }

  /** A version exists once its manifest does: the manifest is the last file renamed into place. */
  hasVersion(model: string, version: number): Promise<boolean> {
    return exists(join(this.versionDir(model, version), MANIFEST_FILE));
  }

  /** Numeric directories holding a manifest; the manifest check keeps hand-copied, half-finished dirs out. */
  async scanVersions(model: string): Promise<number[]> {
    const versions: number[] = [];
    for (const entry of await readdirIfExists(this.modelDir(model))) {
      if (!VERSION_DIR_PATTERN.test(entry)) continue;
      if (await exists(join(this.modelDir(model), entry, MANIFEST_FILE))) versions.push(Number(entry));
    }
    return versions.sort((a, b) => a - b);
  }

  /** Runs `action` holding the model's lock (alias changes and gc; publishing needs none). */
  lock<T>(model: string, action: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.modelDir(model), LOCK_FILE), this.lockOptions, action);
  }
}
