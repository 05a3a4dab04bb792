import { describe, expect, it } from 'vitest';
import { labelMismatch, teacherOutputs } from './sources';

describe('labelMismatch', () => {
  it('is undefined for equal label lists', () => {
    expect(labelMismatch(['a', 'b'], ['a', 'b'])).toBeUndefined();
  });

  it('names the counts, or the first class that differs', () => {
    expect(labelMismatch(['a', 'b'], ['a', 'b', 'c'])).toBe(
      '2 classes ("a", "b") vs 3 classes ("a", "b", "c")',
    );
    expect(labelMismatch(['a', 'b', 'c'], ['a', 'x', 'c'])).toBe('class 1 is "b" vs "x"');
  });
});

describe('teacherOutputs', () => {
  it('picks logits, both DeiT heads, or a sole output', () => {
    expect(teacherOutputs(['features', 'logits'])).toEqual(['logits']);
    expect(teacherOutputs(['cls_logits', 'dist_logits'])).toEqual(['cls_logits', 'dist_logits']);
    expect(teacherOutputs(['output'])).toEqual(['output']);
    expect(() => teacherOutputs(['a', 'b'])).toThrow(
      /cannot tell which output holds the logits \(outputs: a, b\)/,
    );
  });
});
