import { describe, expect, it } from 'vitest';
import { hostTensor, numel } from './named-weights';

describe('hostTensor', () => {
  it('accepts data whose length matches the shape', () => {
    const t = hostTensor([2, 3], new Float32Array(6));
    expect(t.shape).toEqual([2, 3]);
    expect(numel(t.shape)).toBe(6);
  });

  it('refuses data of the wrong length, naming the shape', () => {
    expect(() => hostTensor([2, 3], new Float32Array(5))).toThrow(/\[2, 3\] needs 6 values, got 5/);
  });
});
