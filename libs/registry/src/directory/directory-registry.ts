import {
  DomainError,
  FailedPreconditionError,
  IntegrityError,
  InvalidArgumentError,
  NotFoundError,
} from '@deit-serve/core';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import {
  formatLabelsText,
  LABELS_FILE,
  labelsInOrder,
  MANIFEST_FILE,
  MANIFEST_SCHEMA_VERSION,
  MODEL_FILE,
  parseLabelsText,
  parseManifestFields,
  safeParseManifest,
  type FileEntry,
  type Manifest,
} from '../manifest';
import {
  assertAliasName,
  assertModelName,
  assertVersion,
  DEFAULT_ALIAS,
  formatModelRef,
  toModelRef,
  type ModelRef,
} from '../refs';
import type {
  AliasHistoryEntry,
  BrokenAlias,
  ChangeOptions,
  FileCheck,
  GcOptions,
  GcReport,
  LoadedVersion,
  ModelRegistry,
  PublishRequest,
  RegistryListener,
  RepairedAlias,
  RegistrySubscription,
  ResolvedRef,
  VerifyReport,
  VersionInfo,
  WatchOptions,
} from '../storage';
import {
  errorCode,
  exists,
  fsyncDir,
  hashFile,
  isDirectory,
  isNotFound,
  newestMtimeMs,
  readdirIfExists,
  writeNewFile,
} from './fs-util';
import { AliasFiles, ALIASES_DIR, isValidName, lastChange, rollbackTarget } from './alias-files';
import { LOCK_DRAFT_INFIX, withFileLock } from './lock';
import { readSource, validateSources, verifyStaged, writeSource } from './staging';
import { scanRegistry } from './snapshot';
import { RegistryWatcher, type RegistrySnapshot, type WatchStrategy } from './watcher';

export interface DirectoryRegistryOptions {
  /** Create the root directory when missing (default true). Read-only tools pass false to catch typos. */
  create?: boolean;
  /** How long alias changes and gc wait for a model's lock (ms). Default 10 s. */
  lockTimeoutMs?: number;
  /** Age after which a lock is taken over (ms). Default 30 s. */
  lockStaleMs?: number;
  /** Directory-watch strategy; the default suits the platform (see {@link WatchStrategy}). */
  watchStrategy?: WatchStrategy;
  /** Fault injection for tests: runs after a version is fully staged, before it is re-verified and renamed into place. */
  testHooks?: { beforeCommit?: (stagingDir: string) => Promise<void> | void };
}

export const DEFAULT_TEMP_MAX_AGE_MS = 60 * 60 * 1000;

const TEMP_DIR = '.tmp';
const CLAIMS_DIR = '.claims';
const LOCK_FILE = '.lock';
const VERSION_DIR_PATTERN = /^[1-9][0-9]*$/;

function defaultActor(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    // userInfo() throws for uids without a passwd entry (common in containers).
    return `uid-${process.getuid?.() ?? 'unknown'}@${hostname()}`;
  }
}

function label(model: string, version: number): string {
  return formatModelRef({ name: model, kind: 'version', version });
}

/**
 * The registry on a directory (a local folder, or a volume shared by pods). Layout:
 *
 * ```
 * <root>/.tmp/                       staging and trash; ignored by readers, cleaned by gc
 * <root>/<model>/<version>/          model.onnx, manifest.json, labels.txt, reports...
 * <root>/<model>/.claims/<version>   version numbers handed out (never reused)
 * <root>/<model>/aliases/<alias>.json   current target = last change of the alias
 * <root>/<model>/alias-history.jsonl    every alias change, append-only
 * <root>/<model>/.lock               serialises alias changes and gc of the model
 * ```
 *
 * Publishing needs no lock: a version number is claimed by creating `.claims/<n>` with O_EXCL (exactly one
 * process wins each number; a crash only leaves a gap), and the staged directory appears under its number
 * by a single rename, so readers see a whole version or none.
 */
export class DirectoryRegistry implements ModelRegistry {
  readonly root: string;
  private readonly lockOptions: { timeoutMs: number; staleMs: number };
  private readonly aliasFiles: AliasFiles;

  private constructor(
    root: string,
    private readonly options: DirectoryRegistryOptions,
  ) {
    this.root = resolve(root);
    this.aliasFiles = new AliasFiles(this.root);
    this.lockOptions = { timeoutMs: options.lockTimeoutMs ?? 10_000, staleMs: options.lockStaleMs ?? 30_000 };
  }

  static async open(root: string, options: DirectoryRegistryOptions = {}): Promise<DirectoryRegistry> {
    const registry = new DirectoryRegistry(root, options);
    if (options.create ?? true) {
      await mkdir(registry.root, { recursive: true });
    } else if (!(await isDirectory(registry.root))) {
      throw new FailedPreconditionError(`registry directory ${registry.root} does not exist`);
    }
    return registry;
  }

  // ---- paths -------------------------------------------------------------------------------------------

  private modelDir(model: string): string {
    return join(this.root, model);
  }
  private versionDir(model: string, version: number): string {
    return join(this.root, model, String(version));
  }

  // ---- listing and resolution --------------------------------------------------------------------------

  async listModels(): Promise<string[]> {
    const models: string[] = [];
    for (const entry of (await readdirIfExists(this.root)).sort()) {
      if (!isValidName(entry)) continue;
      // A model exists once it has a version; a first publish that crashed leaves only claims behind.
      if ((await this.scanVersions(entry)).length > 0) models.push(entry);
    }
    return models;
  }

  async listVersions(model: string): Promise<number[]> {
    assertModelName(model);
    const versions = await this.scanVersions(model);
    if (versions.length === 0) throw await this.unknownModel(model);
    return versions;
  }

  /** Numeric directories holding a manifest; the manifest check keeps hand-copied, half-finished dirs out. */
  private async scanVersions(model: string): Promise<number[]> {
    const versions: number[] = [];
    for (const entry of await readdirIfExists(this.modelDir(model))) {
      if (!VERSION_DIR_PATTERN.test(entry)) continue;
      if (await exists(join(this.modelDir(model), entry, MANIFEST_FILE))) versions.push(Number(entry));
    }
    return versions.sort((a, b) => a - b);
  }

  private async unknownModel(model: string): Promise<NotFoundError> {
    const known = await this.listModels();
    return new NotFoundError(
      `unknown model ${JSON.stringify(model)}` +
        (known.length > 0 ? ` (known: ${known.join(', ')})` : ' (registry is empty)'),
    );
  }

  async getAliases(model: string): Promise<Record<string, number>> {
    await this.listVersions(model);
    return targets(await this.aliasFiles.readAllPointers(model));
  }

  async inspectAliases(model: string): Promise<{ aliases: Record<string, number>; broken: BrokenAlias[] }> {
    await this.listVersions(model);
    const { pointers, broken } = await this.aliasFiles.readPointers(model);
    const history = broken.length > 0 ? await this.aliasFiles.readHistory(model) : [];
    return {
      aliases: targets(pointers),
      broken: broken.map(({ alias, problem }) => ({
        alias,
        file: this.aliasFiles.relative(model, alias),
        problem,
        lastRecorded: lastChange(history, alias)?.to ?? null,
      })),
    };
  }

  async repairAliases(model: string): Promise<RepairedAlias[]> {
    await this.listVersions(model);
    return this.lock(model, async () => {
      const history = await this.reconcileHistory(model);
      const repaired: RepairedAlias[] = [];
      for (const { alias } of (await this.aliasFiles.readPointers(model)).broken) {
        // The pointer is by definition the alias's last change, so the history restores it exactly.
        const last = lastChange(history, alias);
        if (last === undefined) await this.aliasFiles.setAside(model, alias);
        else await this.aliasFiles.writePointer(model, last);
        repaired.push({ alias, file: this.aliasFiles.relative(model, alias), restored: last?.to ?? null });
      }
      return repaired;
    });
  }

  async resolve(ref: ModelRef | string): Promise<ResolvedRef> {
    const parsed = toModelRef(ref);
    const model = parsed.name;
    switch (parsed.kind) {
      case 'version': {
        if (!(await exists(join(this.versionDir(model, parsed.version), MANIFEST_FILE)))) {
          const versions = await this.listVersions(model); // throws for an unknown model
          throw new NotFoundError(
            `model ${JSON.stringify(model)} has no version ${parsed.version} (versions: ${versions.join(', ')})`,
          );
        }
        return { model, version: parsed.version, via: 'version' };
      }
      case 'alias': {
        const version = await this.aliasTarget(model, parsed.alias);
        if (version === undefined) {
          const aliases = Object.keys(await this.getAliases(model)); // throws for an unknown model
          throw new NotFoundError(
            `model ${JSON.stringify(model)} has no alias ${JSON.stringify(parsed.alias)}` +
              (aliases.length > 0 ? ` (aliases: ${aliases.join(', ')})` : ' (it has no aliases)'),
          );
        }
        return { model, version, via: 'alias', alias: parsed.alias };
      }
      case 'default': {
        const version = await this.aliasTarget(model, DEFAULT_ALIAS);
        if (version !== undefined) return { model, version, via: 'alias', alias: DEFAULT_ALIAS };
        const versions = await this.listVersions(model);
        return { model, version: versions[versions.length - 1] ?? 0, via: 'latest' };
      }
    }
  }

  private async aliasTarget(model: string, alias: string): Promise<number | undefined> {
    const pointer = await this.aliasFiles.readPointer(model, alias);
    if (pointer === undefined || pointer.to === null) return undefined;
    if (!(await exists(join(this.versionDir(model, pointer.to), MANIFEST_FILE)))) {
      // gc never removes alias targets, so this means the version was deleted by hand.
      throw new FailedPreconditionError(
        `alias ${JSON.stringify(alias)} of model ${JSON.stringify(model)} points to version ${pointer.to}, which does not exist`,
      );
    }
    return pointer.to;
  }

  // ---- reading versions --------------------------------------------------------------------------------

  private async readManifest(model: string, version: number): Promise<Manifest> {
    const path = join(this.versionDir(model, version), MANIFEST_FILE);
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
  private async checkFile(
    model: string,
    version: number,
    path: string,
    expected: FileEntry,
    mode: 'full' | 'size',
  ): Promise<FileCheck> {
    const where = `${label(model, version)}: file "${path}"`;
    const check: FileCheck = { path, ok: false, expected };
    let size: number;
    try {
      size = (await stat(join(this.versionDir(model, version), path))).size;
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
      const actual = await hashFile(join(this.versionDir(model, version), path));
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

  private async assertIntact(
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

  async getManifest(
    ref: ModelRef | string,
    options: { integrity?: 'full' | 'size' } = {},
  ): Promise<VersionInfo> {
    const resolved = await this.resolve(ref);
    const manifest = await this.readManifest(resolved.model, resolved.version);
    await this.assertIntact(resolved.model, resolved.version, manifest, options.integrity ?? 'full');
    return { ...resolved, manifest };
  }

  async loadVersion(
    ref: ModelRef | string,
    options: { files?: readonly string[] } = {},
  ): Promise<LoadedVersion> {
    const resolved = await this.resolve(ref);
    const { model, version } = resolved;
    const manifest = await this.readManifest(model, version);
    const wanted = [...new Set(options.files ?? [MODEL_FILE])];
    for (const path of wanted) {
      if (!(path in manifest.files)) {
        throw new NotFoundError(
          `${label(model, version)} has no file ${JSON.stringify(path)} (files: ${Object.keys(manifest.files).join(', ')})`,
        );
      }
    }
    // The files not loaded get the cheap check, so that a damaged version is refused as a whole.
    await this.assertIntact(model, version, manifest, 'size', new Set(wanted));
    const files = new Map<string, Buffer>();
    for (const path of wanted) {
      const entry = manifest.files[path];
      if (entry === undefined) continue; // checked above; keeps the type honest
      let bytes: Buffer;
      try {
        bytes = await readFile(join(this.versionDir(model, version), path));
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
      files.set(path, bytes);
    }
    return { ...resolved, manifest, files };
  }

  async verify(ref: ModelRef | string): Promise<VerifyReport> {
    const { model, version } = await this.resolve(ref);
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

  // ---- publishing --------------------------------------------------------------------------------------

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

    const tempRoot = join(this.root, TEMP_DIR);
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

      const created = await mkdir(this.modelDir(model), { recursive: true });
      if (created !== undefined) await fsyncDir(this.root);
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

      await this.options.testHooks?.beforeCommit?.(staging);
      await verifyStaged(staging, entries, manifestBytes, label(model, version));
      try {
        await rename(staging, this.versionDir(model, version));
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
      await fsyncDir(this.modelDir(model));
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
    const claims = join(this.modelDir(model), CLAIMS_DIR);
    await mkdir(claims, { recursive: true });
    for (;;) {
      const claimed = (await readdirIfExists(claims)).filter((n) => VERSION_DIR_PATTERN.test(n)).map(Number);
      const onDisk = (await readdirIfExists(this.modelDir(model)))
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

  // ---- aliases -----------------------------------------------------------------------------------------

  private lock<T>(model: string, action: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.modelDir(model), LOCK_FILE), this.lockOptions, action);
  }

  async aliasHistory(model: string, alias?: string): Promise<AliasHistoryEntry[]> {
    await this.listVersions(model);
    if (alias !== undefined) assertAliasName(alias);
    const { history, missing } = await this.effectiveHistory(model);
    const entries = [...history, ...missing];
    return alias === undefined ? entries : entries.filter((e) => e.alias === alias);
  }

  /**
   * The pointer file is written before the history line; a crash in between leaves a pointer newer than the
   * history. Called under the lock, this appends such a lost line, so history and pointers agree again.
   */
  private async reconcileHistory(model: string): Promise<AliasHistoryEntry[]> {
    const { history, missing } = await this.effectiveHistory(model);
    for (const entry of missing) await this.aliasFiles.appendHistory(model, entry);
    return [...history, ...missing];
  }

  /** History plus the changes only their pointer files remember (see {@link reconcileHistory}); writes nothing. */
  private async effectiveHistory(
    model: string,
  ): Promise<{ history: AliasHistoryEntry[]; missing: AliasHistoryEntry[] }> {
    const history = await this.aliasFiles.readHistory(model);
    const lastSeq = history.reduce((max, e) => Math.max(max, e.seq), 0);
    const missing = [...(await this.aliasFiles.readPointers(model)).pointers.values()]
      .filter((p) => p.seq > lastSeq)
      .sort((a, b) => a.seq - b.seq);
    return { history, missing };
  }

  private async recordChange(
    model: string,
    history: AliasHistoryEntry[],
    change: Pick<AliasHistoryEntry, 'alias' | 'action' | 'from' | 'to'>,
    options: ChangeOptions,
  ): Promise<AliasHistoryEntry> {
    const entry: AliasHistoryEntry = {
      seq: history.reduce((max, e) => Math.max(max, e.seq), 0) + 1,
      at: new Date().toISOString(),
      model,
      ...change,
      actor: options.actor ?? defaultActor(),
      reason: options.reason ?? null,
    };
    await this.aliasFiles.writePointer(model, entry);
    await this.aliasFiles.appendHistory(model, entry);
    return entry;
  }

  /** The alias's last change; for a damaged pointer file the history's record (writing a new change repairs it). */
  private async lastChange(
    model: string,
    alias: string,
    history: readonly AliasHistoryEntry[],
  ): Promise<{ last: AliasHistoryEntry | undefined; damaged: boolean }> {
    try {
      return { last: await this.aliasFiles.readPointer(model, alias), damaged: false };
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      return { last: lastChange(history, alias), damaged: true };
    }
  }

  async setAlias(
    model: string,
    alias: string,
    version: number,
    options: ChangeOptions = {},
  ): Promise<AliasHistoryEntry> {
    assertModelName(model);
    assertAliasName(alias);
    assertVersion(version);
    // Hashing can take seconds for big models: done before taking the lock, re-checked for existence under it.
    await this.getManifest({ name: model, kind: 'version', version });
    return this.lock(model, async () => {
      const history = await this.reconcileHistory(model);
      const { last: current, damaged } = await this.lastChange(model, alias, history);
      if (!damaged && current !== undefined && current.to === version) return current;
      await this.resolve({ name: model, kind: 'version', version });
      return this.recordChange(
        model,
        history,
        { alias, action: 'set', from: current?.to ?? null, to: version },
        options,
      );
    });
  }

  async deleteAlias(model: string, alias: string, options: ChangeOptions = {}): Promise<AliasHistoryEntry> {
    assertModelName(model);
    assertAliasName(alias);
    await this.listVersions(model);
    return this.lock(model, async () => {
      const history = await this.reconcileHistory(model);
      const { last: current } = await this.lastChange(model, alias, history);
      if (current === undefined || current.to === null) {
        throw new NotFoundError(`model ${JSON.stringify(model)} has no alias ${JSON.stringify(alias)}`);
      }
      // A tombstone instead of unlinking keeps "the pointer is the last change" true, which recovery relies on.
      return this.recordChange(
        model,
        history,
        { alias, action: 'delete', from: current.to, to: null },
        options,
      );
    });
  }

  async rollback(model: string, alias: string, options: ChangeOptions = {}): Promise<AliasHistoryEntry> {
    assertModelName(model);
    assertAliasName(alias);
    await this.listVersions(model);
    const { history: recorded, missing } = await this.effectiveHistory(model);
    const planned = rollbackTarget([...recorded, ...missing], alias);
    if (planned === undefined) {
      throw new FailedPreconditionError(
        `alias ${JSON.stringify(alias)} of model ${JSON.stringify(model)} has no earlier target to roll back to`,
      );
    }
    if (planned === null) {
      throw new FailedPreconditionError(
        `alias ${JSON.stringify(alias)} of model ${JSON.stringify(model)} was unset before its last move; ` +
          'delete the alias instead of rolling back',
      );
    }
    try {
      await this.getManifest({ name: model, kind: 'version', version: planned });
    } catch (error) {
      if (error instanceof NotFoundError) {
        throw new FailedPreconditionError(
          `cannot roll back ${model}@${alias} to version ${planned}: ${error.message}`,
          { cause: error },
        );
      }
      throw error;
    }
    return this.lock(model, async () => {
      const history = await this.reconcileHistory(model);
      if (rollbackTarget(history, alias) !== planned) {
        throw new DomainError(
          'ABORTED',
          `alias ${JSON.stringify(alias)} of model ${JSON.stringify(model)} changed during rollback; retry`,
        );
      }
      await this.resolve({ name: model, kind: 'version', version: planned });
      const { last: current } = await this.lastChange(model, alias, history);
      return this.recordChange(
        model,
        history,
        { alias, action: 'rollback', from: current?.to ?? null, to: planned },
        options,
      );
    });
  }

  // ---- watching ----------------------------------------------------------------------------------------

  watch(listener: RegistryListener, options: WatchOptions = {}): RegistrySubscription {
    return new RegistryWatcher(
      { ...options, root: this.root, scan: () => this.snapshot(), strategy: this.options.watchStrategy },
      listener,
    );
  }

  private snapshot(): Promise<RegistrySnapshot> {
    return scanRegistry(this.root, {
      versions: (model) => this.scanVersions(model),
      aliases: async (model) => (await this.aliasFiles.readPointers(model)).pointers,
    });
  }

  // ---- retention ---------------------------------------------------------------------------------------

  async gc(options: GcOptions): Promise<GcReport> {
    const { keepLast } = options;
    if (!Number.isSafeInteger(keepLast) || keepLast < 1) {
      throw new InvalidArgumentError(`keepLast must be an integer >= 1, got ${String(keepLast)}`);
    }
    const tempMaxAgeMs = options.tempMaxAgeMs ?? DEFAULT_TEMP_MAX_AGE_MS;
    if (!(tempMaxAgeMs >= 0))
      throw new InvalidArgumentError(`tempMaxAgeMs must be >= 0, got ${String(tempMaxAgeMs)}`);
    const dryRun = options.dryRun ?? false;
    const report: GcReport = { removed: [], protected: [], tempRemoved: [] };
    const tempRoot = join(this.root, TEMP_DIR);
    const trash: string[] = [];

    for (const model of await this.listModels()) {
      // Under the lock, so that no alias can be pointed at a version between our check and its removal.
      await this.lock(model, async () => {
        const history = dryRun
          ? await this.effectiveHistory(model).then(({ history: h, missing }) => [...h, ...missing])
          : await this.reconcileHistory(model);
        const reasons = new Map<number, string[]>();
        const protect = (version: number, reason: string): void => {
          reasons.set(version, [...(reasons.get(version) ?? []), reason]);
        };
        for (const [alias, pointer] of await this.aliasFiles.readAllPointers(model)) {
          if (pointer.to !== null) protect(pointer.to, `alias ${alias}`);
          const back = rollbackTarget(history, alias);
          if (typeof back === 'number') protect(back, `rollback target of ${alias}`);
        }
        const versions = (await this.scanVersions(model)).reverse();
        for (const [index, version] of versions.entries()) {
          if (index < keepLast) continue;
          const why = reasons.get(version);
          if (why !== undefined) {
            report.protected.push({ model, version, reason: why.join(', ') });
            continue;
          }
          report.removed.push({ model, version });
          if (dryRun) continue;
          await mkdir(tempRoot, { recursive: true });
          // Renaming out first makes the version vanish atomically; deleting in place would expose a half-deleted one.
          const target = join(tempRoot, `gc-${model}-${version}-${process.pid}-${Date.now()}`);
          await rename(this.versionDir(model, version), target);
          trash.push(target);
        }
        if (!dryRun) await fsyncDir(this.modelDir(model));
        for (const stray of await this.strayFiles(model, tempMaxAgeMs)) {
          report.tempRemoved.push(stray);
          if (!dryRun) await rm(join(this.root, stray), { force: true });
        }
      });
      if (!dryRun) await this.compactClaims(model);
    }
    for (const dir of trash) await rm(dir, { recursive: true, force: true });

    for (const entry of await readdirIfExists(tempRoot)) {
      const path = join(tempRoot, entry);
      try {
        if (Date.now() - (await newestMtimeMs(path)) < tempMaxAgeMs) continue;
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
      report.tempRemoved.push(`${TEMP_DIR}/${entry}`);
      if (!dryRun) await rm(path, { recursive: true, force: true });
    }
    return report;
  }

  /** Leftovers of interrupted atomic writes and lock takeovers, relative to the root, older than `maxAgeMs`. */
  private async strayFiles(model: string, maxAgeMs: number): Promise<string[]> {
    const candidates = [
      ...(await readdirIfExists(join(this.modelDir(model), ALIASES_DIR)))
        .filter((name) => name.includes('.json.tmp-'))
        .map((name) => join(model, ALIASES_DIR, name)),
      ...(await readdirIfExists(this.modelDir(model)))
        .filter(
          (name) => name.startsWith(`${LOCK_FILE}.stale-`) || name.startsWith(LOCK_FILE + LOCK_DRAFT_INFIX),
        )
        .map((name) => join(model, name)),
    ];
    const stale: string[] = [];
    for (const path of candidates) {
      try {
        if (Date.now() - (await stat(join(this.root, path))).mtimeMs >= maxAgeMs) stale.push(path);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    return stale;
  }

  /** Only the highest claim matters for allocation; the others would pile up one file per publish. */
  private async compactClaims(model: string): Promise<void> {
    const claims = join(this.modelDir(model), CLAIMS_DIR);
    const numbers = (await readdirIfExists(claims)).filter((n) => VERSION_DIR_PATTERN.test(n)).map(Number);
    const highest = Math.max(0, ...numbers);
    for (const n of numbers) if (n < highest) await rm(join(claims, String(n)), { force: true });
  }
}

/** Alias name to version, leaving out deleted aliases. */
function targets(pointers: ReadonlyMap<string, AliasHistoryEntry>): Record<string, number> {
  const result: Record<string, number> = {};
  for (const [alias, entry] of pointers) if (entry.to !== null) result[alias] = entry.to;
  return result;
}
