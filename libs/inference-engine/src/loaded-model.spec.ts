import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryRegistry } from '@deit-serve/registry';
import { publishTinyDeit, TINY_DEIT } from '@deit-serve/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadedModel } from './loaded-model';

let root: string;
let registry: DirectoryRegistry;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'loaded-model-'));
  registry = await DirectoryRegistry.open(join(root, 'registry'), { create: true });
  await publishTinyDeit(registry, 'tiny');
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
        const { result } = await model.batcher.submit(new Float32Array(3 * TINY_DEIT.imgSize ** 2));
        expect(result.cls).toHaveLength(TINY_DEIT.numClasses);
      } finally {
        await model.retire();
      }
    },
  );
});
