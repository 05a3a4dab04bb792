import { describe, expect, it } from 'vitest';
import { AccuracyCounter, argmax, inTopK } from './evaluate';

describe('accuracy', () => {
  const logits = new Float32Array([
    // image 0: class 2 best, class 0 second
    0.5, 0.1, 0.9, 0.2, 0.3, 0.0,
    // image 1: all equal (ties count for the label)
    1, 1, 1, 1, 1, 1,
  ]);

  it('ranks labels with ties in their favour', () => {
    expect(inTopK(logits, 0, 6, 2, 1)).toBe(true);
    expect(inTopK(logits, 0, 6, 0, 1)).toBe(false);
    expect(inTopK(logits, 0, 6, 0, 2)).toBe(true);
    expect(inTopK(logits, 6, 6, 5, 1)).toBe(true);
    expect(argmax(logits, 0, 6)).toBe(2);
  });

  it('counts top-1 and top-5, with k capped at the class count', () => {
    const counter = new AccuracyCounter(6);
    counter.add(logits.subarray(0, 6), [5]); // class 5 is last: outside the top 5 of 6
    counter.add(logits.subarray(0, 6), [0]);
    expect(counter.result()).toEqual({ top1: 0, top5: 0.5 });
    expect(new AccuracyCounter(3).k).toBe(3);
  });
});
