import { availableParallelism } from 'node:os';
import { DEIT_PRESETS } from '@deit-serve/model';
import { describe, expect, it } from 'vitest';
import { defaultMicroBatch, plannedWorkers } from './student-trainer';

describe('defaultMicroBatch', () => {
  it('matches the measured wasm-heap budget: 16 rows of DeiT-Ti at 32 px', () => {
    expect(defaultMicroBatch(DEIT_PRESETS.deit_tiny_distilled_patch4_32, 64)).toBe(16);
  });

  it('allows twice the rows on native TensorFlow: 32 rows of DeiT-Ti, measured at 1.83 GiB peak RSS', () => {
    expect(defaultMicroBatch(DEIT_PRESETS.deit_tiny_distilled_patch4_32, 64, 'tensorflow')).toBe(32);
    expect(defaultMicroBatch(DEIT_PRESETS.deit_tiny_distilled_patch4_32, 64, 'wasm')).toBe(16);
  });

  it('takes the whole slice of a small model, and at least one row of a big one', () => {
    expect(defaultMicroBatch(DEIT_PRESETS.deit_pico_distilled_patch4_28, 32)).toBe(32);
    expect(defaultMicroBatch(DEIT_PRESETS.deit_base_distilled_patch16_384, 64)).toBe(1);
  });
});

describe('plannedWorkers', () => {
  it('goes data-parallel on wasm only, never wider than the batch', () => {
    expect(plannedWorkers('local', 'wasm', 64)).toBe(1);
    expect(plannedWorkers('auto', 'tensorflow', 64)).toBe(1);
    expect(plannedWorkers('auto', 'wasm', 64)).toBe(Math.min(availableParallelism(), 64));
    expect(plannedWorkers({ workers: 4 }, 'wasm', 3)).toBe(3);
  });
});
