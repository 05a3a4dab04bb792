import { IntegrityError } from '@deit-serve/core';
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { assertModelName } from '../refs';
import type { AliasHistoryEntry } from '../storage';
import { isNotFound, randomSuffix, readdirIfExists, readTextIfExists, writeFileAtomic } from './fs-util';

export const ALIASES_DIR = 'aliases';
export const HISTORY_FILE = 'alias-history.jsonl';
/** A damaged alias file that has no history to restore it from is renamed to `<alias>.json<infix><suffix>`. */
const SET_ASIDE_INFIX = '.broken-';

const historyEntrySchema = z.strictObject({
  seq: z.int().positive(),
  at: z.string(),
  model: z.string(),
  alias: z.string(),
  action: z.enum(['set', 'delete', 'rollback']),
  from: z.int().positive().nullable(),
  to: z.int().positive().nullable(),
  actor: z.string(),
  reason: z.string().nullable(),
});

/**
 * A model's alias pointers (`aliases/<alias>.json`, each the last change of its alias) and its append-only
 * history (`alias-history.jsonl`). Callers hold the model's lock for anything that writes.
 */
export class AliasFiles {
  constructor(private readonly root: string) {}

  /** The pointer file's path relative to the root, as messages name it. */
  relative(model: string, alias: string): string {
    return `${model}/${ALIASES_DIR}/${alias}.json`;
  }

  private path(model: string, alias: string): string {
    return join(this.root, model, ALIASES_DIR, `${alias}.json`);
  }

  /** The last change of an alias; undefined when it was never set. A damaged file is an IntegrityError. */
  async readPointer(model: string, alias: string): Promise<AliasHistoryEntry | undefined> {
    const text = await readTextIfExists(this.path(model, alias));
    if (text === undefined) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new IntegrityError(`alias file ${this.relative(model, alias)} is not valid JSON`, {
        cause: error,
      });
    }
    const result = historyEntrySchema.safeParse(parsed);
    if (!result.success || result.data.alias !== alias || result.data.model !== model) {
      throw new IntegrityError(`alias file ${this.relative(model, alias)} is malformed`);
    }
    return result.data;
  }

  /** Every pointer of a model, deleted aliases included; damaged files are reported apart, not thrown. */
  async readPointers(
    model: string,
  ): Promise<{ pointers: Map<string, AliasHistoryEntry>; broken: { alias: string; problem: string }[] }> {
    const pointers = new Map<string, AliasHistoryEntry>();
    const broken: { alias: string; problem: string }[] = [];
    for (const entry of (await readdirIfExists(join(this.root, model, ALIASES_DIR))).sort()) {
      if (!entry.endsWith('.json')) continue; // e.g. temp files of an interrupted atomic write
      const alias = entry.slice(0, -'.json'.length);
      if (!isValidName(alias)) continue;
      try {
        const pointer = await this.readPointer(model, alias);
        if (pointer !== undefined) pointers.set(alias, pointer);
      } catch (error) {
        if (!(error instanceof IntegrityError)) throw error;
        broken.push({ alias, problem: error.message });
      }
    }
    return { pointers, broken };
  }

  /** Like {@link readPointers}, but a damaged file fails the whole read (for decisions that need every alias). */
  async readAllPointers(model: string): Promise<Map<string, AliasHistoryEntry>> {
    const { pointers, broken } = await this.readPointers(model);
    const first = broken[0];
    if (first !== undefined) {
      throw new IntegrityError(
        `${first.problem}; \`deit models repair ${model}\` restores it from the history`,
      );
    }
    return pointers;
  }

  async writePointer(model: string, entry: AliasHistoryEntry): Promise<void> {
    await mkdir(join(this.root, model, ALIASES_DIR), { recursive: true });
    await writeFileAtomic(this.path(model, entry.alias), JSON.stringify(entry, null, 2) + '\n');
  }

  /** Moves a damaged pointer out of the way (kept for inspection); readers then see the alias as unset. */
  async setAside(model: string, alias: string): Promise<void> {
    try {
      await rename(this.path(model, alias), `${this.path(model, alias)}${SET_ASIDE_INFIX}${randomSuffix()}`);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async readHistory(model: string): Promise<AliasHistoryEntry[]> {
    const text = (await readTextIfExists(join(this.root, model, HISTORY_FILE))) ?? '';
    const lines = text.split('\n');
    const entries: AliasHistoryEntry[] = [];
    lines.forEach((line, index) => {
      if (line.trim() === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (error) {
        // A torn last line is an append cut short by a crash; its change is recovered from the pointer file.
        if (index === lines.length - 1) return;
        throw new IntegrityError(`${model}/${HISTORY_FILE}: line ${index + 1} is not valid JSON`, {
          cause: error,
        });
      }
      const result = historyEntrySchema.safeParse(parsed);
      if (!result.success)
        throw new IntegrityError(`${model}/${HISTORY_FILE}: line ${index + 1} is malformed`);
      entries.push(result.data);
    });
    return entries;
  }

  async appendHistory(model: string, entry: AliasHistoryEntry): Promise<void> {
    const handle = await open(join(this.root, model, HISTORY_FILE), 'a+');
    try {
      // Cut a torn last line (an append interrupted by a crash) so that it does not end up mid-file; the
      // change it held is restored from its pointer file by reconciling history and pointers.
      const { size } = await handle.stat();
      if (size > 0) {
        const tailLength = Math.min(size, 64 * 1024);
        const tail = Buffer.alloc(tailLength);
        await handle.read(tail, 0, tailLength, size - tailLength);
        if (tail[tailLength - 1] !== 0x0a) {
          const lastNewline = tail.lastIndexOf(0x0a);
          await handle.truncate(lastNewline >= 0 ? size - tailLength + lastNewline + 1 : 0);
        }
      }
      await handle.appendFile(JSON.stringify(entry) + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/** The last recorded change of `alias`, which its pointer file must equal. */
export function lastChange(
  history: readonly AliasHistoryEntry[],
  alias: string,
): AliasHistoryEntry | undefined {
  for (let i = history.length - 1; i >= 0; i--) if (history[i]?.alias === alias) return history[i];
  return undefined;
}

/**
 * What a rollback of `alias` would restore: each move pushes the target it replaced, each rollback pops one,
 * so repeated rollbacks walk back through earlier targets. undefined: nothing to undo; null: it was unset.
 */
export function rollbackTarget(
  history: readonly AliasHistoryEntry[],
  alias: string,
): number | null | undefined {
  const stack: (number | null)[] = [];
  for (const entry of history) {
    if (entry.alias !== alias) continue;
    if (entry.action === 'rollback') stack.pop();
    else stack.push(entry.from);
  }
  return stack.length > 0 ? stack[stack.length - 1] : undefined;
}

export function isValidName(name: string): boolean {
  try {
    assertModelName(name);
    return true;
  } catch {
    return false;
  }
}
