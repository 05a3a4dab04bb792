import { describe, expect, it } from 'vitest';
import type { Fallback } from './fallback';
import { InferenceMetrics } from './metrics';

const fallback: Fallback = {
  route: 'm',
  model: 'm',
  alias: 'production',
  wantedVersion: 3,
  servingVersion: 2,
  reason: 'corrupt',
};

describe('InferenceMetrics.setFallbacks', () => {
  it('shows exactly the current fallbacks and counts each new one once', async () => {
    const metrics = new InferenceMetrics();
    const gauge = async () => (await metrics.fallback.get()).values;
    const count = async () => (await metrics.fallbacks.get()).values.map((v) => v.value);

    metrics.setFallbacks([fallback]);
    metrics.setFallbacks([fallback, { ...fallback, route: 'm@production' }]); // same labels: one sample
    expect(await gauge()).toEqual([
      {
        labels: { model: 'm', alias: 'production', wanted_version: '3', serving_version: '2' },
        value: 1,
      },
    ]);
    expect(await count()).toEqual([1]);

    metrics.setFallbacks([{ ...fallback, wantedVersion: null }]);
    expect((await gauge()).map((v) => v.labels['wanted_version'])).toEqual(['unknown']);
    expect(await count()).toEqual([2]);

    metrics.setFallbacks([]);
    expect(await gauge()).toEqual([]);
  });
});
