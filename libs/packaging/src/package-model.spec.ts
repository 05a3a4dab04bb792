import { decodeTensor } from '@deit-serve/registry';
import { deitOnnxWeightShapes, type DeitOnnxConfig } from '@deit-serve/model';
import { randomPixels, randomWeights, referenceDeitForward } from '@deit-serve/model/testing';
import { describe, expect, it } from 'vitest';
import { packageModel, type PackageRequest } from './package-model';

const config: DeitOnnxConfig = {
  embedDim: 8,
  depth: 1,
  numHeads: 2,
  mlpRatio: 2,
  patchSize: 4,
  imgSize: 8,
  numClasses: 3,
  distilled: true,
};
const weights = randomWeights(deitOnnxWeightShapes(config), 7);
const request = (overrides: Partial<PackageRequest> = {}): PackageRequest => ({
  spec: { architecture: 'deit', config },
  preset: 'test',
  weights,
  labels: ['a', 'b', 'c'],
  input: {
    image_size: 8,
    channels: 3,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    interpolation: 'bicubic',
    crop_pct: 1,
  },
  ...overrides,
});

describe('packageModel', () => {
  it('exports both heads and records a self-check computed by onnxruntime', async () => {
    const pkg = await packageModel(request());
    expect(pkg.outputs).toEqual({ cls: 'cls_logits', dist: 'dist_logits' });
    expect(pkg.labels).toEqual({ '0': 'a', '1': 'b', '2': 'c' });
    const check = pkg.self_check!;
    const input = decodeTensor(check.input);
    expect(input.shape).toEqual([1, 3, 8, 8]);
    const ref = referenceDeitForward(config, weights, input.data, 1);
    const cls = decodeTensor(check.expected['cls_logits']);
    for (let i = 0; i < 3; i++) expect(Math.abs(cls.data[i] - ref.cls[i])).toBeLessThan(1e-4);
  });

  it('refuses an export that does not reproduce the source framework', async () => {
    const sample = randomPixels(3 * 8 * 8, 3);
    const wrong = { cls_logits: new Float32Array([9, 9, 9]) };
    await expect(packageModel(request({ reference: { sample, outputs: wrong } }))).rejects.toThrow(
      /does not reproduce the source model: output cls_logits differs/,
    );
    const ref = referenceDeitForward(config, weights, sample, 1);
    const pkg = await packageModel(
      request({ reference: { sample, outputs: { cls_logits: Float32Array.from(ref.cls) } } }),
    );
    expect(pkg.files['model.onnx']).toBeInstanceOf(Uint8Array);
  });

  it('refuses a label set that does not match the class count', async () => {
    await expect(packageModel(request({ labels: ['a', 'b'] }))).rejects.toThrow(
      /2 labels for a model with 3 classes/,
    );
  });
});
