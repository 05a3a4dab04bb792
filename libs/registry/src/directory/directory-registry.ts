import { FailedPreconditionError, NotFoundError } from '@deit-serve/core';
import { mkdir } from 'node:fs/promises';
import { MODEL_FILE } from '../manifest';
import { assertModelName, DEFAULT_ALIAS, toModelRef, type ModelRef } from '../refs';
import type {
  AliasHistoryEntry,
  BrokenAlias,
  ChangeOptions,
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
import { AliasFiles, isValidName } from './alias-files';
import { AliasHistory } from './alias-history';
import { GarbageCollector } from './gc';
import { isDirectory, readdirIfExists } from './fs-util';
import { VersionIntegrity } from './integrity';
import { RegistryLayout, versionLabel as label } from './layout';
import { Publisher, type PublishHooks } from './publisher';
import { scanRegistry } from './snapshot';
import { RegistryWatcher, type RegistrySnapshot, type WatchStrategy } from './watcher';

export { DEFAULT_TEMP_MAX_AGE_MS } from './gc';

export interface DirectoryRegistryOptions {
  /** Create the root directory when missing (default true). Read-only tools pass false to catch typos. */
  create?: boolean;
  /** How long alias changes and gc wait for a model's lock (ms). Default 10 s. */
  lockTimeoutMs?: number;
  /** Age after which a lock is taken over (ms). Default 30 s. */
  lockStaleMs?: number;
  /** Directory-watch strategy; the default suits the platform (see {@link WatchStrategy}). */
  watchStrategy?: WatchStrategy;
  /** Fault injection for tests. */
  testHooks?: PublishHooks;
}

/**
 * The registry on a directory (a local folder, or a volume shared by pods); {@link RegistryLayout} shows
 * where everything lives. This class lists and resolves; publishing ({@link Publisher}), integrity checks
 * ({@link VersionIntegrity}), alias changes ({@link AliasHistory}) and retention ({@link GarbageCollector})
 * each live in their own module.
 */
export class DirectoryRegistry implements ModelRegistry {
  readonly root: string;
  private readonly layout: RegistryLayout;
  private readonly aliasFiles: AliasFiles;
  private readonly integrity: VersionIntegrity;
  private readonly publisher: Publisher;
  private readonly aliases: AliasHistory;
  private readonly collector: GarbageCollector;

  private constructor(
    root: string,
    private readonly options: DirectoryRegistryOptions,
  ) {
    this.layout = new RegistryLayout(root, {
      timeoutMs: options.lockTimeoutMs ?? 10_000,
      staleMs: options.lockStaleMs ?? 30_000,
    });
    this.root = this.layout.root;
    this.aliasFiles = new AliasFiles(this.root);
    this.integrity = new VersionIntegrity(this.layout);
    this.publisher = new Publisher(this.layout, options.testHooks);
    this.aliases = new AliasHistory(this.layout, this.aliasFiles, {
      requireModel: async (model) => {
        await this.listVersions(model);
      },
      requireIntact: async (model, version) => {
        await this.getManifest({ name: model, kind: 'version', version });
      },
      requireVersion: async (model, version) => {
        await this.resolve({ name: model, kind: 'version', version });
      },
    });
    this.collector = new GarbageCollector(this.layout, this.aliasFiles, this.aliases, () =>
      this.listModels(),
    );
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

  // ---- listing and resolution --------------------------------------------------------------------------

  async listModels(): Promise<string[]> {
    const models: string[] = [];
    for (const entry of (await readdirIfExists(this.root)).sort()) {
      if (!isValidName(entry)) continue;
      // A model exists once it has a version; a first publish that crashed leaves only claims behind.
      if ((await this.layout.scanVersions(entry)).length > 0) models.push(entry);
    }
    return models;
  }

  async listVersions(model: string): Promise<number[]> {
    assertModelName(model);
    const versions = await this.layout.scanVersions(model);
    if (versions.length === 0) throw await this.unknownModel(model);
    return versions;
  }

  private async unknownModel(model: string): Promise<NotFoundError> {
    const known = await this.listModels();
    return new NotFoundError(
      `unknown model ${JSON.stringify(model)}` +
        (known.length > 0 ? ` (known: ${known.join(', ')})` : ' (registry is empty)'),
    );
  }

  getAliases(model: string): Promise<Record<string, number>> {
    return this.aliases.current(model);
  }

  inspectAliases(model: string): Promise<{ aliases: Record<string, number>; broken: BrokenAlias[] }> {
    return this.aliases.inspect(model);
  }

  repairAliases(model: string): Promise<RepairedAlias[]> {
    return this.aliases.repair(model);
  }

  async resolve(ref: ModelRef | string): Promise<ResolvedRef> {
    const parsed = toModelRef(ref);
    const model = parsed.name;
    switch (parsed.kind) {
      case 'version': {
        if (!(await this.layout.hasVersion(model, parsed.version))) {
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
    if (!(await this.layout.hasVersion(model, pointer.to))) {
      // gc never removes alias targets, so this means the version was deleted by hand.
      throw new FailedPreconditionError(
        `alias ${JSON.stringify(alias)} of model ${JSON.stringify(model)} points to version ${pointer.to}, which does not exist`,
      );
    }
    return pointer.to;
  }

  // ---- reading versions --------------------------------------------------------------------------------

  async getManifest(
    ref: ModelRef | string,
    options: { integrity?: 'full' | 'size' } = {},
  ): Promise<VersionInfo> {
    const resolved = await this.resolve(ref);
    const manifest = await this.integrity.readManifest(resolved.model, resolved.version);
    await this.integrity.assertIntact(
      resolved.model,
      resolved.version,
      manifest,
      options.integrity ?? 'full',
    );
    return { ...resolved, manifest };
  }

  async loadVersion(
    ref: ModelRef | string,
    options: { files?: readonly string[] } = {},
  ): Promise<LoadedVersion> {
    const resolved = await this.resolve(ref);
    const { model, version } = resolved;
    const manifest = await this.integrity.readManifest(model, version);
    const wanted = [...new Set(options.files ?? [MODEL_FILE])];
    for (const path of wanted) {
      if (!(path in manifest.files)) {
        throw new NotFoundError(
          `${label(model, version)} has no file ${JSON.stringify(path)} (files: ${Object.keys(manifest.files).join(', ')})`,
        );
      }
    }
    // The files not loaded get the cheap check, so that a damaged version is refused as a whole.
    await this.integrity.assertIntact(model, version, manifest, 'size', new Set(wanted));
    const files = new Map<string, Buffer>();
    for (const path of wanted) {
      const entry = manifest.files[path];
      if (entry === undefined) continue; // checked above; keeps the type honest
      files.set(path, await this.integrity.readChecked(model, version, path, entry));
    }
    return { ...resolved, manifest, files };
  }

  async verify(ref: ModelRef | string): Promise<VerifyReport> {
    const { model, version } = await this.resolve(ref);
    return this.integrity.verify(model, version);
  }

  // ---- writing -----------------------------------------------------------------------------------------

  publish(model: string, request: PublishRequest): Promise<VersionInfo> {
    return this.publisher.publish(model, request);
  }

  aliasHistory(model: string, alias?: string): Promise<AliasHistoryEntry[]> {
    return this.aliases.entries(model, alias);
  }

  setAlias(
    model: string,
    alias: string,
    version: number,
    options: ChangeOptions = {},
  ): Promise<AliasHistoryEntry> {
    return this.aliases.set(model, alias, version, options);
  }

  deleteAlias(model: string, alias: string, options: ChangeOptions = {}): Promise<AliasHistoryEntry> {
    return this.aliases.delete(model, alias, options);
  }

  rollback(model: string, alias: string, options: ChangeOptions = {}): Promise<AliasHistoryEntry> {
    return this.aliases.rollback(model, alias, options);
  }

  gc(options: GcOptions): Promise<GcReport> {
    return this.collector.run(options);
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
      versions: (model) => this.layout.scanVersions(model),
      aliases: async (model) => (await this.aliasFiles.readPointers(model)).pointers,
    });
  }
}
