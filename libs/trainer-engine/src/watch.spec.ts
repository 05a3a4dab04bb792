import { NotFoundError } from '@deit-serve/core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, toArray } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobEvent, JobEventBody } from './job';
import { JobStore } from './job-store';
import { watchJob, watchJob$ } from './watch';

let dir: string;
let store: JobStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'job-watch-'));
  store = JobStore.open(join(dir, 'jobs.sqlite'));
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEventBody[]> {
  const bodies: JobEventBody[] = [];
  for await (const event of events) bodies.push(event.body);
  return bodies;
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

describe('watchJob', () => {
  it('starts with the current state and latest progress, then follows until the job ends', async () => {
    const id = store.create({ kind: 'fake', spec: {} }).job.id;
    store.claimNext('r', 60_000);
    store.setProgress(id, { epoch: 1, epochs: 2, step: 1, stepsPerEpoch: 2 });
    const watching = collect(watchJob(store, id, { pollIntervalMs: 10_000 }));
    await tick();
    store.setProgress(id, { epoch: 1, epochs: 2, step: 2, stepsPerEpoch: 2 });
    store.appendEvent(id, { type: 'eval', eval: { epoch: 1, dataset: 'val', images: 4 } });
    await tick();
    store.transition(id, 'SUCCEEDED', { result: {} });
    store.appendEvent(id, { type: 'message', message: 'after the end' });
    // In-process writes wake the watcher: the long poll interval is never waited for.
    expect(await watching).toEqual([
      { type: 'state', state: 'RUNNING' },
      { type: 'progress', progress: { epoch: 1, epochs: 2, step: 1, stepsPerEpoch: 2 } },
      { type: 'progress', progress: { epoch: 1, epochs: 2, step: 2, stepsPerEpoch: 2 } },
      { type: 'eval', eval: { epoch: 1, dataset: 'val', images: 4 } },
      { type: 'state', state: 'SUCCEEDED' },
    ]);
  });

  it('an ended job gives its final state only; an unknown one throws at once', async () => {
    const id = store.create({ kind: 'fake', spec: {} }).job.id;
    store.claimNext('r', 60_000);
    store.transition(id, 'FAILED', { error: 'boom' });
    expect(await collect(watchJob(store, id))).toEqual([{ type: 'state', state: 'FAILED', error: 'boom' }]);
    expect(() => watchJob(store, 'nope')).toThrow(NotFoundError);
  });

  it('sees writes made through another connection by polling', async () => {
    const id = store.create({ kind: 'fake', spec: {} }).job.id;
    const other = JobStore.open(join(dir, 'jobs.sqlite'));
    try {
      const watching = collect(watchJob(store, id, { pollIntervalMs: 10 }));
      await tick();
      other.claimNext('r', 60_000);
      other.transition(id, 'CANCELLING');
      other.transition(id, 'CANCELLED');
      expect((await watching).map((b) => b.type === 'state' && b.state)).toEqual([
        'QUEUED',
        'RUNNING',
        'CANCELLING',
        'CANCELLED',
      ]);
    } finally {
      other.close();
    }
  });

  it('stops quietly when aborted', async () => {
    const id = store.create({ kind: 'fake', spec: {} }).job.id;
    const controller = new AbortController();
    const watching = collect(watchJob(store, id, { signal: controller.signal, pollIntervalMs: 10_000 }));
    await tick();
    controller.abort();
    expect(await watching).toEqual([{ type: 'state', state: 'QUEUED' }]);
  });
});

describe('watchJob$', () => {
  it('emits the same stream and completes when the job ends', async () => {
    const id = store.create({ kind: 'fake', spec: {} }).job.id;
    const events = firstValueFrom(watchJob$(store, id).pipe(toArray()));
    await tick();
    store.transition(id, 'CANCELLED');
    expect((await events).map((e) => e.body)).toEqual([
      { type: 'state', state: 'QUEUED' },
      { type: 'state', state: 'CANCELLED' },
    ]);
  });

  it('errors for an unknown job and stops watching on unsubscribe', async () => {
    await expect(firstValueFrom(watchJob$(store, 'nope'))).rejects.toBeInstanceOf(NotFoundError);
    const id = store.create({ kind: 'fake', spec: {} }).job.id;
    const seen: JobEvent[] = [];
    const subscription = watchJob$(store, id, { pollIntervalMs: 10 }).subscribe((e) => seen.push(e));
    await tick();
    subscription.unsubscribe();
    store.appendEvent(id, { type: 'message', message: 'unseen' });
    await tick();
    expect(seen.map((e) => e.body.type)).toEqual(['state']);
  });
});
