import { describe, expect, it } from 'vitest';
import { decidePromotion, policyTop1 } from './promotion';

const SET = 'fashion-mnist/test/10000@0123456789ab';

describe('decidePromotion', () => {
  it('always moves an alias that points nowhere', () => {
    const outcome = decidePromotion(
      { alias: 'production', minImprovement: 0.5 },
      { version: 4, top1: 0.1 },
      undefined,
      SET,
    );
    expect(outcome.promoted).toBe(true);
    expect(outcome.reason).toMatch(/alias production pointed nowhere: moved to v4/);
  });

  it('moves when the gain reaches δ and says by how much', () => {
    const outcome = decidePromotion(
      { alias: 'production', minImprovement: 0.01 },
      { version: 4, top1: 0.9 },
      { version: 3, top1: 0.89, source: 'manifest' },
      SET,
    );
    expect(outcome).toEqual({
      promoted: true,
      reason:
        `v4 avg top-1 0.9000 vs v3 0.8900 (from its manifest) on ${SET}: improvement 0.0100 ≥ δ 0.01: ` +
        'moved production v3 → v4',
    });
  });

  it('keeps the alias when the gain is below δ, and promotes ties when δ is 0', () => {
    const incumbent = { version: 3, top1: 0.9, source: 'evaluated' } as const;
    const kept = decidePromotion(
      { alias: 'prod', minImprovement: 0.02 },
      { version: 4, top1: 0.91 },
      incumbent,
      SET,
    );
    expect(kept.promoted).toBe(false);
    expect(kept.reason).toMatch(/\(evaluated now\).*improvement 0\.0100 < δ 0\.02: prod stays at v3$/);
    expect(
      decidePromotion({ alias: 'prod', minImprovement: 0 }, { version: 4, top1: 0.9 }, incumbent, SET)
        .promoted,
    ).toBe(true);
    expect(
      decidePromotion({ alias: 'prod', minImprovement: 0 }, { version: 4, top1: 0.89 }, incumbent, SET)
        .promoted,
    ).toBe(false);
  });

  it('compares the average head, or CLS for a model with one head', () => {
    expect(policyTop1({ top1: { cls: 0.5, dist: 0.6, avg: 0.7 } })).toBe(0.7);
    expect(policyTop1({ top1: { cls: 0.5, dist: null, avg: null } })).toBe(0.5);
  });
});
