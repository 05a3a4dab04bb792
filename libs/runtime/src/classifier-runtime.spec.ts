import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deitOnnxWeightShapes,
  exportDeitOnnx,
  OnnxIoName,
  randomPixels,
  randomWeights,
  referenceDeitForward,
  type DeitOnnxConfig,
} from '../test/model-fixtures';
import { createClassifierExecute, type ClassifierSession } from './classifier-runtime';
import { DynamicBatcher } from './dynamic-batcher';
import { OnnxModelSession, type FloatTensor } from './onnx-session';

/**
 * A fake [B, 2, 2] → cls [B, 3], dist [B, 3] model whose logits encode each item's first pixel, so a
 * wrong concatenation or split shows up as a wrong value in a known place.
 */
function fakeSession(runs: number[][]): ClassifierSession {
  return {
    inputNames: ['x'],
    outputNames: ['cls', 'dist'],
    itemDims: () => [2, 2],
    run: (feeds: Readonly<Record<string, FloatTensor>>) => {
      const { data, dims } = feeds.x;
      const batch = dims[0];
      runs.push([...dims]);
      const cls = new Float32Array(batch * 3);
      const dist = new Float32Array(batch * 3);
      for (let b = 0; b < batch; b++) {
        const first = data[b * 4];
        cls.set([first, first + 1, first + 2], b * 3);
        dist.set([-first, -first - 1, -first - 2], b * 3);
      }
      return Promise.resolve({
        cls: { data: cls, dims: [batch, 3] },
        dist: { data: dist, dims: [batch, 3] },
      });
    },
  };
}

const item = (v: number): Float32Array => Float32Array.of(v, 0, 0, 0);

describe('createClassifierExecute', () => {
  it.each([1, 3, 8])('concatenates %i items into one run and splits both heads per item', async (n) => {
    const runs: number[][] = [];
    const execute = createClassifierExecute(fakeSession(runs), { cls: 'cls', dist: 'dist' });
    const values = Array.from({ length: n }, (_, i) => 10 * (i + 1));
    const out = await execute(values.map(item));
    expect(runs).toEqual([[n, 2, 2]]);
    expect(out.map((o) => [...o.cls])).toEqual(values.map((v) => [v, v + 1, v + 2]));
    expect(out.map((o) => [...o.dist!])).toEqual(values.map((v) => [-v, -v - 1, -v - 2]));
    // Copies, not views into the batch's buffer.
    for (const o of out) expect(o.cls.buffer.byteLength).toBe(3 * 4);
  });

  it('returns the CLS head alone when no DIST output is named', async () => {
    const execute = createClassifierExecute(fakeSession([]), { cls: 'cls' });
    const [out] = await execute([item(7)]);
    expect(out).toEqual({ cls: Float32Array.of(7, 8, 9) });
  });

  it('checks names up front and item sizes per batch', async () => {
    expect(() => createClassifierExecute(fakeSession([]), { cls: 'logits' })).toThrow(/no output "logits"/);
    const execute = createClassifierExecute(fakeSession([]), { cls: 'cls' });
    await expect(execute([item(1), new Float32Array(3)])).rejects.toMatchObject({
      kind: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/item 1 has 3 values/),
    });
    expect(await execute([])).toEqual([]);
  });
});

describe('classifier runtime on a real tiny DeiT behind the batcher', () => {
  const tiny: DeitOnnxConfig = {
    embedDim: 8,
    depth: 2,
    numHeads: 2,
    mlpRatio: 4,
    patchSize: 4,
    imgSize: 16,
    numClasses: 5,
    distilled: true,
  };
  const weights = randomWeights(deitOnnxWeightShapes(tiny), 21);
  let session: OnnxModelSession;
  beforeAll(async () => {
    session = await OnnxModelSession.create(exportDeitOnnx(tiny, weights), { intraOpThreads: 1 });
  });
  afterAll(() => session.release());

  it('gives every item the logits of its own image across mixed batch sizes', async () => {
    const sizes: number[] = [];
    const batcher = new DynamicBatcher({
      maxBatchSize: 4,
      maxQueueDelayMs: 5,
      maxQueueSize: 16,
      execute: createClassifierExecute(session, { cls: OnnxIoName.clsLogits, dist: OnnxIoName.distLogits }),
      onBatch: (s) => sizes.push(s.size),
    });
    const images = Array.from({ length: 7 }, (_, i) => randomPixels(3 * 16 * 16, 300 + i));
    const results = await Promise.all(images.map((img) => batcher.submit(img)));
    await batcher.close();
    expect(sizes).toEqual([4, 3]);
    images.forEach((img, i) => {
      const ref = referenceDeitForward(tiny, weights, img, 1);
      const { cls, dist } = results[i].result;
      for (let k = 0; k < 5; k++) {
        expect(Math.abs(cls[k] - ref.cls[k])).toBeLessThanOrEqual(1e-4);
        expect(Math.abs(dist![k] - ref.dist![k])).toBeLessThanOrEqual(1e-4);
      }
    });
  });
});
