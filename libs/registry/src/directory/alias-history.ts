import { DomainError, FailedPreconditionError, IntegrityError, NotFoundError } from '@deit-serve/core';
import { hostname, userInfo } from 'node:os';
import { assertAliasName, assertModelName, assertVersion } from '../refs';
import type { AliasHistoryEntry, BrokenAlias, ChangeOptions, RepairedAlias } from '../storage';
import { lastChange, rollbackTarget, type AliasFiles } from './alias-files';
import type { RegistryLayout } from './layout';

/** What alias changes ask of the store about the versions they point at. */
export interface AliasTargets {
  /** Throws NotFoundError for an unknown model. */
  requireModel(model: string): Promise<void>;
  /** Throws unless the version exists and every file matches its manifest (re-hashed). */
  requireIntact(model: string, version: number): Promise<void>;
  /** Throws NotFoundError unless the version exists; cheap enough to run under the lock. */
  requireVersion(model: string, version: number): Promise<void>;
}

export function defaultActor(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    // userInfo() throws for uids without a passwd entry (common in containers).
    return `uid-${process.getuid?.() ?? 'unknown'}@${hostname()}`;
  }
}

/** Alias name to version, leaving out deleted aliases. */
export function aliasTargets(pointers: ReadonlyMap<string, AliasHistoryEntry>): Record<string, number> {
  const result: Record<string, number> = {};
  for (const [alias, entry] of pointers) if (entry.to !== null) result[alias] = entry.to;
  return result;
}

/** The history entry a change becomes: numbered after the last one, stamped with who and why. */
export function nextEntry(
  model: string,
  history: readonly AliasHistoryEntry[],
  change: Pick<AliasHistoryEntry, 'alias' | 'action' | 'from' | 'to'>,
  options: ChangeOptions,
): AliasHistoryEntry {
  return {
    seq: history.reduce((max, e) => Math.max(max, e.seq), 0) + 1,
    at: new Date().toISOString(),
    model,
    ...change,
    actor: options.actor ?? defaultActor(),
    reason: options.reason ?? null,
  };
}

/**
 * Moving, deleting and rolling back aliases, each change recorded in the model's history. Every write
 * happens under the model's lock; the pointer file is written before the history line, so a crash in
 * between leaves a pointer newer than the history, which the next writer reconciles.
 */
export class AliasHistory {
  constructor(
    private readonly layout: RegistryLayout,
    private readonly files: AliasFiles,
    private readonly targets: AliasTargets,
  ) {}

  async current(model: string): Promise<Record<string, number>> {
    await this.targets.requireModel(model);
    return aliasTargets(await this.files.readAllPointers(model));
  }

  async inspect(model: string): Promise<{ aliases: Record<string, number>; broken: BrokenAlias[] }> {
    await this.targets.requireModel(model);
    const { pointers, broken } = await this.files.readPointers(model);
    const history = broken.length > 0 ? await this.files.readHistory(model) : [];
    return {
      aliases: aliasTargets(pointers),
      broken: broken.map(({ alias, problem }) => ({
        alias,
        file: this.files.relative(model, alias),
        problem,
        lastRecorded: lastChange(history, alias)?.to ?? null,
      })),
    };
  }

  async repair(model: string): Promise<RepairedAlias[]> {
    await this.targets.requireModel(model);
    return this.layout.lock(model, async () => {
      const history = await this.reconcile(model);
      const repaired: RepairedAlias[] = [];
      for (const { alias } of (await this.files.readPointers(model)).broken) {
        // The pointer is by definition the alias's last change, so the history restores it exactly.
        const last = lastChange(history, alias);
        if (last === undefined) await this.files.setAside(model, alias);
        else await this.files.writePointer(model, last);
        repaired.push({ alias, file: this.files.relative(model, alias), restored: last?.to ?? null });
      }
      return repaired;
    });
  }

  async entries(model: string, alias?: string): Promise<AliasHistoryEntry[]> {
    await this.targets.requireModel(model);
    if (alias !== undefined) assertAliasName(alias);
    const entries = await this.effective(model);
    return alias === undefined ? entries : entries.filter((e) => e.alias === alias);
  }

  /**
   * Called under the lock: appends the changes only their pointer files remember (see the class comment),
   * so history and pointers agree again.
   */
  async reconcile(model: string): Promise<AliasHistoryEntry[]> {
    const { history, missing } = await this.split(model);
    for (const entry of missing) await this.files.appendHistory(model, entry);
    return [...history, ...missing];
  }

  /** The history as {@link reconcile} would leave it; writes nothing. */
  async effective(model: string): Promise<AliasHistoryEntry[]> {
    const { history, missing } = await this.split(model);
    return [...history, ...missing];
  }

  private async split(
    model: string,
  ): Promise<{ history: AliasHistoryEntry[]; missing: AliasHistoryEntry[] }> {
    const history = await this.files.readHistory(model);
    const lastSeq = history.reduce((max, e) => Math.max(max, e.seq), 0);
    const missing = [...(await this.files.readPointers(model)).pointers.values()]
      .filter((p) => p.seq > lastSeq)
      .sort((a, b) => a.seq - b.seq);
    return { history, missing };
  }

  private async record(
    model: string,
    history: AliasHistoryEntry[],
    change: Pick<AliasHistoryEntry, 'alias' | 'action' | 'from' | 'to'>,
    options: ChangeOptions,
  ): Promise<AliasHistoryEntry> {
    const entry = nextEntry(model, history, change, options);
    await this.files.writePointer(model, entry);
    await this.files.appendHistory(model, entry);
    return entry;
  }

  /** The alias's last change; for a damaged pointer file the history's record (writing a new change repairs it). */
  private async lastChange(
    model: string,
    alias: string,
    history: readonly AliasHistoryEntry[],
  ): Promise<{ last: AliasHistoryEntry | undefined; damaged: boolean }> {
    try {
      return { last: await this.files.readPointer(model, alias), damaged: false };
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      return { last: lastChange(history, alias), damaged: true };
    }
  }

  async set(
    model: string,
    alias: string,
    version: number,
    options: ChangeOptions = {},
  ): Promise<AliasHistoryEntry> {
    assertModelName(model);
    assertAliasName(alias);
    assertVersion(version);
    // Hashing can take seconds for big models: done before taking the lock, re-checked for existence under it.
    await this.targets.requireIntact(model, version);
    return this.layout.lock(model, async () => {
      const history = await this.reconcile(model);
      const { last: current, damaged } = await this.lastChange(model, alias, history);
      if (!damaged && current !== undefined && current.to === version) return current;
      await this.targets.requireVersion(model, version);
      return this.record(
        model,
        history,
        { alias, action: 'set', from: current?.to ?? null, to: version },
        options,
      );
    });
  }

  async delete(model: string, alias: string, options: ChangeOptions = {}): Promise<AliasHistoryEntry> {
    assertModelName(model);
    assertAliasName(alias);
    await this.targets.requireModel(model);
    return this.layout.lock(model, async () => {
      const history = await this.reconcile(model);
      const { last: current } = await this.lastChange(model, alias, history);
      if (current === undefined || current.to === null) {
        throw new NotFoundError(`model ${JSON.stringify(model)} has no alias ${JSON.stringify(alias)}`);
      }
      // A tombstone instead of unlinking keeps "the pointer is the last change" true, which recovery relies on.
      return this.record(model, history, { alias, action: 'delete', from: current.to, to: null }, options);
    });
  }

  async rollback(model: string, alias: string, options: ChangeOptions = {}): Promise<AliasHistoryEntry> {
    assertModelName(model);
    assertAliasName(alias);
    await this.targets.requireModel(model);
    const planned = rollbackTarget(await this.effective(model), alias);
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
      await this.targets.requireIntact(model, planned);
    } catch (error) {
      if (error instanceof NotFoundError) {
        throw new FailedPreconditionError(
          `cannot roll back ${model}@${alias} to version ${planned}: ${error.message}`,
          { cause: error },
        );
      }
      throw error;
    }
    return this.layout.lock(model, async () => {
      const history = await this.reconcile(model);
      if (rollbackTarget(history, alias) !== planned) {
        throw new DomainError(
          'ABORTED',
          `alias ${JSON.stringify(alias)} of model ${JSON.stringify(model)} changed during rollback; retry`,
        );
      }
      await this.targets.requireVersion(model, planned);
      const { last: current } = await this.lastChange(model, alias, history);
      return this.record(
        model,
        history,
        { alias, action: 'rollback', from: current?.to ?? null, to: planned },
        options,
      );
    });
  }
}
