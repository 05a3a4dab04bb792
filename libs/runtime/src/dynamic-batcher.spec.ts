import { DomainError } from '@deit-serve/core';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamicBatcher, type BatchStats, type DynamicBatcherOptions } from './dynamic-batcher';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A promise the test settles by hand, to hold a batch "executing" as long as it likes. */
function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Records every batch; each batch waits on `gate` (if set) before echoing items × 10. */
function recorder(): {
  batches: number[][];
  gate?: Promise<void>;
  execute: (items: readonly number[]) => Promise<number[]>;
} {
  const r = {
    batches: [] as number[][],
    gate: undefined as Promise<void> | undefined,
    execute: async (items: readonly number[]): Promise<number[]> => {
      r.batches.push([...items]);
      await r.gate;
      return items.map((i) => i * 10);
    },
  };
  return r;
}

function batcher(
  over: Partial<DynamicBatcherOptions<number, number>> &
    Pick<DynamicBatcherOptions<number, number>, 'execute'>,
): DynamicBatcher<number, number> {
  const b = new DynamicBatcher<number, number>({
    name: 'test',
    maxBatchSize: 4,
    maxQueueDelayMs: 20,
    maxQueueSize: 100,
    ...over,
  });
  created.push(b);
  return b;
}

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof DomainError ? e.kind : `non-domain: ${String(e)}`;
  }
}

const created: DynamicBatcher<number, number>[] = [];
afterEach(async () => {
  await Promise.all(created.splice(0).map((b) => b.close()));
});

describe('DynamicBatcher', () => {
  it('fills batches up to maxBatchSize, in submit order, one execution at a time', async () => {
    const r = recorder();
    let running = 0;
    let maxRunning = 0;
    const b = batcher({
      maxBatchSize: 4,
      maxQueueDelayMs: 5,
      execute: async (items) => {
        maxRunning = Math.max(maxRunning, ++running);
        await sleep(5);
        running--;
        return r.execute(items);
      },
    });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i)));
    expect(r.batches).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ]);
    expect(maxRunning).toBe(1);
    expect(results.map((x) => x.result)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(results.map((x) => x.batchSize)).toEqual([4, 4, 4, 4, 4, 4, 4, 4, 2, 2]);
  });

  it('runs a full batch at once, without waiting out the delay', async () => {
    const r = recorder();
    const b = batcher({ maxBatchSize: 3, maxQueueDelayMs: 10_000, execute: r.execute });
    const t0 = performance.now();
    await Promise.all([b.submit(1), b.submit(2), b.submit(3)]);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(r.batches).toEqual([[1, 2, 3]]);
  });

  it('flushes a partial batch once the oldest item has waited maxQueueDelayMs', async () => {
    const r = recorder();
    const b = batcher({ maxBatchSize: 8, maxQueueDelayMs: 40, execute: r.execute });
    const t0 = performance.now();
    const first = b.submit(1);
    await sleep(10);
    const second = b.submit(2);
    expect(r.batches).toEqual([]);
    const [a, c] = await Promise.all([first, second]);
    const elapsed = performance.now() - t0;
    expect(r.batches).toEqual([[1, 2]]);
    // Timers may fire a millisecond early against performance.now(), and late on a busy machine.
    expect(elapsed).toBeGreaterThanOrEqual(35);
    expect(elapsed).toBeLessThan(1_000);
    expect(a.queueMs).toBeGreaterThanOrEqual(35);
    expect(c.queueMs).toBeLessThan(a.queueMs);
  });

  it('with maxQueueDelayMs 0 still gathers items submitted in the same tick', async () => {
    const r = recorder();
    const b = batcher({ maxBatchSize: 8, maxQueueDelayMs: 0, execute: r.execute });
    await Promise.all([b.submit(1), b.submit(2), b.submit(3)]);
    expect(r.batches).toEqual([[1, 2, 3]]);
  });

  it('rejects with RESOURCE_EXHAUSTED once maxQueueSize items wait', async () => {
    const r = recorder();
    const gate = deferred();
    r.gate = gate.promise;
    const b = batcher({ maxBatchSize: 1, maxQueueSize: 2, execute: r.execute });
    const running = b.submit(1); // executes at once (batch full), leaving the queue empty
    const queued = [b.submit(2), b.submit(3)];
    expect(b.queueLength).toBe(2);
    await expect(b.submit(4)).rejects.toMatchObject({
      kind: 'RESOURCE_EXHAUSTED',
      message: expect.stringMatching(/queue full \(2 requests waiting\)/),
    });
    // The same answer up front, for callers that would otherwise preprocess in vain.
    expect(() => b.assertRoom()).toThrow(/queue full \(2 requests waiting\)/);
    gate.resolve();
    expect((await Promise.all([running, ...queued])).map((x) => x.result)).toEqual([10, 20, 30]);
    expect(r.batches).toEqual([[1], [2], [3]]);
  });

  it('counts places reserved for items still being prepared against maxQueueSize', async () => {
    const r = recorder();
    const gate = deferred();
    r.gate = gate.promise;
    const b = batcher({ maxBatchSize: 1, maxQueueSize: 2, execute: r.execute });
    const running = b.submit(1); // executes at once, leaving the queue empty
    const decoding = [b.reserve(), b.reserve()]; // two images still decoding: the queue is full
    expect(b.reservedPlaces).toBe(2);
    expect(() => b.reserve()).toThrow(/queue full \(2 requests waiting\)/);
    await expect(b.submit(9)).rejects.toMatchObject({ kind: 'RESOURCE_EXHAUSTED' });
    // Each reserved item takes its own place: no second check, no double count.
    const queued = [b.submit(2, { place: decoding[0] }), b.submit(3, { place: decoding[1] })];
    expect(b.reservedPlaces).toBe(0);
    expect(b.queueLength).toBe(2);
    await expect(b.submit(9)).rejects.toMatchObject({ kind: 'RESOURCE_EXHAUSTED' });
    gate.resolve();
    expect((await Promise.all([running, ...queued])).map((x) => x.result)).toEqual([10, 20, 30]);
  });

  it('frees a reserved place once, when its item is abandoned', () => {
    const b = batcher({ maxQueueSize: 1, execute: recorder().execute });
    const place = b.reserve();
    expect(() => b.reserve()).toThrow(/queue full/);
    place.release();
    place.release();
    expect(b.reservedPlaces).toBe(0);
    b.reserve().release();
  });

  it('drops items whose deadline passed or whose signal aborted before compute', async () => {
    const r = recorder();
    const gate = deferred();
    r.gate = gate.promise;
    const b = batcher({ maxBatchSize: 1, execute: r.execute });
    const running = b.submit(1);
    const late = b.submit(2, { deadline: Date.now() + 15 });
    const controller = new AbortController();
    const cancelled = b.submit(3, { signal: controller.signal });
    const kept = b.submit(4, { deadline: Date.now() + 60_000 });

    controller.abort();
    // An abort leaves the queue at once, not at the next dispatch.
    expect(await kindOf(cancelled)).toBe('ABORTED');
    expect(b.queueLength).toBe(2);

    await sleep(30);
    gate.resolve();
    expect(await kindOf(late)).toBe('DEADLINE_EXCEEDED');
    expect((await running).result).toBe(10);
    expect((await kept).result).toBe(40);
    expect(r.batches).toEqual([[1], [4]]);
  });

  it('refuses already-expired deadlines and already-aborted signals without queueing', async () => {
    const r = recorder();
    const b = batcher({ execute: r.execute });
    expect(await kindOf(b.submit(1, { deadline: Date.now() - 1 }))).toBe('DEADLINE_EXCEEDED');
    expect(await kindOf(b.submit(2, { signal: AbortSignal.abort() }))).toBe('ABORTED');
    expect(b.queueLength).toBe(0);
    await b.drain();
    expect(r.batches).toEqual([]);
  });

  it('maps abort reasons: a DomainError passes through, AbortSignal.timeout is a deadline', async () => {
    const r = recorder();
    const gate = deferred();
    r.gate = gate.promise;
    const b = batcher({ maxBatchSize: 1, execute: r.execute });
    const running = b.submit(1);
    const timedOut = b.submit(2, { signal: AbortSignal.timeout(5) });
    const own = new AbortController();
    const ownReason = new DomainError('UNAVAILABLE', 'model unloading');
    const withReason = b.submit(3, { signal: own.signal });
    own.abort(ownReason);
    await expect(withReason).rejects.toBe(ownReason);
    expect(await kindOf(timedOut)).toBe('DEADLINE_EXCEEDED');
    gate.resolve();
    await running;
    expect(r.batches).toEqual([[1]]);
  });

  it('rejects every item of a failing batch, and only that batch', async () => {
    const batches: number[][] = [];
    const b = batcher({
      maxBatchSize: 2,
      execute: (items) => {
        batches.push([...items]);
        return items.includes(-1) ? Promise.reject(new Error('boom')) : Promise.resolve(items.map((i) => i));
      },
    });
    const outcomes = await Promise.allSettled([b.submit(1), b.submit(-1), b.submit(3), b.submit(4)]);
    expect(batches).toEqual([
      [1, -1],
      [3, 4],
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'fulfilled', 'fulfilled']);
    for (const o of outcomes.slice(0, 2))
      expect((o as PromiseRejectedResult).reason).toEqual(new Error('boom'));
  });

  it('rejects the batch with INTERNAL when execute returns the wrong number of results', async () => {
    const b = batcher({ maxBatchSize: 2, execute: () => Promise.resolve([1]) });
    const kinds = await Promise.all([kindOf(b.submit(1)), kindOf(b.submit(2))]);
    expect(kinds).toEqual(['INTERNAL', 'INTERNAL']);
  });

  it('reports each batch to onBatch and survives a throwing hook', async () => {
    const stats: BatchStats[] = [];
    const b = batcher({
      maxBatchSize: 2,
      execute: async (items) => {
        await sleep(5);
        return items.map((i) => i);
      },
      onBatch: (s) => {
        stats.push(s);
        throw new Error('metrics backend down');
      },
    });
    await Promise.all([b.submit(1), b.submit(2), b.submit(3)]);
    expect(stats.map((s) => [s.size, s.queueMs.length, s.ok])).toEqual([
      [2, 2, true],
      [1, 1, true],
    ]);
    expect(stats[0].computeMs).toBeGreaterThanOrEqual(4);
  });

  it('close() runs queued work at once, then refuses new submits with UNAVAILABLE', async () => {
    const r = recorder();
    const b = batcher({ maxBatchSize: 8, maxQueueDelayMs: 60_000, execute: r.execute });
    const timersBefore = countTimeouts();
    const queued = [b.submit(1), b.submit(2)];
    expect(countTimeouts()).toBe(timersBefore + 1);
    const t0 = performance.now();
    await b.close();
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect((await Promise.all(queued)).map((x) => x.result)).toEqual([10, 20]);
    expect(await kindOf(b.submit(3))).toBe('UNAVAILABLE');
    expect(b.queueLength).toBe(0);
    expect(countTimeouts()).toBe(timersBefore);
  });

  it('drain() waits for queued and executing work; resolves at once when idle', async () => {
    const r = recorder();
    const gate = deferred();
    r.gate = gate.promise;
    const b = batcher({ maxBatchSize: 1, execute: r.execute });
    await b.drain();
    const items = [b.submit(1), b.submit(2)];
    let drained = false;
    const draining = b.drain().then(() => (drained = true));
    await sleep(10);
    expect(drained).toBe(false);
    gate.resolve();
    await draining;
    expect(b.isExecuting).toBe(false);
    expect(b.queueLength).toBe(0);
    await Promise.all(items);
  });

  it('leaves no timer behind once a delayed batch has run', async () => {
    const timersBefore = countTimeouts();
    const r = recorder();
    const b = batcher({ maxBatchSize: 8, maxQueueDelayMs: 5, execute: r.execute });
    await Promise.all([b.submit(1), b.submit(2)]);
    await b.drain();
    expect(countTimeouts()).toBe(timersBefore);
  });

  it('validates its options', () => {
    const execute = (): Promise<number[]> => Promise.resolve([]);
    expect(
      () => new DynamicBatcher({ maxBatchSize: 0, maxQueueDelayMs: 1, maxQueueSize: 1, execute }),
    ).toThrow(/maxBatchSize/);
    expect(
      () => new DynamicBatcher({ maxBatchSize: 1, maxQueueDelayMs: -1, maxQueueSize: 1, execute }),
    ).toThrow(/maxQueueDelayMs/);
    expect(
      () => new DynamicBatcher({ maxBatchSize: 1, maxQueueDelayMs: 1, maxQueueSize: 0, execute }),
    ).toThrow(/maxQueueSize/);
  });
});

function countTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}
