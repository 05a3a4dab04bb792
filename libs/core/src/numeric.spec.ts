import { describe, expect, it } from 'vitest';
import { maxAbsDiff } from './numeric';

describe('maxAbsDiff', () => {
  it('is the largest absolute difference, 0 for equal arrays', () => {
    expect(maxAbsDiff([1, 2, 3], new Float32Array([1, 2.5, 1]))).toBe(2);
    expect(maxAbsDiff([], [])).toBe(0);
  });

  it('is Infinity for different lengths or a NaN, so that no tolerance accepts them', () => {
    expect(maxAbsDiff([1], [1, 2])).toBe(Infinity);
    expect(maxAbsDiff([1, Number.NaN], [1, 2])).toBe(Infinity);
  });
});
