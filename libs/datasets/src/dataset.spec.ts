import { InvalidArgumentError } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import { datasetHash, packedDataset, sampleDataset, type ImageDataset } from './dataset';

const NAMES = ['a', 'b', 'c'];

/** `count` 2×2 grey images; image i has every pixel = i, label = labels[i]. */
function packed(labels: number[]): ImageDataset {
  const pixels = new Uint8Array(labels.length * 4);
  labels.forEach((_, i) => pixels.fill(i, i * 4, i * 4 + 4));
  return packedDataset({ pixels, labels, width: 2, height: 2, channels: 1 }, NAMES);
}

const ids = (d: ImageDataset): number[] => Array.from({ length: d.size }, (_, i) => d.get(i).pixels[0]);
const countLabels = (d: ImageDataset): number[] => {
  const counts = [0, 0, 0];
  for (let i = 0; i < d.size; i++) counts[d.labelOf(i)]++;
  return counts;
};

// 60 of class 0, 30 of class 1, 10 of class 2, interleaved.
const LABELS = Array.from({ length: 100 }, (_, i) => (i % 10 === 9 ? 2 : i % 3 === 0 ? 1 : 0));

describe('ImageDataset', () => {
  it('serves views of the packed buffer with their labels', () => {
    const d = packed([2, 0, 1]);
    expect(d).toMatchObject({ size: 3, numClasses: 3, labelNames: NAMES });
    expect(d.get(1)).toMatchObject({ width: 2, height: 2, channels: 1, label: 0 });
    expect([...d.get(2).pixels]).toEqual([2, 2, 2, 2]);
    expect(() => d.get(3)).toThrow(RangeError);
  });

  it('rejects inconsistent buffers and labels', () => {
    expect(() =>
      packedDataset({ pixels: new Uint8Array(7), labels: [0, 1], width: 2, height: 2, channels: 1 }, NAMES),
    ).toThrow(InvalidArgumentError);
    expect(() => packed([0, 3])).toThrow('packed images: label 3 at index 1 is outside [0, 3)');
    expect(() =>
      packedDataset({ pixels: new Uint8Array(0), labels: [], width: 1, height: 1, channels: 1 }, []),
    ).toThrow('a dataset needs at least one class');
    expect(() =>
      sampleDataset([{ pixels: new Uint8Array(5), width: 2, height: 2, channels: 1, label: 0 }], ['x']),
    ).toThrow('sample 0: 2×2×1 needs 4 bytes, got 5');
  });

  describe('split (stratified, seeded)', () => {
    const d = packed(LABELS);

    it('is the same for the same seed and different for another', () => {
      const a = d.split(0.2, 7);
      const b = d.split(0.2, 7);
      expect(ids(a.train)).toEqual(ids(b.train));
      expect(ids(a.validation)).toEqual(ids(b.validation));
      expect(ids(d.split(0.2, 8).validation)).not.toEqual(ids(a.validation));
    });

    it('partitions the dataset with round(fraction × count) of each class in validation', () => {
      const { train, validation } = d.split(0.2, 7);
      expect(countLabels(validation)).toEqual([12, 6, 2]);
      expect(countLabels(train)).toEqual([48, 24, 8]);
      const all = [...ids(train), ...ids(validation)].sort((x, y) => x - y);
      expect(all).toEqual(Array.from({ length: 100 }, (_, i) => i));
      // Both parts keep the parent's order.
      expect(ids(validation)).toEqual([...ids(validation)].sort((x, y) => x - y));
    });

    it('refuses fractions outside (0, 1) and splits that leave a part empty', () => {
      expect(() => d.split(0, 1)).toThrow(InvalidArgumentError);
      expect(() => d.split(1, 1)).toThrow(InvalidArgumentError);
      expect(() => packed([0, 1]).split(0.2, 1)).toThrow('leaves 2 for training and 0 for validation');
    });

    it('splits a subset by its own positions', () => {
      const limited = d.limit(50);
      const { validation } = limited.split(0.5, 3);
      // Classes of 30 / 15 / 5: round(7.5) = 8 and round(2.5) = 3 (Math.round, halves up).
      expect(countLabels(validation)).toEqual([15, 8, 3]);
      const allowed = new Set(ids(limited));
      for (const id of ids(validation)) expect(allowed.has(id)).toBe(true);
    });
  });

  describe('limit (stratified, no randomness)', () => {
    it('takes each class in proportion, its first images, in index order', () => {
      const limited = packed(LABELS).limit(10);
      expect(countLabels(limited)).toEqual([6, 3, 1]);
      expect(ids(limited)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      // Quotas 2.4 / 1.2 / 0.4: classes 0 and 2 tie on the remainder, the lower class wins.
      expect(ids(packed(LABELS).limit(4))).toEqual([0, 1, 2, 4]);
    });

    it('still yields every class on a dataset sorted class by class', () => {
      const sorted = packed([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
      expect(countLabels(sorted.limit(3))).toEqual([1, 1, 1]);
      // Remainders tie: the lower classes get the extra image.
      expect(countLabels(sorted.limit(5))).toEqual([2, 2, 1]);
    });

    it('returns the dataset itself when n ≥ size and refuses n < 1', () => {
      const d = packed([0, 1]);
      expect(d.limit(5)).toBe(d);
      expect(() => d.limit(0)).toThrow(InvalidArgumentError);
    });
  });

  it('datasetHash depends on pixels, labels, order and class names', () => {
    const base = datasetHash(packed([0, 1, 2]));
    expect(datasetHash(packed([0, 1, 2]))).toBe(base);
    expect(datasetHash(packed([0, 1, 1]))).not.toBe(base);
    expect(datasetHash(packed([0, 1, 2]).subset([1, 0, 2]))).not.toBe(base);
    const renamed = packedDataset(
      {
        pixels: new Uint8Array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]),
        labels: [0, 1, 2],
        width: 2,
        height: 2,
        channels: 1,
      },
      ['a', 'b', 'd'],
    );
    expect(datasetHash(renamed)).not.toBe(base);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
  });
});
