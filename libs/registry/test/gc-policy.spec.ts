import { describe, expect, it } from 'vitest';
import type { AliasHistoryEntry } from '../src/index';
import { protectedVersions, retentionPlan } from '../src/directory/gc';

function change(seq: number, alias: string, from: number | null, to: number | null): AliasHistoryEntry {
  const action = to === null ? 'delete' : 'set';
  return { seq, at: '2026-01-01T00:00:00Z', model: 'm', alias, action, from, to, actor: 't', reason: null };
}

describe('retentionPlan', () => {
  it('keeps the newest keepLast whatever the order given, removes the rest unless protected', () => {
    const reasons = new Map([[2, ['alias production']]]);
    expect(retentionPlan([3, 1, 5, 2, 4], 2, reasons)).toEqual({
      remove: [3, 1],
      protected: [{ version: 2, reason: 'alias production' }],
    });
  });

  it('removes nothing when there are no more versions than keepLast', () => {
    expect(retentionPlan([1, 2], 5, new Map())).toEqual({ remove: [], protected: [] });
  });

  it('joins several reasons for one version', () => {
    const reasons = new Map([[1, ['alias a', 'rollback target of b']]]);
    expect(retentionPlan([1, 2], 1, reasons).protected).toEqual([
      { version: 1, reason: 'alias a, rollback target of b' },
    ]);
  });
});

describe('protectedVersions', () => {
  it("protects each alias's target and the version its rollback would restore, not a deleted alias's", () => {
    const history = [change(1, 'prod', null, 1), change(2, 'prod', 1, 3), change(3, 'old', null, 2)];
    const deleted = change(4, 'old', 2, null);
    const pointers = new Map([
      ['prod', history[1]],
      ['old', deleted],
    ]);
    expect(protectedVersions(pointers, [...history, deleted])).toEqual(
      new Map([
        [3, ['alias prod']],
        [1, ['rollback target of prod']],
        [2, ['rollback target of old']],
      ]),
    );
  });
});
