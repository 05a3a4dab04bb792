import type { Manifest, ManifestFields } from './manifest';
import type { ModelRef } from './refs';

/**
 * The model registry as the rest of the product sees it. Storage-neutral: the first backend is a directory
 * ({@link DirectoryRegistry}); an object-store backend would implement the same contract.
 *
 * Errors are domain errors from `@deit-serve/core`: InvalidArgumentError (bad names, refs, manifests),
 * NotFoundError (unknown model, version or alias), IntegrityError (stored bytes do not match the manifest),
 * FailedPreconditionError (e.g. nothing to roll back to), DomainError 'ABORTED' (lock not obtained in time).
 */
export interface ModelRegistry {
  /** Model names, sorted. */
  listModels(): Promise<string[]>;
  /** Published versions of a model, ascending. */
  listVersions(model: string): Promise<number[]>;
  /** Current alias targets of a model; a damaged alias file fails it (IntegrityError). */
  getAliases(model: string): Promise<Record<string, number>>;
  /** Current alias targets, and the alias files that cannot be read reported apart instead of failing. */
  inspectAliases(model: string): Promise<{ aliases: Record<string, number>; broken: BrokenAlias[] }>;
  /**
   * Rewrites each damaged alias file of a model from its last recorded change (the history is the record);
   * one without history is set aside. Returns what it repaired; changes no target the history names.
   */
  repairAliases(model: string): Promise<RepairedAlias[]>;
  /** Resolves a ref to a concrete version without reading the version (see {@link ModelRef} for the rules). */
  resolve(ref: ModelRef | string): Promise<ResolvedRef>;
  /**
   * The manifest of a version. `integrity: 'full'` (default) re-hashes every file; `'size'` only checks that
   * every file exists with its recorded size (cheap; catches truncation), for listings.
   */
  getManifest(ref: ModelRef | string, options?: { integrity?: 'full' | 'size' }): Promise<VersionInfo>;
  /**
   * Loads files of a version into memory, checking size and sha256 of exactly the bytes returned, so that a
   * file changed after verification cannot be served. Default: only model.onnx.
   */
  loadVersion(ref: ModelRef | string, options?: { files?: readonly string[] }): Promise<LoadedVersion>;
  /** Checks every file of a version; reports problems instead of throwing them. */
  verify(ref: ModelRef | string): Promise<VerifyReport>;
  /** Stores a new version and returns it; the registry assigns the version number. */
  publish(model: string, request: PublishRequest): Promise<VersionInfo>;
  /**
   * Points an alias at a version (checked for integrity first) and records the move. Pointing it at its
   * current target records nothing and returns the last change.
   */
  setAlias(
    model: string,
    alias: string,
    version: number,
    options?: ChangeOptions,
  ): Promise<AliasHistoryEntry>;
  /** Removes an alias, recording it; a later rollback can restore it. */
  deleteAlias(model: string, alias: string, options?: ChangeOptions): Promise<AliasHistoryEntry>;
  /** Undoes the last move of an alias that has not been undone yet, in one call. */
  rollback(model: string, alias: string, options?: ChangeOptions): Promise<AliasHistoryEntry>;
  /** Alias moves of a model, oldest first; one alias only when given. */
  aliasHistory(model: string, alias?: string): Promise<AliasHistoryEntry[]>;
  /** Calls `listener` for every change published, moved or removed after `ready` resolves. */
  watch(listener: RegistryListener, options?: WatchOptions): RegistrySubscription;
  /** Removes old versions and abandoned temporary files; see {@link GcOptions}. */
  gc(options: GcOptions): Promise<GcReport>;
}

/** Bytes, or the path of a file to copy. */
export type PublishFileSource = Uint8Array | string;

export type PublishRequest = Omit<ManifestFields, 'labels'> & {
  /** Must include `model.onnx`; flat names; `manifest.json` is written by the registry. */
  files: Record<string, PublishFileSource>;
  /**
   * id2label. May be left out when `labels.txt` is among the files; when given without `labels.txt`, the
   * registry writes `labels.txt` so that every version has both.
   */
  labels?: ManifestFields['labels'];
};

export interface ResolvedRef {
  model: string;
  version: number;
  /** How the version was chosen: explicitly, through an alias, or as the newest one (bare name, no production). */
  via: 'version' | 'alias' | 'latest';
  alias?: string;
}

export interface VersionInfo extends ResolvedRef {
  manifest: Manifest;
}

export interface LoadedVersion extends VersionInfo {
  files: Map<string, Buffer>;
}

export interface FileCheck {
  path: string;
  ok: boolean;
  expected: { sha256: string; size: number };
  actual?: { sha256?: string; size: number };
  problem?: string;
}

export interface VerifyReport {
  model: string;
  version: number;
  ok: boolean;
  /** Set when the manifest itself is unreadable; `files` is then empty. */
  problem?: string;
  files: FileCheck[];
}

/** An alias file that cannot be read, with the last target the history records for its alias. */
export interface BrokenAlias {
  alias: string;
  /** Relative to the registry root. */
  file: string;
  problem: string;
  /** Where the alias history last pointed it (null: deleted, or no history for it). */
  lastRecorded: number | null;
}

export interface RepairedAlias {
  alias: string;
  file: string;
  /** The target the pointer was rewritten to from the history; null: no history, the file was set aside. */
  restored: number | null;
}

export interface ChangeOptions {
  /** Who made the change; defaults to `user@host` of this process. */
  actor?: string;
  reason?: string;
}

export interface AliasHistoryEntry {
  /** Per-model sequence number, increasing by one per change. */
  seq: number;
  at: string;
  model: string;
  alias: string;
  action: 'set' | 'delete' | 'rollback';
  from: number | null;
  to: number | null;
  actor: string;
  reason: string | null;
}

export type RegistryEvent =
  | { type: 'version-added'; model: string; version: number }
  | { type: 'version-removed'; model: string; version: number }
  /** Files of a published version changed in place: damaged, or repaired (versions are otherwise immutable). */
  | { type: 'version-changed'; model: string; version: number }
  /** `version` null: the alias was removed. */
  | { type: 'alias-moved'; model: string; alias: string; version: number | null; previous: number | null };

export type RegistryListener = (event: RegistryEvent) => void;

export interface WatchOptions {
  /**
   * 'events': file-system notifications only. 'poll': rescans every `pollIntervalMs` (network volumes, where
   * notifications do not cross hosts). 'auto' (default): notifications plus polling as a safety net for
   * missed notifications; polling only when notifications are unavailable.
   */
  mode?: 'events' | 'poll' | 'auto';
  /** Default 1000. */
  pollIntervalMs?: number;
  /** Notifications within this window are folded into one rescan. Default 25. */
  debounceMs?: number;
  /** Errors of background rescans and of listeners; default: ignored, the next rescan retries. */
  onError?: (error: unknown) => void;
}

export interface RegistrySubscription {
  /** Resolves once the initial state is read; changes after it are reported. */
  readonly ready: Promise<void>;
  /** The mode in effect ('auto' resolves to 'events' or 'poll'). */
  readonly mode: 'events' | 'poll';
  /** Stops watching; no listener call happens after the returned promise resolves. */
  close(): Promise<void>;
}

export interface GcOptions {
  /** Versions to keep per model, newest first (at least 1). Versions an alias points to are always kept. */
  keepLast: number;
  /**
   * Temporary directories (abandoned publishes) and leftovers of interrupted atomic writes older than this
   * are removed (ms). Default one hour: long enough for a slow copy of a large model to a network volume.
   */
  tempMaxAgeMs?: number;
  /** Report what would be removed without removing it. */
  dryRun?: boolean;
}

export interface GcReport {
  removed: { model: string; version: number }[];
  /** Versions kept only because an alias points to them, or a rollback would return to them. */
  protected: { model: string; version: number; reason: string }[];
  tempRemoved: string[];
}
