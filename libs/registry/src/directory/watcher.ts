import { FailedPreconditionError } from '@deit-serve/core';
import { watch, type FSWatcher } from 'node:fs';
import type { RegistryEvent, RegistryListener, RegistrySubscription, WatchOptions } from '../storage';

/** What a rescan sees: per model, its versions and alias targets; plus the directories worth watching. */
export interface RegistrySnapshot {
  /** `versions` maps each version to a fingerprint of its files (see scanRegistry). */
  models: Map<string, { versions: Map<number, string>; aliases: Map<string, number> }>;
  /** Directories whose entries change when the registry changes (root, model, alias and version dirs). */
  directories: string[];
}

export type WatchStrategy = 'recursive' | 'per-directory';

export interface WatcherSetup extends WatchOptions {
  root: string;
  scan: () => Promise<RegistrySnapshot>;
  /**
   * Native recursive watching exists on macOS and Windows. On Linux, Node emulates it by walking the tree
   * in JavaScript, which has missed directories created after the start in several Node releases; watching
   * the few directories that matter ourselves is cheaper and predictable there.
   */
  strategy?: WatchStrategy;
}

export const DEFAULT_POLL_INTERVAL_MS = 1000;
export const DEFAULT_DEBOUNCE_MS = 25;

/** Events that turn `before` into `after`: additions first, so that an alias never names an unannounced version. */
export function diffSnapshots(before: RegistrySnapshot, after: RegistrySnapshot): RegistryEvent[] {
  const added: RegistryEvent[] = [];
  const moved: RegistryEvent[] = [];
  const removed: RegistryEvent[] = [];
  const names = new Set([...before.models.keys(), ...after.models.keys()]);
  for (const model of [...names].sort()) {
    const old = before.models.get(model);
    const now = after.models.get(model);
    const oldVersions = old?.versions ?? new Map<number, string>();
    const newVersions = now?.versions ?? new Map<number, string>();
    for (const [version, files] of [...newVersions].sort(([a], [b]) => a - b)) {
      const before = oldVersions.get(version);
      if (before === undefined) added.push({ type: 'version-added', model, version });
      else if (before !== files) added.push({ type: 'version-changed', model, version });
    }
    for (const version of [...oldVersions.keys()].sort((a, b) => a - b)) {
      if (!newVersions.has(version)) removed.push({ type: 'version-removed', model, version });
    }
    const aliases = new Set([...(old?.aliases.keys() ?? []), ...(now?.aliases.keys() ?? [])]);
    for (const alias of [...aliases].sort()) {
      const previous = old?.aliases.get(alias) ?? null;
      const version = now?.aliases.get(alias) ?? null;
      if (previous !== version) moved.push({ type: 'alias-moved', model, alias, version, previous });
    }
  }
  return [...added, ...moved, ...removed];
}

/**
 * Change notifications by diffing successive snapshots. Notifications (fs.watch) and the poll timer only
 * trigger a rescan; what is reported comes from the diff, so duplicate or spurious notifications cost a
 * rescan and never produce duplicate events, and nothing half-written is reported because versions and
 * alias pointers only ever appear by rename.
 */
export class RegistryWatcher implements RegistrySubscription {
  readonly ready: Promise<void>;
  readonly mode: 'events' | 'poll';

  private readonly watchers = new Map<string, FSWatcher>();
  private readonly strategy: WatchStrategy;
  private readonly debounceMs: number;
  private previous: RegistrySnapshot | undefined;
  private closed = false;
  private running: Promise<void> | undefined;
  private rerun = false;
  private debounceTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly setup: WatcherSetup,
    private readonly listener: RegistryListener,
  ) {
    const requested = setup.mode ?? 'auto';
    this.strategy =
      setup.strategy ??
      (process.platform === 'darwin' || process.platform === 'win32' ? 'recursive' : 'per-directory');
    this.debounceMs = setup.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    const pollIntervalMs = setup.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    if (!(pollIntervalMs > 0)) throw new FailedPreconditionError('pollIntervalMs must be > 0');

    let eventsAvailable = false;
    if (requested !== 'poll') {
      try {
        // The root watcher is created synchronously so that a missing root or an exhausted inotify budget
        // is known before we promise a mode.
        this.addWatcher(setup.root, this.strategy === 'recursive');
        eventsAvailable = true;
      } catch (error) {
        if (requested === 'events') {
          throw new FailedPreconditionError(`cannot watch ${setup.root} for changes: ${String(error)}`, {
            cause: error,
          });
        }
      }
    }
    this.mode = eventsAvailable ? 'events' : 'poll';
    if (requested !== 'events') {
      // In 'auto' with notifications this is the safety net for lost notifications (queue overflow).
      this.pollTimer = setInterval(() => this.requestScan(), pollIntervalMs);
    }
    this.ready = this.scanOnce(false);
    // Callers need not await `ready`; a failed first scan must not become an unhandled rejection.
    this.ready.catch((error: unknown) => this.report(error));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounceTimer);
    clearInterval(this.pollTimer);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
    // Waiting lets a rescan in flight finish; it checks `closed` before every listener call.
    await this.ready.catch(() => undefined);
    await this.running;
  }

  private report(error: unknown): void {
    try {
      this.setup.onError?.(error);
    } catch {
      // A failing error handler must not stop the watcher.
    }
  }

  private addWatcher(dir: string, recursive: boolean): void {
    const watcher = watch(dir, { recursive }, () => this.onNotification());
    watcher.on('error', (error) => {
      // Typically the directory was removed; the rescan drops or re-creates watchers as needed.
      watcher.close();
      if (this.watchers.get(dir) === watcher) this.watchers.delete(dir);
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.report(error);
      this.onNotification();
    });
    this.watchers.set(dir, watcher);
  }

  private onNotification(): void {
    if (this.closed || this.debounceTimer !== undefined) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.requestScan();
    }, this.debounceMs);
  }

  private requestScan(): void {
    if (this.closed) return;
    if (this.running !== undefined) {
      this.rerun = true;
      return;
    }
    this.running = this.runScans().finally(() => {
      this.running = undefined;
    });
  }

  private async runScans(): Promise<void> {
    await this.ready.catch(() => undefined);
    do {
      this.rerun = false;
      try {
        await this.scanOnce(true);
      } catch (error) {
        this.report(error);
      }
    } while (this.rerun && !this.closed);
  }

  private async scanOnce(emit: boolean): Promise<void> {
    const snapshot = await this.setup.scan();
    if (this.closed) return;
    if (emit && this.previous !== undefined) {
      for (const event of diffSnapshots(this.previous, snapshot)) {
        if (this.closed) return;
        try {
          this.listener(event);
        } catch (error) {
          this.report(error);
        }
      }
    }
    this.previous = snapshot;
    if (
      this.mode === 'events' &&
      this.strategy === 'per-directory' &&
      this.syncWatchers(snapshot.directories)
    ) {
      // Changes between reading a directory and starting to watch it would otherwise go unnoticed.
      this.requestScan();
    }
  }

  /** Returns whether a watcher was added. */
  private syncWatchers(directories: string[]): boolean {
    const wanted = new Set(directories);
    for (const [dir, watcher] of this.watchers) {
      if (dir !== this.setup.root && !wanted.has(dir)) {
        watcher.close();
        this.watchers.delete(dir);
      }
    }
    let added = false;
    for (const dir of wanted) {
      if (this.watchers.has(dir)) continue;
      try {
        this.addWatcher(dir, false);
        added = true;
      } catch (error) {
        // Gone between the scan and now: the root or model watcher has seen that too.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.report(error);
      }
    }
    return added;
  }
}
