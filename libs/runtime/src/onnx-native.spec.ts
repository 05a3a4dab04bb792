import { maxAbsDiff } from '@deit-serve/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deitOnnxWeightShapes,
  exportDeitOnnx,
  OnnxIoName,
  randomPixels,
  randomWeights,
  type DeitOnnxConfig,
} from '../test/model-fixtures';
import { InProcessSession } from './onnx-native';

const tiny: DeitOnnxConfig = {
  embedDim: 8,
  depth: 1,
  numHeads: 2,
  mlpRatio: 2,
  patchSize: 4,
  imgSize: 8,
  numClasses: 3,
  distilled: true,
};
const ITEM = 3 * 8 * 8;

/** A batch of `n` items in shared memory, as the batcher hands it over. */
function sharedBatch(n: number, seed: number): Float32Array {
  const data = new Float32Array(new SharedArrayBuffer(n * ITEM * 4));
  data.set(randomPixels(n * ITEM, seed));
  return data;
}

describe('InProcessSession staging of shared-memory feeds', () => {
  let session: InProcessSession;
  beforeAll(async () => {
    const bytes = exportDeitOnnx(tiny, randomWeights(deitOnnxWeightShapes(tiny), 5), { preset: 'tiny_test' });
    session = await InProcessSession.create(bytes, { intraOpNumThreads: 1, enableMemPattern: false });
  });
  afterAll(() => session.release());

  const run = (data: Float32Array) =>
    session.run({ [OnnxIoName.pixelValues]: { data, dims: [data.length / ITEM, 3, 8, 8] } });

  it('keeps at most two buffers, each as large as the largest batch so far, whatever the order of batch sizes', async () => {
    for (const n of [1, 3, 2, 1, 3, 2, 4, 1, 2]) await run(sharedBatch(n, n));
    expect(session.stagingSizes(OnnxIoName.pixelValues)).toEqual([4 * ITEM * 4]);
    // Two runs in flight need two buffers; afterwards both are kept, both at the largest size.
    await Promise.all([run(sharedBatch(2, 7)), run(sharedBatch(1, 8))]);
    expect(session.stagingSizes(OnnxIoName.pixelValues)).toEqual([4 * ITEM * 4, 4 * ITEM * 4]);
    // A larger batch raises the size: the outgrown buffers are freed, not kept.
    await Promise.all([run(sharedBatch(1, 9)), run(sharedBatch(1, 10)), run(sharedBatch(5, 11))]);
    expect(session.stagingSizes(OnnxIoName.pixelValues)).toEqual([5 * ITEM * 4]);
  });

  it('answers a small batch staged in a larger buffer exactly as from its own buffer', async () => {
    const shared = sharedBatch(2, 21);
    const staged = await run(shared);
    const plain = await run(new Float32Array(shared));
    for (const name of [OnnxIoName.clsLogits, OnnxIoName.distLogits]) {
      expect(staged[name].dims).toEqual([2, 3]);
      expect(maxAbsDiff(staged[name].data as Float32Array, plain[name].data as Float32Array)).toBe(0);
    }
  });
});
