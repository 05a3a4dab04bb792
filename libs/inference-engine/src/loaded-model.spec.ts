import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deitOnnxWeightShapes } from '@deit-serve/model';
import { randomWeights } from '@deit-serve/model/testing';
import { packageAndPublish } from '@deit-serve/packaging';
import { DirectoryRegistry } from '@deit-serve/registry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadedModel } from './loaded-model';

const TINY = {
  embedDim: 8,
  depth: 1,
  numHeads: 2,
  mlpRatio: 2,
  patchSize: 4,
  imgSize: 8,
  numClasses: 3,
  distilled: true,
};

let root: string;
let registry: DirectoryRegistry;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'loaded-model-'));
  registry = await DirectoryRegistry.open(join(root, 'registry'), { create: true });
  await packageAndPublish(registry, 'tiny', {
    spec: { architecture: 'deit', config: TINY },
    preset: 'deit_tiny_distilled_patch16_224',
    weights: randomWeights(deitOnnxWeightShapes(TINY), 3, 0.05),
    labels: ['a', 'b', 'c'],
    input: {
      image_size: 8,
      channels: 3,
      mean: [0.5, 0.5, 0.5],
      std: [0.5, 0.5, 0.5],
      interpolation: 'bilinear',
      crop_pct: 1,
    },
  });
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('LoadedModel.load', () => {
  it.each(['main', 'worker'] as const)(
    'takes the model bytes and frees them once onnxruntime holds its own copy (%s thread)',
    async (onnxThread) => {
      const version = await registry.loadVersion('tiny:1');
      const bytes = version.files.get('model.onnx');
      expect(bytes?.byteLength).toBeGreaterThan(0);
      const model = await LoadedModel.load(version, {
        executionProvider: 'cpu',
        intraOpThreads: 1,
        onnxThread,
        batching: { maxBatchSize: 2, maxQueueDelayMs: 0, maxQueueSize: 4 },
        logger: { log: () => undefined, warn: () => undefined },
      });
      try {
        expect(version.files.has('model.onnx')).toBe(false);
        expect(bytes?.buffer.byteLength).toBe(0); // detached: its memory went back at once
        // The model serves all the same.
        const { result } = await model.batcher.submit(new Float32Array(3 * 8 * 8));
        expect(result.cls).toHaveLength(3);
      } finally {
        await model.retire();
      }
    },
  );
});
