import { DomainError, maxAbsDiff } from '@deit-serve/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  deitOnnxWeightShapes,
  exportDeitOnnx,
  OnnxIoName,
  randomPixels,
  randomWeights,
  referenceDeitForward,
  type DeitOnnxConfig,
} from '../test/model-fixtures';
import { OnnxModelSession } from './onnx-session';
import { releaseNow } from './release-now';

const TOLERANCE = 1e-4;
// One thread: the machine's cores are shared with other test runs.
const THREADS = 1;

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
const weights = randomWeights(deitOnnxWeightShapes(tiny), 11);
const bytes = exportDeitOnnx(tiny, weights, { preset: 'tiny_test' });
const ITEM = 3 * 16 * 16;

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof DomainError ? e.kind : `non-domain: ${String(e)}`;
  }
}

const THREADS_UNDER_TEST = ['main', 'worker'] as const;

describe.each(THREADS_UNDER_TEST)('OnnxModelSession on the %s thread', (thread) => {
  let session: OnnxModelSession;
  beforeAll(async () => {
    session = await OnnxModelSession.create(bytes, { intraOpThreads: THREADS, thread });
  });
  afterAll(() => session.release());

  it('describes the graph: names, declared shapes, static item dims, provider', () => {
    expect(session.executionProvider).toBe('cpu');
    expect(session.inputNames).toEqual([OnnxIoName.pixelValues]);
    expect(session.outputNames).toEqual([OnnxIoName.clsLogits, OnnxIoName.distLogits]);
    expect(session.inputs).toEqual([
      { name: OnnxIoName.pixelValues, type: 'float32', shape: ['batch', 3, 16, 16] },
    ]);
    expect(session.itemDims()).toEqual([3, 16, 16]);
    expect(session.itemDims(OnnxIoName.pixelValues)).toEqual([3, 16, 16]);
  });

  it.each([1, 8])('matches the Float64 reference forward at batch %i', async (batch) => {
    const pixels = randomPixels(batch * ITEM, 200 + batch);
    const out = await session.run({ [OnnxIoName.pixelValues]: { data: pixels, dims: [batch, 3, 16, 16] } });
    const ref = referenceDeitForward(tiny, weights, pixels, batch);
    expect(out[OnnxIoName.clsLogits].dims).toEqual([batch, 5]);
    expect(out[OnnxIoName.distLogits].dims).toEqual([batch, 5]);
    expect(out[OnnxIoName.clsLogits].data).toBeInstanceOf(Float32Array);
    expect(maxAbsDiff(out[OnnxIoName.clsLogits].data, ref.cls)).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(out[OnnxIoName.distLogits].data, ref.dist!)).toBeLessThanOrEqual(TOLERANCE);
  });

  it('rejects feeds that do not fit the declared input, naming the problem', async () => {
    const name = OnnxIoName.pixelValues;
    await expect(
      session.run({ [name]: { data: new Float32Array(ITEM), dims: [1, 3, 8, 32] } }),
    ).rejects.toThrow(/dims \[1, 3, 8, 32\]; the model expects \[batch, 3, 16, 16\]/);
    await expect(
      session.run({ [name]: { data: new Float32Array(5), dims: [1, 3, 16, 16] } }),
    ).rejects.toThrow(/has 5 values/);
    expect(await kindOf(session.run({}))).toBe('INVALID_ARGUMENT');
    expect(
      await kindOf(
        session.run({
          [name]: { data: new Float32Array(ITEM), dims: [1, 3, 16, 16] },
          extra: { data: new Float32Array(1), dims: [1] },
        }),
      ),
    ).toBe('INVALID_ARGUMENT');
  });

  it('warms up at each requested batch size', async () => {
    const timings = await session.warmUp([1, 2]);
    expect(timings.map((t) => t.batchSize)).toEqual([1, 2]);
    for (const t of timings) expect(t.ms).toBeGreaterThan(0);
  });
});

describe.each(THREADS_UNDER_TEST)('OnnxModelSession lifecycle on the %s thread', (thread) => {
  it("falls back to CPU with a warning when 'cuda' is unavailable", async () => {
    const warn = vi.fn<(message: string) => void>();
    const s = await OnnxModelSession.create(bytes, {
      executionProvider: 'cuda',
      intraOpThreads: THREADS,
      logger: { warn },
      thread,
    });
    try {
      expect(s.executionProvider).toBe('cpu');
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(/CUDA execution provider unavailable .*running on CPU/);
      const out = await s.run({
        [OnnxIoName.pixelValues]: { data: randomPixels(ITEM, 3), dims: [1, 3, 16, 16] },
      });
      expect(out[OnnxIoName.clsLogits].dims).toEqual([1, 5]);
    } finally {
      await s.release();
    }
  });

  it('does not warn about CUDA when the model itself cannot load', async () => {
    const warn = vi.fn<(message: string) => void>();
    const created = OnnxModelSession.create(new Uint8Array([1, 2, 3]), {
      executionProvider: 'cuda',
      logger: { warn },
      thread,
    });
    await expect(created).rejects.toMatchObject({
      kind: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/could not load the model/),
    });
    expect(warn).not.toHaveBeenCalled();
  });

  it('release() is idempotent, waits for a run in flight, and later runs fail clearly', async () => {
    const s = await OnnxModelSession.create(bytes, { intraOpThreads: THREADS, thread });
    const feeds = { [OnnxIoName.pixelValues]: { data: randomPixels(2 * ITEM, 5), dims: [2, 3, 16, 16] } };
    const inFlight = s.run(feeds);
    const first = s.release();
    expect(s.release()).toBe(first);
    expect(s.isReleased).toBe(true);
    expect((await inFlight)[OnnxIoName.clsLogits].dims).toEqual([2, 5]);
    await first;
    await expect(s.run(feeds)).rejects.toMatchObject({
      kind: 'FAILED_PRECONDITION',
      message: 'onnxruntime session has been released',
    });
    expect(await kindOf(s.warmUp([1]))).toBe('FAILED_PRECONDITION');
  });
});

describe('OnnxModelSession threads', () => {
  // Large enough that one run takes tens of milliseconds.
  const big: DeitOnnxConfig = { ...tiny, embedDim: 64, depth: 4, numHeads: 4, imgSize: 64, numClasses: 10 };
  const bigBytes = exportDeitOnnx(big, randomWeights(deitOnnxWeightShapes(big), 3), { preset: 'big_test' });
  const BATCH = 16;
  const feeds = () => ({
    [OnnxIoName.pixelValues]: { data: randomPixels(BATCH * 3 * 64 * 64, 9), dims: [BATCH, 3, 64, 64] },
  });

  /** Runs once and counts how often a 1 ms timer got to fire meanwhile. */
  async function ticksDuringRun(s: OnnxModelSession): Promise<{ ticks: number; ms: number }> {
    await s.run(feeds()); // lazy allocations
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const start = performance.now();
    try {
      await s.run(feeds());
      return { ticks, ms: performance.now() - start };
    } finally {
      clearInterval(timer);
    }
  }

  it('a main-thread run blocks the event loop; a worker-thread run leaves it free', async () => {
    const main = await OnnxModelSession.create(bigBytes, { intraOpThreads: THREADS, thread: 'main' });
    const worker = await OnnxModelSession.create(bigBytes, { intraOpThreads: THREADS, thread: 'worker' });
    try {
      const blocked = await ticksDuringRun(main);
      const free = await ticksDuringRun(worker);
      expect(blocked.ms).toBeGreaterThan(20); // else the comparison says nothing
      expect(blocked.ticks).toBeLessThanOrEqual(2);
      expect(free.ticks).toBeGreaterThanOrEqual(Math.min(10, free.ms / 4));
    } finally {
      await Promise.all([main.release(), worker.release()]);
    }
  });

  it('gives the same logits on both threads', async () => {
    const main = await OnnxModelSession.create(bigBytes, { intraOpThreads: THREADS, thread: 'main' });
    const worker = await OnnxModelSession.create(bigBytes, { intraOpThreads: THREADS, thread: 'worker' });
    try {
      const [a, b] = await Promise.all([main.run(feeds()), worker.run(feeds())]);
      expect(Array.from(b[OnnxIoName.clsLogits].data)).toEqual(Array.from(a[OnnxIoName.clsLogits].data));
      expect(Array.from(b[OnnxIoName.distLogits].data)).toEqual(Array.from(a[OnnxIoName.distLogits].data));
    } finally {
      await Promise.all([main.release(), worker.release()]);
    }
  });

  it.each(['main', 'worker'] as const)(
    'runs feeds over a SharedArrayBuffer (shared with the onnxruntime thread, not copied) on the %s thread',
    async (thread) => {
      const s = await OnnxModelSession.create(bytes, { intraOpThreads: THREADS, thread });
      try {
        const items = [randomPixels(ITEM, 4), randomPixels(ITEM, 5)];
        const plain = new Float32Array(2 * ITEM);
        items.forEach((item, i) => plain.set(item, i * ITEM));
        const expected = await s.run({ [OnnxIoName.pixelValues]: { data: plain, dims: [2, 3, 16, 16] } });
        // Views of the front of a shared buffer with room for three items, as pooled batches are.
        const shared = new SharedArrayBuffer(3 * ITEM * 4);
        const pair = new Float32Array(shared, 0, 2 * ITEM);
        pair.set(plain);
        const [a, b] = await Promise.all([
          s.run({ [OnnxIoName.pixelValues]: { data: pair, dims: [2, 3, 16, 16] } }),
          // A concurrent run of another shape: each run in flight stages its own copy.
          s.run({
            [OnnxIoName.pixelValues]: { data: new Float32Array(shared, 0, ITEM), dims: [1, 3, 16, 16] },
          }),
        ]);
        expect([...a[OnnxIoName.clsLogits].data]).toEqual([...expected[OnnxIoName.clsLogits].data]);
        expect([...b[OnnxIoName.clsLogits].data]).toEqual([
          ...expected[OnnxIoName.clsLogits].data.subarray(0, 5),
        ]);
        expect([...new Float32Array(shared, 0, 2 * ITEM)]).toEqual([...plain]); // left as it was
      } finally {
        await s.release();
      }
    },
  );
});

describe('releaseNow (the onnxruntime thread frees model bytes with it)', () => {
  it('gives a large buffer back to the system without a garbage collection', async () => {
    const rssMb = () => process.memoryUsage.rss() / 2 ** 20;
    const bytes = new Uint8Array(128 << 20).fill(1); // resident: every page written
    const before = rssMb();
    releaseNow(bytes);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(bytes.buffer.byteLength).toBe(0);
    expect(before - rssMb()).toBeGreaterThan(100); // of the 128 MB
  });

  it('leaves a buffer alone when the view covers only part of it (other views may share it)', () => {
    const buffer = new ArrayBuffer(1024);
    const part = new Uint8Array(buffer, 16, 512);
    releaseNow(part);
    expect(buffer.byteLength).toBe(1024);
    releaseNow(new Uint8Array(new SharedArrayBuffer(64))); // cannot be moved: a no-op, not a throw
  });
});
