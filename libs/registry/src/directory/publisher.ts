import { DomainError, InvalidArgumentError } from '@deit-serve/core';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  formatLabelsText,
  LABELS_FILE,
  labelsInOrder,
  MANIFEST_FILE,
  MANIFEST_SCHEMA_VERSION,
  parseLabelsText,
  parseManifestFields,
  safeParseManifest,
  type FileEntry,
  type Manifest,
} from '../manifest';
import { assertModelName } from '../refs';
import type { PublishRequest, VersionInfo } from '../storage';
import { errorCode, fsyncDir, readdirIfExists, writeNewFile } from './fs-util';
import { versionLabel as label, VERSION_DIR_PATTERN, type RegistryLayout } from './layout';
import { readSource, validateSources, verifyStaged, writeSource } from './staging';

export interface PublishHooks {
  /** Runs after a version is fully staged, before it is re-verified and renamed into place. */
  beforeCommit?: (stagingDir: string) => Promise<void> | void;
}

/**
 * Publishing needs no lock: a version number is claimed by creating `.claims/<n>` with O_EXCL (exactly one
 * process wins each number; a crash only leaves a gap), and the staged directory appears under its number
 * by a single rename, so readers see a whole version or none.
 */
export class Publisher {
  constructor(
    private readonly layout: RegistryLayout,
    private readonly hooks: PublishHooks = {},
  ) {}

  async publish(model: string, request: PublishRequest): Promise<VersionInfo> {
    assertModelName(model);
    if (typeof request !== 'object' || request === null)
      throw new InvalidArgumentError('publish request must be an object');
    const { files, labels: givenLabels, ...fields } = request;
    const sources = validateSources(files);

    const labelsText = sources.get(LABELS_FILE);
    const fileLabels =
      labelsText === undefined
        ? undefined
        : parseLabelsText((await readSource(LABELS_FILE, labelsText)).toString('utf8'));
    const labels = givenLabels ?? fileLabels;
    if (labels === undefined) {
      throw new InvalidArgumentError(
        `invalid manifest: labels: required (pass labels, or ${LABELS_FILE} among the files)`,
      );
    }
    const validated = parseManifestFields({ ...fields, labels });
    if (fileLabels !== undefined && givenLabels !== undefined) {
      if (labelsInOrder(fileLabels).join('\n') !== labelsInOrder(validated.labels).join('\n')) {
        throw new InvalidArgumentError(`${LABELS_FILE} and labels disagree; pass one of them`);
      }
    }

    const { tempRoot } = this.layout;
    await mkdir(tempRoot, { recursive: true });
    const staging = await mkdtemp(join(tempRoot, `publish-${model}-`));
    try {
      const entries: Record<string, FileEntry> = {};
      for (const [path, source] of sources) {
        entries[path] = await writeSource(source, join(staging, path), path);
      }
      if (!sources.has(LABELS_FILE)) {
        entries[LABELS_FILE] = await writeNewFile(
          join(staging, LABELS_FILE),
          Buffer.from(formatLabelsText(validated.labels)),
        );
      }

      const created = await mkdir(this.layout.modelDir(model), { recursive: true });
      if (created !== undefined) await fsyncDir(this.layout.root);
      const version = await this.claimVersion(model);
      const manifest: Manifest = {
        schema_version: MANIFEST_SCHEMA_VERSION,
        name: model,
        version,
        created_at: new Date().toISOString(),
        files: Object.fromEntries(Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
        ...validated,
      };
      const checked = safeParseManifest(manifest);
      if (!checked.ok) throw new InvalidArgumentError(`invalid manifest: ${checked.problem}`);
      const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
      await writeNewFile(join(staging, MANIFEST_FILE), manifestBytes);
      await fsyncDir(staging);

      await this.hooks.beforeCommit?.(staging);
      await verifyStaged(staging, entries, manifestBytes, label(model, version));
      try {
        await rename(staging, this.layout.versionDir(model, version));
      } catch (error) {
        const code = errorCode(error);
        if (code === 'EEXIST' || code === 'ENOTEMPTY') {
          // Only possible when someone created the directory by hand, bypassing the claims.
          throw new DomainError(
            'ALREADY_EXISTS',
            `${label(model, version)} already exists on disk but was never claimed`,
            {
              cause: error,
            },
          );
        }
        throw error;
      }
      await fsyncDir(this.layout.modelDir(model));
      await fsyncDir(tempRoot);
      return { model, version, via: 'version', manifest: checked.manifest };
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * Hands out the next version number. Creating `.claims/<n>` with O_EXCL is the atomic step: of several
   * processes trying the same number exactly one succeeds, the others move on. Claims are never reused
   * (gc keeps the highest), so a number stays burnt even if its publish crashed or its version was removed.
   */
  private async claimVersion(model: string): Promise<number> {
    const claims = this.layout.claimsDir(model);
    await mkdir(claims, { recursive: true });
    for (;;) {
      const claimed = (await readdirIfExists(claims)).filter((n) => VERSION_DIR_PATTERN.test(n)).map(Number);
      const onDisk = (await readdirIfExists(this.layout.modelDir(model)))
        .filter((n) => VERSION_DIR_PATTERN.test(n))
        .map(Number);
      const next = Math.max(0, ...claimed, ...onDisk) + 1;
      try {
        await writeNewFile(
          join(claims, String(next)),
          Buffer.from(JSON.stringify({ pid: process.pid, host: hostname(), at: new Date().toISOString() })),
        );
      } catch (error) {
        if (errorCode(error) === 'EEXIST') continue;
        throw error;
      }
      await fsyncDir(claims);
      return next;
    }
  }
}
