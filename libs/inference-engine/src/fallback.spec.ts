import type { AliasHistoryEntry } from '@deit-serve/registry';
import { describe, expect, it } from 'vitest';
import { fallbackCandidates } from './fallback';

function entry(
  alias: string,
  action: AliasHistoryEntry['action'],
  from: number | null,
  to: number | null,
): AliasHistoryEntry {
  return { seq: 0, at: '', model: 'm', alias, action, from, to, actor: 't', reason: null };
}

describe('fallbackCandidates', () => {
  it('lists what the alias named, most recently named first, without the wanted version', () => {
    const history = [
      entry('production', 'set', null, 1),
      entry('staging', 'set', null, 7),
      entry('production', 'set', 1, 2),
      entry('production', 'set', 2, 3),
    ];
    expect(fallbackCandidates(history, 'production', 3)).toEqual([2, 1]);
  });

  it('after a rollback prefers the version rolled back to over the one undone', () => {
    const history = [
      entry('production', 'set', null, 1),
      entry('production', 'set', 1, 5),
      entry('production', 'rollback', 5, 3),
      entry('production', 'set', 3, 6),
    ];
    expect(fallbackCandidates(history, 'production', 6)).toEqual([3, 5, 1]);
  });

  it('has nothing for an alias that only ever named the wanted version', () => {
    expect(fallbackCandidates([entry('production', 'set', null, 4)], 'production', 4)).toEqual([]);
  });
});
