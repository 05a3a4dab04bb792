import { deitOnnxWeightShapes, type DeitOnnxConfig } from '@deit-serve/model';
import { randomWeights } from '@deit-serve/model/testing';
import { packageAndPublish } from '@deit-serve/packaging';
import type { ModelRegistry, VersionInfo } from '@deit-serve/registry';

/** A distilled DeiT small enough for tests: 16×16 RGB input, patch 4, D 8, 2 blocks, 4 classes. */
export const TINY_DEIT: DeitOnnxConfig = {
  embedDim: 8,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
  patchSize: 4,
  imgSize: 16,
  numClasses: 4,
  distilled: true,
};

export const TINY_LABELS = ['cat', 'dog', 'bird', 'fish'];

/** Publishes a random-weight tiny DeiT; different seeds give different versions' outputs. */
export async function publishTinyDeit(
  registry: ModelRegistry,
  name: string,
  options: { seed?: number; config?: Partial<DeitOnnxConfig>; labels?: string[] } = {},
): Promise<VersionInfo> {
  const config = { ...TINY_DEIT, ...options.config };
  return packageAndPublish(registry, name, {
    spec: { architecture: 'deit', config },
    preset: 'test_tiny',
    weights: randomWeights(deitOnnxWeightShapes(config), options.seed ?? 1),
    labels: options.labels ?? TINY_LABELS.slice(0, config.numClasses),
    input: {
      image_size: config.imgSize,
      channels: 3,
      mean: [0.5, 0.5, 0.5],
      std: [0.25, 0.25, 0.25],
      interpolation: 'bicubic',
      crop_pct: 1,
    },
    lineage: { hyperparameters: { seed: options.seed ?? 1, note: 'random weights (test fixture)' } },
  });
}
