import { InvalidArgumentError } from '@deit-serve/core';
import { preprocess } from '@deit-serve/preprocess';
import { describe, expect, it } from 'vitest';
import type { AugmentOptions } from './augment';
import { batchCount, evalBatches, trainBatches, type BatchInputSpec, type TrainBatch } from './batches';
import { packedDataset, sampleDataset, type ImageDataset } from './dataset';

const NAMES = Array.from({ length: 10 }, (_, i) => `class${i}`);
const SPEC: BatchInputSpec = { imageSize: 8, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** `count` 8×8 grey images with varied pixels; labels cycle through 10 classes. */
function greyDataset(count: number, size = 8): ImageDataset {
  const pixels = Uint8Array.from({ length: count * size * size }, (_, i) => (i * 31 + (i >> 6) * 7) % 256);
  const labels = Array.from({ length: count }, (_, i) => i % 10);
  return packedDataset({ pixels, labels, width: size, height: size, channels: 1 }, NAMES);
}

const FULL: AugmentOptions = {
  crop: { kind: 'random-resized' },
  hflip: 0.5,
  randomErasing: { probability: 0.5 },
  mixup: { mixupAlpha: 0.8, cutmixAlpha: 1 },
  labelSmoothing: 0.1,
};

const epoch = (dataset: ImageDataset, e: number, seed = 1, augment = FULL): TrainBatch[] => [
  ...trainBatches(dataset, { batchSize: 16, seed, epoch: e, inputSpec: SPEC, augment }),
];

/** torch's float32 chain for one byte. */
function torchNormalise(v: number, mean: number, std: number): number {
  const f = Math.fround;
  return f(f(f(v / 255) - f(mean)) / f(std));
}

describe('trainBatches', () => {
  const data = greyDataset(50);

  it('is identical for the same (seed, epoch) and visits every image once per epoch', () => {
    const a = epoch(data, 3);
    const b = epoch(data, 3);
    expect(a.map((x) => x.size)).toEqual([16, 16, 16, 2]);
    for (let i = 0; i < a.length; i++) {
      expect(b[i].indices).toEqual(a[i].indices);
      expect(b[i].pixels).toEqual(a[i].pixels);
      expect(b[i].targets).toEqual(a[i].targets);
      expect(b[i].mix).toEqual(a[i].mix);
    }
    const seen = a.flatMap((x) => [...x.indices]).sort((p, q) => p - q);
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
    for (const x of a) expect([...x.labels]).toEqual([...x.indices].map((i) => data.labelOf(i)));
  });

  it('changes order and augmentation with the epoch and the seed', () => {
    const base = epoch(data, 0)[0];
    expect(epoch(data, 1)[0].indices).not.toEqual(base.indices);
    expect(epoch(data, 0, 2)[0].indices).not.toEqual(base.indices);
  });

  it('resumes mid-epoch: startBatch yields exactly the remaining batches', () => {
    const all = epoch(data, 2);
    const rest = [
      ...trainBatches(data, {
        batchSize: 16,
        seed: 1,
        epoch: 2,
        inputSpec: SPEC,
        augment: FULL,
        startBatch: 2,
      }),
    ];
    expect(rest.map((x) => x.index)).toEqual([2, 3]);
    expect(rest[0].pixels).toEqual(all[2].pixels);
    expect(rest[1].targets).toEqual(all[3].targets);
  });

  it('produces [B, 3, S, S] pixels and [B, C] soft targets that sum to 1', () => {
    for (const batch of epoch(data, 0)) {
      expect(batch.dims).toEqual([batch.size, 3, 8, 8]);
      expect(batch.pixels).toHaveLength(batch.size * 3 * 64);
      expect(batch.targets).toHaveLength(batch.size * 10);
      for (let i = 0; i < batch.size; i++) {
        const row = batch.targets!.subarray(i * 10, i * 10 + 10);
        expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
      }
    }
    const plain = epoch(data, 0, 1, {});
    expect(plain[0].targets).toBeUndefined();
    expect(plain[0].mix).toEqual({ kind: 'none', lambda: 1 });
  });

  it('normalises exactly (torch float32) and replicates grey to three channels', () => {
    const constant = packedDataset(
      { pixels: new Uint8Array(4 * 64).fill(77), labels: [0, 1, 2, 3], width: 8, height: 8, channels: 1 },
      NAMES,
    );
    // Crops and flips of a constant image are the same constant.
    const augment: AugmentOptions = { crop: { kind: 'random-resized' }, hflip: 0.5 };
    const [batch] = [
      ...trainBatches(constant, { batchSize: 4, seed: 0, epoch: 0, inputSpec: SPEC, augment }),
    ];
    for (let c = 0; c < 3; c++) {
      const expected = torchNormalise(77, SPEC.mean[c], SPEC.std[c]);
      for (let i = 0; i < 4; i++) {
        const plane = batch.pixels.subarray((i * 3 + c) * 64, (i * 3 + c + 1) * 64);
        expect(new Set(plane)).toEqual(new Set([expected]));
      }
    }
  });

  it('resamples native images to the input size, and accepts one mean/std for all channels', () => {
    const big = greyDataset(4, 20);
    const spec = { imageSize: 12, mean: [0.5], std: [0.5] };
    const [batch] = [...trainBatches(big, { batchSize: 4, seed: 0, epoch: 0, inputSpec: spec })];
    expect(batch.dims).toEqual([4, 3, 12, 12]);
    for (const v of batch.pixels) {
      expect(v).toBeGreaterThanOrEqual(-1);
      expect(v).toBeLessThanOrEqual(1);
    }
  });

  it('drops the last partial batch only when asked', () => {
    expect(batchCount(50, 16)).toBe(4);
    expect(batchCount(50, 16, true)).toBe(3);
    const dropped = [
      ...trainBatches(data, { batchSize: 16, seed: 0, epoch: 0, inputSpec: SPEC, dropLast: true }),
    ];
    expect(dropped.map((x) => x.size)).toEqual([16, 16, 16]);
  });

  it('checks its options when called, before the first batch', () => {
    expect(() => trainBatches(data, { batchSize: 0, seed: 0, epoch: 0, inputSpec: SPEC })).toThrow(
      InvalidArgumentError,
    );
    expect(() =>
      trainBatches(data, {
        batchSize: 4,
        seed: 0,
        epoch: 0,
        inputSpec: { imageSize: 8, mean: [0, 0], std: [1, 0, 1] },
      }),
    ).toThrow(/mean must have 1 or 3 entries.*std entries must be finite and > 0/);
    expect(() =>
      trainBatches(data, { batchSize: 4, seed: 0, epoch: 0, inputSpec: SPEC, augment: { hflip: -1 } }),
    ).toThrow('hflip');
    expect(() => trainBatches(data, { batchSize: 4, seed: -1, epoch: 0, inputSpec: SPEC })).toThrow('seed');
    expect(() =>
      trainBatches(data, { batchSize: 4, seed: 0, epoch: 0, inputSpec: SPEC, startBatch: 99 }),
    ).toThrow('startBatch');
  });
});

describe('evalBatches', () => {
  it('keeps dataset order, does not augment, and normalises exactly', () => {
    const data = greyDataset(10);
    const batches = [...evalBatches(data, { batchSize: 4, inputSpec: SPEC })];
    expect(batches.map((b) => b.size)).toEqual([4, 4, 2]);
    expect(batches.flatMap((b) => [...b.indices])).toEqual(Array.from({ length: 10 }, (_, i) => i));
    const sample = data.get(5);
    const b = batches[1];
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 64; p++) {
        expect(b.pixels[(1 * 3 + c) * 64 + p]).toBe(
          torchNormalise(sample.pixels[p], SPEC.mean[c], SPEC.std[c]),
        );
      }
    }
  });

  it('applies the model eval transform when the spec carries interpolation and cropPct', () => {
    const rgb = Uint8Array.from({ length: 20 * 14 * 3 }, (_, i) => (i * 13) % 251);
    const data = sampleDataset([{ pixels: rgb, width: 20, height: 14, channels: 3, label: 1 }], NAMES);
    const spec = { ...SPEC, interpolation: 'bicubic' as const, cropPct: 0.875 };
    const [batch] = [...evalBatches(data, { batchSize: 2, inputSpec: spec })];
    const expected = preprocess(
      { data: rgb, width: 20, height: 14 },
      {
        ...spec,
        mean: [...spec.mean],
        std: [...spec.std],
        channels: 3,
      },
    );
    expect(batch.pixels).toEqual(expected);
    expect(() => [...evalBatches(data, { batchSize: 2, inputSpec: { ...SPEC, cropPct: 0.9 } })]).toThrow(
      'interpolation and cropPct go together',
    );
  });
});
