import { describe, expect, it } from 'vitest';
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
function fakeSession(runs: number[][], buffers: ArrayBufferLike[] = []): ClassifierSession {
  return {
    inputNames: ['x'],
    outputNames: ['cls', 'dist'],
    itemDims: () => [2, 2],
    run: (feeds: Readonly<Record<string, FloatTensor>>) => {
      const { data, dims } = feeds.x;
      const batch = dims[0];
      runs.push([...dims]);
      buffers.push(data.buffer);
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

  it('takes items as little-endian float32 bytes at any offset, as from the wire', async () => {
    const execute = createClassifierExecute(fakeSession([]), { cls: 'cls', dist: 'dist' });
    const wire = new Uint8Array(1 + 16);
    wire.set(new Uint8Array(item(5).buffer), 1); // starts at an odd offset: no Float32Array view possible
    const [fromBytes, fromValues] = await execute([wire.subarray(1), item(6)]);
    expect([...fromBytes.cls]).toEqual([5, 6, 7]);
    expect([...fromValues.cls]).toEqual([6, 7, 8]);
    await expect(execute([wire.subarray(1, 13)])).rejects.toMatchObject({
      kind: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/item 0 has 3 values/),
    });
  });

  it('reuses one batch buffer from batch to batch, sized for the largest batch', async () => {
    const buffers: ArrayBufferLike[] = [];
    const execute = createClassifierExecute(
      fakeSession([], buffers),
      { cls: 'cls', dist: 'dist' },
      { maxBatchSize: 4 },
    );
    await execute([item(1)]);
    await execute([item(1), item(2), item(3), item(4)]);
    const [out] = await execute([item(9)]); // a stale item from the bigger batch must not leak in
    expect([...out.cls]).toEqual([9, 10, 11]);
    expect(new Set(buffers).size).toBe(1);
    expect(buffers[0]).toBeInstanceOf(SharedArrayBuffer); // shared with a worker-thread session, not copied
    expect(buffers[0].byteLength).toBe(4 * 4 * 4);
    // A batch over the size gets a buffer of its own and leaves the pooled one alone.
    const big = await execute(Array.from({ length: 5 }, (_, i) => item(i)));
    expect(big.map((o) => o.cls[0])).toEqual([0, 1, 2, 3, 4]);
    await execute([item(1)]);
    expect(buffers.at(-1)).toBe(buffers[0]);
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

  it.each(['main', 'worker'] as const)(
    'gives every item the logits of its own image across mixed batch sizes (%s thread)',
    async (thread) => {
      const session = await OnnxModelSession.create(exportDeitOnnx(tiny, weights), {
        intraOpThreads: 1,
        thread,
      });
      try {
        const sizes: number[] = [];
        const batcher = new DynamicBatcher({
          maxBatchSize: 4,
          maxQueueDelayMs: 5,
          maxQueueSize: 16,
          execute: createClassifierExecute(
            session,
            { cls: OnnxIoName.clsLogits, dist: OnnxIoName.distLogits },
            { maxBatchSize: 4 },
          ),
          onBatch: (s) => sizes.push(s.size),
        });
        const images = Array.from({ length: 7 }, (_, i) => randomPixels(3 * 16 * 16, 300 + i));
        // Odd items travel as unaligned little-endian bytes, the way tensor requests arrive.
        const asBytes = (img: Float32Array) => {
          const wire = new Uint8Array(3 + img.byteLength);
          wire.set(new Uint8Array(img.buffer), 3);
          return wire.subarray(3);
        };
        const first = await Promise.all(images.map((img, i) => batcher.submit(i % 2 ? asBytes(img) : img)));
        const again = await batcher.submit(images[6]); // a batch of one in the reused buffer
        await batcher.close();
        expect(sizes).toEqual([4, 3, 1]);
        [...first, again].forEach((res, i) => {
          const ref = referenceDeitForward(tiny, weights, images[i === 7 ? 6 : i], 1);
          const { cls, dist } = res.result;
          for (let k = 0; k < 5; k++) {
            expect(Math.abs(cls[k] - ref.cls[k])).toBeLessThanOrEqual(1e-4);
            expect(Math.abs(dist![k] - ref.dist![k])).toBeLessThanOrEqual(1e-4);
          }
        });
      } finally {
        await session.release();
      }
    },
  );
});
