import { describe, expect, it } from 'vitest';
import { cosineLr, deitCosineSchedule, deitScaledLr, perStep } from './schedule';

describe('cosineLr (timm CosineLRScheduler, one cycle)', () => {
  const o = { baseLr: 1e-3, minLr: 1e-5, warmupLr: 1e-6, warmupT: 5, tInitial: 100 };

  it('warms up linearly from warmupLr', () => {
    expect(cosineLr(0, o)).toBeCloseTo(1e-6, 12);
    // 1e-6 + 2·(1e-3 − 1e-6)/5
    expect(cosineLr(2, o)).toBeCloseTo(4.006e-4, 12);
    expect(cosineLr(4.5, o)).toBeCloseTo(1e-6 + 4.5 * 1.998e-4, 12);
  });

  it('follows the cosine measured from t = 0 (warmup_prefix False), then holds minLr', () => {
    // t = 5: 1e-5 + 0.5·(9.9e-4)·(1 + cos(π·5/100)) = 1e-5 + 4.95e-4·1.987688
    expect(cosineLr(5, o)).toBeCloseTo(1e-5 + 4.95e-4 * (1 + Math.cos(Math.PI / 20)), 12);
    expect(cosineLr(50, o)).toBeCloseTo(1e-5 + 4.95e-4, 12); // half way: cos = 0
    expect(cosineLr(100, o)).toBe(1e-5);
    expect(cosineLr(109, o)).toBe(1e-5); // cool-down epochs
  });

  it('warmupPrefix restarts the cosine at the end of warm-up', () => {
    expect(cosineLr(5, { ...o, warmupPrefix: true })).toBeCloseTo(1e-3, 12);
    expect(cosineLr(55, { ...o, warmupPrefix: true })).toBeCloseTo(1e-5 + 4.95e-4, 12);
  });

  it('per step: the epoch schedule stretched by steps per epoch', () => {
    const steps = perStep(o, 10);
    expect(steps.warmupT).toBe(50);
    expect(steps.tInitial).toBe(1000);
    expect(cosineLr(20, steps)).toBeCloseTo(cosineLr(2, o), 12);
    expect(cosineLr(500, steps)).toBeCloseTo(cosineLr(50, o), 12);
    expect(() => perStep(o, 0)).toThrow();
  });

  it('DeiT defaults: lr 5e-4 × batch/512, 300 epochs, 5 warm-up from 1e-6, min 1e-5', () => {
    expect(deitScaledLr(1024)).toBeCloseTo(1e-3, 12);
    expect(deitCosineSchedule(512)).toEqual({
      baseLr: 5e-4,
      minLr: 1e-5,
      warmupLr: 1e-6,
      warmupT: 5,
      tInitial: 300,
      warmupPrefix: false,
    });
  });
});
