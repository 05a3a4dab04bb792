import { describe, expect, it } from 'vitest';
import type { NamedWeights } from './named-weights';
import { checkWeights, findWeightMismatches, WeightMismatchError } from './validate';

const t = (...shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

const expected = new Map<string, number[]>([
  ['cls_token', [1, 1, 8]],
  ['pos_embed', [1, 18, 8]],
  ['head.weight', [5, 8]],
  ['head.bias', [5]],
]);

describe('checkWeights', () => {
  it('accepts exactly matching weights', () => {
    const weights: NamedWeights = new Map([
      ['head.bias', t(5)],
      ['cls_token', t(1, 1, 8)],
      ['pos_embed', t(1, 18, 8)],
      ['head.weight', t(5, 8)],
    ]);
    expect(() => checkWeights(weights, expected)).not.toThrow();
    expect(findWeightMismatches(weights, expected)).toEqual({ missing: [], unexpected: [], misshaped: [] });
  });

  it('lists every missing, unexpected and mis-shaped key in one error', () => {
    const weights: NamedWeights = new Map([
      ['cls_token', t(1, 1, 8)],
      ['pos_embed', t(1, 17, 8)],
      ['head.weight', t(8, 5)],
      ['head_dist.weight', t(5, 8)],
      ['model.norm.bias', t(8)],
    ]);
    let error: unknown;
    try {
      checkWeights(weights, expected, 'deit.safetensors');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WeightMismatchError);
    const m = error as WeightMismatchError;
    expect(m.missing).toEqual(['head.bias']);
    expect(m.unexpected).toEqual(['head_dist.weight', 'model.norm.bias']);
    expect(m.misshaped).toEqual([
      { name: 'pos_embed', expected: [1, 18, 8], actual: [1, 17, 8] },
      { name: 'head.weight', expected: [5, 8], actual: [8, 5] },
    ]);
    expect(m.message).toBe(
      [
        'deit.safetensors: weights do not match the model (1 missing, 2 unexpected, 2 mis-shaped)',
        '  missing:     head.bias',
        '  unexpected:  head_dist.weight',
        '  unexpected:  model.norm.bias',
        '  mis-shaped:  pos_embed expected [1, 18, 8], got [1, 17, 8]',
        '  mis-shaped:  head.weight expected [5, 8], got [8, 5]',
      ].join('\n'),
    );
  });

  it('treats a rank difference as a mis-shape', () => {
    const weights: NamedWeights = new Map([
      ['cls_token', t(8)],
      ['pos_embed', t(1, 18, 8)],
      ['head.weight', t(5, 8)],
      ['head.bias', t(5)],
    ]);
    expect(() => checkWeights(weights, expected)).toThrow(/cls_token expected \[1, 1, 8\], got \[8\]/);
  });
});
