import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { inferenceV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { healthCheck, publishTinyDeit } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classify,
  failure,
  type Inference,
  sample,
  scrape,
  sleep,
  startInference,
  tinyTensor,
} from './support';

/** Queue delay of the slow-batching server: long enough that requests are reliably still queued. */
const SLOW_QUEUE_DELAY_MS = 400;

let registryDir: string;

beforeAll(async () => {
  registryDir = mkdtempSync(join(tmpdir(), 'deit-e2e-limits-'));
  const registry = await DirectoryRegistry.open(registryDir, { create: true });
  await publishTinyDeit(registry, 'tiny', { seed: 1 });
});

describe('a full queue', () => {
  let inference: Inference;

  beforeAll(async () => {
    inference = await startInference(registryDir, { DEIT_MAX_QUEUE_SIZE: '1', DEIT_MAX_BATCH_SIZE: '1' });
  });

  afterAll(() => inference?.close());

  it('answers RESOURCE_EXHAUSTED to what does not fit, serves the rest, and recovers', async () => {
    let exhausted: ServiceError[] = [];
    let ok = 0;
    // One executes, one waits; a burst of concurrent calls overflows. Retried a few times because a
    // loaded machine may deliver a burst slowly enough for the queue to keep up.
    for (let round = 0; round < 5 && exhausted.length === 0; round++) {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 64 }, (_, i) => classify(inference.client, { tensor: tinyTensor(i / 64) })),
      );
      ok += outcomes.filter((o) => o.status === 'fulfilled').length;
      const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as ServiceError] : []));
      expect(errors.filter((e) => e.code !== status.RESOURCE_EXHAUSTED)).toEqual([]);
      exhausted = errors;
    }
    expect(exhausted.length).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
    expect(exhausted[0]?.details).toMatch(/queue full \(1 requests waiting\); retry later/);
    expect((await classify(inference.client, { tensor: tinyTensor(0) })).timing?.batchSize).toBe(1);
  });
});

describe('slow batching: deadlines and shutdown', () => {
  let inference: Inference;

  beforeAll(async () => {
    inference = await startInference(
      registryDir,
      { DEIT_MAX_BATCH_SIZE: '8', DEIT_MAX_QUEUE_DELAY_MS: String(SLOW_QUEUE_DELAY_MS) },
      { metrics: true },
    );
  });

  // The last test closes the service itself.
  afterAll(() => inference?.client.close());

  const batches = async () =>
    sample(await scrape(inference.metricsUrl ?? ''), 'deit_batch_size_count', { model: 'tiny' }) ?? 0;

  it('drops work whose deadline passes while queued, before compute', async () => {
    const before = await batches();
    const err = await failure(inference.client, { tensor: tinyTensor(0) }, { deadline: Date.now() + 50 });
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    await sleep(SLOW_QUEUE_DELAY_MS + 100);
    // The batch the request would have joined never ran.
    expect(await batches()).toBe(before);
    const res = await classify(inference.client, { tensor: tinyTensor(0) });
    expect(res.timing?.queueMs).toBeGreaterThanOrEqual(SLOW_QUEUE_DELAY_MS - 5);
    expect(await batches()).toBe(before + 1);
  });

  it('drops the queued items of a stream whose deadline passes, and ends it with DEADLINE_EXCEEDED', async () => {
    const before = await batches();
    const call = inference.client.classifyStream(new Metadata(), { deadline: Date.now() + 100 });
    const data: unknown[] = [];
    const ended = new Promise<ServiceError>((resolve, reject) => {
      call.on('data', (d) => data.push(d));
      call.on('error', resolve);
      call.on('end', () => reject(new Error('the stream ended without an error')));
    });
    for (const id of ['a', 'b']) {
      call.write(
        inferenceV1Client.ClassifyStreamRequest.fromPartial({ id, request: { tensor: tinyTensor(0) } }),
      );
    }
    expect((await ended).code).toBe(status.DEADLINE_EXCEEDED);
    expect(data).toEqual([]);
    await sleep(SLOW_QUEUE_DELAY_MS + 100);
    expect(await batches()).toBe(before);
  });

  it('reports requests waiting in the batcher as pending', async () => {
    const pending = async () =>
      sample(await scrape(inference.metricsUrl ?? ''), 'deit_pending_requests') ?? NaN;
    const calls = Array.from({ length: 3 }, () => classify(inference.client, { tensor: tinyTensor(0) }));
    await sleep(SLOW_QUEUE_DELAY_MS / 4);
    expect(await pending()).toBe(3);
    await Promise.all(calls);
    expect(await pending()).toBe(0);
  });

  it('finishes in-flight requests when the app closes, then stops answering', async () => {
    const inFlight = Array.from({ length: 4 }, (_, i) =>
      classify(inference.client, { tensor: tinyTensor(i) }),
    );
    await sleep(SLOW_QUEUE_DELAY_MS / 4); // queued in the batcher, waiting for it to fill
    const closing = inference.service.close();
    const answers = await Promise.all(inFlight);
    for (const res of answers) expect(res.model?.version).toBe(1);
    expect(new Set(answers.map((r) => r.timing?.batchSize))).toEqual(new Set([4]));
    await closing;
    await expect(healthCheck(inference.service.address)).rejects.toMatchObject({ code: status.UNAVAILABLE });
  });
});
