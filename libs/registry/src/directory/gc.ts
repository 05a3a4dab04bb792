import { InvalidArgumentError } from '@deit-serve/core';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AliasHistoryEntry, GcOptions, GcReport } from '../storage';
import { ALIASES_DIR, rollbackTarget, type AliasFiles } from './alias-files';
import type { AliasHistory } from './alias-history';
import { fsyncDir, isNotFound, newestMtimeMs, readdirIfExists } from './fs-util';
import { LOCK_DRAFT_INFIX } from './lock';
import { LOCK_FILE, TEMP_DIR, VERSION_DIR_PATTERN, type RegistryLayout } from './layout';

/** How old a staging or trash entry must be before gc removes it (an older one is an interrupted write). */
export const DEFAULT_TEMP_MAX_AGE_MS = 60 * 60 * 1000;

/**
 * Which versions of one model gc removes: all but the newest `keepLast`, except those with a reason to
 * stay (an alias points at them, or a rollback would restore them).
 */
export function retentionPlan(
  versions: readonly number[],
  keepLast: number,
  reasons: ReadonlyMap<number, readonly string[]>,
): { remove: number[]; protected: { version: number; reason: string }[] } {
  const plan: ReturnType<typeof retentionPlan> = { remove: [], protected: [] };
  const newestFirst = [...versions].sort((a, b) => b - a);
  for (const [index, version] of newestFirst.entries()) {
    if (index < keepLast) continue;
    const why = reasons.get(version);
    if (why !== undefined) plan.protected.push({ version, reason: why.join(', ') });
    else plan.remove.push(version);
  }
  return plan;
}

/** Versions each alias needs kept, with why: its target, and the target its rollback would restore. */
export function protectedVersions(
  pointers: ReadonlyMap<string, AliasHistoryEntry>,
  history: readonly AliasHistoryEntry[],
): Map<number, string[]> {
  const reasons = new Map<number, string[]>();
  const protect = (version: number, reason: string): void => {
    reasons.set(version, [...(reasons.get(version) ?? []), reason]);
  };
  for (const [alias, pointer] of pointers) {
    if (pointer.to !== null) protect(pointer.to, `alias ${alias}`);
    const back = rollbackTarget(history, alias);
    if (typeof back === 'number') protect(back, `rollback target of ${alias}`);
  }
  return reasons;
}

/** Retention: old versions, leftovers of interrupted writes, and claims that no longer matter. */
export class GarbageCollector {
  constructor(
    private readonly layout: RegistryLayout,
    private readonly files: AliasFiles,
    private readonly history: AliasHistory,
    private readonly listModels: () => Promise<string[]>,
  ) {}

  async run(options: GcOptions): Promise<GcReport> {
    const { keepLast } = options;
    if (!Number.isSafeInteger(keepLast) || keepLast < 1) {
      throw new InvalidArgumentError(`keepLast must be an integer >= 1, got ${String(keepLast)}`);
    }
    const tempMaxAgeMs = options.tempMaxAgeMs ?? DEFAULT_TEMP_MAX_AGE_MS;
    if (!(tempMaxAgeMs >= 0))
      throw new InvalidArgumentError(`tempMaxAgeMs must be >= 0, got ${String(tempMaxAgeMs)}`);
    const dryRun = options.dryRun ?? false;
    const report: GcReport = { removed: [], protected: [], tempRemoved: [] };
    const { tempRoot } = this.layout;
    const trash: string[] = [];

    for (const model of await this.listModels()) {
      // Under the lock, so that no alias can be pointed at a version between our check and its removal.
      await this.layout.lock(model, async () => {
        const history = dryRun ? await this.history.effective(model) : await this.history.reconcile(model);
        const reasons = protectedVersions(await this.files.readAllPointers(model), history);
        const plan = retentionPlan(await this.layout.scanVersions(model), keepLast, reasons);
        for (const { version, reason } of plan.protected) report.protected.push({ model, version, reason });
        for (const version of plan.remove) {
          report.removed.push({ model, version });
          if (dryRun) continue;
          await mkdir(tempRoot, { recursive: true });
          // Renaming out first makes the version vanish atomically; deleting in place would expose a half-deleted one.
          const target = join(tempRoot, `gc-${model}-${version}-${process.pid}-${Date.now()}`);
          await rename(this.layout.versionDir(model, version), target);
          trash.push(target);
        }
        if (!dryRun) await fsyncDir(this.layout.modelDir(model));
        for (const stray of await this.strayFiles(model, tempMaxAgeMs)) {
          report.tempRemoved.push(stray);
          if (!dryRun) await rm(join(this.layout.root, stray), { force: true });
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
    const modelDir = this.layout.modelDir(model);
    const candidates = [
      ...(await readdirIfExists(join(modelDir, ALIASES_DIR)))
        .filter((name) => name.includes('.json.tmp-'))
        .map((name) => join(model, ALIASES_DIR, name)),
      ...(await readdirIfExists(modelDir))
        .filter(
          (name) => name.startsWith(`${LOCK_FILE}.stale-`) || name.startsWith(LOCK_FILE + LOCK_DRAFT_INFIX),
        )
        .map((name) => join(model, name)),
    ];
    const stale: string[] = [];
    for (const path of candidates) {
      try {
        if (Date.now() - (await stat(join(this.layout.root, path))).mtimeMs >= maxAgeMs) stale.push(path);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    return stale;
  }

  /** Only the highest claim matters for allocation; the others would pile up one file per publish. */
  private async compactClaims(model: string): Promise<void> {
    const claims = this.layout.claimsDir(model);
    const numbers = (await readdirIfExists(claims)).filter((n) => VERSION_DIR_PATTERN.test(n)).map(Number);
    const highest = Math.max(0, ...numbers);
    for (const n of numbers) if (n < highest) await rm(join(claims, String(n)), { force: true });
  }
}
