import { describe, expect, it } from 'vitest';
import { DecodeAdmission } from '@deit-serve/preprocess';
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

describe('InferenceMetrics.observeDecoding', () => {
  it('shows running and waiting decodes per lane at each scrape', async () => {
    const metrics = new InferenceMetrics();
    const gate = new DecodeAdmission({ capacity: 10_000_000, largeSlots: 1 });
    metrics.observeDecoding(gate);
    const held = await gate.acquire(4_000_000);
    const waiting = gate.acquire(4_000_000);
    const small = await gate.acquire(784);
    const text = await metrics.registry.metrics();
    expect(text).toContain('deit_image_decodes{lane="large",state="active"} 1');
    expect(text).toContain('deit_image_decodes{lane="large",state="queued"} 1');
    expect(text).toContain('deit_image_decodes{lane="small",state="active"} 1');
    held();
    (await waiting)();
    small();
    expect(await metrics.registry.metrics()).toContain('deit_image_decodes{lane="large",state="active"} 0');
  });
});
