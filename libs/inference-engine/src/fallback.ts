import type { AliasHistoryEntry } from '@deit-serve/registry';

/** A route serving another version than its alias names, because that version cannot be served. */
export interface Fallback {
  /** The reference as requests spell it (`name`, `name@alias`). */
  route: string;
  model: string;
  alias: string;
  /** What the alias names now; null when it cannot be resolved (damaged file, missing version). */
  wantedVersion: number | null;
  servingVersion: number;
  /** Why the wanted version is not served (its load error). */
  reason: string;
}

/**
 * Versions to serve when the one `alias` names cannot be: every version its history named, most recently
 * named first, so that the first one that loads is what the alias served last (the newest, for an alias
 * that only moved forward; after a rollback, the version rolled back to rather than the one undone).
 */
export function fallbackCandidates(
  history: readonly AliasHistoryEntry[],
  alias: string,
  wanted: number | null,
): number[] {
  const candidates: number[] = [];
  for (let i = history.length - 1; i >= 0; i--) {
    const entry = history[i];
    if (entry?.alias !== alias) continue;
    for (const version of [entry.to, entry.from]) {
      if (version !== null && version !== wanted && !candidates.includes(version)) candidates.push(version);
    }
  }
  return candidates;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
