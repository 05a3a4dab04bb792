import { describe, expect, it } from 'vitest';
import { AVERAGE_HEAD_WEIGHT, averageHeads, headLogits } from './heads';

describe('heads', () => {
  const cls = new Float32Array([2, 1, 0]);
  const dist = new Float32Array([0, 3, 1]);

  it('average is the mean of the logits, not of the probabilities', () => {
    expect(AVERAGE_HEAD_WEIGHT).toBe(0.5);
    expect(Array.from(averageHeads(cls, dist))).toEqual([1, 2, 0.5]);
    expect(Array.from(headLogits('average', cls, dist))).toEqual([1, 2, 0.5]);
  });

  it('rounds the average once to float32, as (cls + dist) / 2', () => {
    const a = Float32Array.from([0.1, 1e30, -3.3e-7, 16777217]);
    const b = Float32Array.from([0.2, 3e30, 7.1e-7, 1]);
    const expected = Float32Array.from(a, (v, i) => (v + b[i]) / 2);
    expect(averageHeads(a, b)).toEqual(expected);
  });

  it('returns the chosen head itself, and cls for average without a distillation head', () => {
    expect(headLogits('cls', cls, dist)).toBe(cls);
    expect(headLogits('dist', cls, dist)).toBe(dist);
    expect(headLogits('average', cls, undefined)).toBe(cls);
    expect(() => headLogits('dist', cls, undefined)).toThrow(/no distillation head/);
  });

  it('refuses heads of different lengths', () => {
    expect(() => averageHeads(cls, new Float32Array(2))).toThrow(RangeError);
  });
});
