import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@deit-serve/core';
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JOB_STATES, JOB_TRANSITIONS, type JobState } from './job';
import { JOB_STORE_SCHEMA_VERSION, JobStore } from './job-store';

let dir: string;
let store: JobStore;
let clock: number;
const LEASE_MS = 30_000;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'job-store-'));
  clock = 1_700_000_000_000;
  store = JobStore.open(join(dir, 'jobs.sqlite'), { now: () => clock });
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

function queued(spec: unknown = { n: 1 }): string {
  return store.create({ kind: 'fake', spec }).job.id;
}

/** Brings a fresh job to `state` along legal transitions. */
let kinds = 0;
function jobIn(state: JobState): string {
  // A kind of its own, so that claiming it skips jobs left queued by earlier calls.
  const kind = `kind-${++kinds}`;
  const id = store.create({ kind, spec: {} }).job.id;
  if (state === 'QUEUED') return id;
  if (state === 'CANCELLED') return store.transition(id, 'CANCELLED').id;
  expect(store.claimNext('runner-a', LEASE_MS, [kind])?.id).toBe(id);
  if (state === 'RUNNING') return id;
  if (state === 'CANCELLING') return store.transition(id, 'CANCELLING').id;
  return store.transition(id, state).id;
}

describe('JobStore', () => {
  it('opens in WAL mode with a versioned schema, and refuses a newer schema', () => {
    expect(store.schemaVersion).toBe(JOB_STORE_SCHEMA_VERSION);
    const db = new Database(join(dir, 'jobs.sqlite'));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    store.close();
    db.pragma(`user_version = ${JOB_STORE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => JobStore.open(join(dir, 'jobs.sqlite'))).toThrow(FailedPreconditionError);
    store = JobStore.open(join(dir, 'other.sqlite'));
  });

  it('creates queued jobs with a state event, and keeps them across reopening', () => {
    const { job, created } = store.create({ kind: 'fake', spec: { epochs: 2 } });
    expect(created).toBe(true);
    expect(job).toMatchObject({
      kind: 'fake',
      spec: { epochs: 2 },
      state: 'QUEUED',
      resumes: 0,
      attempts: 0,
    });
    expect(job.createdAt).toEqual(new Date(clock));
    store.close();
    store = JobStore.open(join(dir, 'jobs.sqlite'));
    expect(store.get(job.id)).toEqual(job);
    expect(store.events(job.id).map((e) => e.body)).toEqual([{ type: 'state', state: 'QUEUED' }]);
    expect(() => store.get('nope')).toThrow(NotFoundError);
  });

  it('is idempotent by request id', () => {
    const first = store.create({ kind: 'fake', spec: { a: 1, b: { c: 2 } }, requestId: 'req-1' });
    const second = store.create({ kind: 'fake', spec: { a: 1, b: { c: 2 } }, requestId: 'req-1' });
    expect(second).toEqual({ job: first.job, created: false });
    // An empty key is no key.
    const a = store.create({ kind: 'fake', spec: {}, requestId: '' });
    const b = store.create({ kind: 'fake', spec: {}, requestId: '' });
    expect(a.job.id).not.toBe(b.job.id);
    expect(store.list().jobs).toHaveLength(3);
  });

  it('refuses a request id reused with another spec or kind, naming the job and what differs', () => {
    const first = store.create({ kind: 'fake', spec: { a: 1, b: { c: 2 }, d: 3 }, requestId: 'req-1' });
    const refusal = (input: { kind: string; spec: unknown }) => {
      try {
        store.create({ ...input, requestId: 'req-1' });
      } catch (error) {
        return error;
      }
      throw new Error('created');
    };
    const changed = refusal({ kind: 'fake', spec: { a: 1, b: { c: 3 }, e: 4 } });
    expect(changed).toBeInstanceOf(FailedPreconditionError);
    expect((changed as Error).message).toBe(
      `request_id "req-1" was already used for job ${first.job.id} with another spec (differs in: b, d, e); ` +
        'send the same spec to get that job back, or use a new request_id for a new job',
    );
    expect((refusal({ kind: 'other', spec: { a: 1, b: { c: 2 }, d: 3 } }) as Error).message).toMatch(
      /already used for job .* with another kind \("fake", not "other"\)/,
    );
    expect(store.list().jobs).toHaveLength(1);
  });

  it('enforces the state machine: every legal transition works, every other one is FAILED_PRECONDITION', () => {
    for (const from of JOB_STATES) {
      for (const to of JOB_STATES) {
        if (to === 'RUNNING') continue; // only claimNext starts jobs
        const id = jobIn(from);
        if (JOB_TRANSITIONS[from].includes(to)) {
          expect(store.transition(id, to).state, `${from} → ${to}`).toBe(to);
        } else {
          expect(() => store.transition(id, to), `${from} → ${to}`).toThrow(FailedPreconditionError);
          expect(store.get(id).state).toBe(from);
        }
      }
    }
    expect(() => store.transition(queued(), 'RUNNING')).toThrow(InvalidArgumentError);
    expect(() => store.claimNext('', LEASE_MS)).toThrow(InvalidArgumentError);
  });

  it('records timestamps, owner, resumes, error and result along the way', () => {
    const id = queued();
    clock += 1000;
    const running = store.claimNext('runner-a', LEASE_MS);
    expect(running).toMatchObject({ id, state: 'RUNNING', owner: 'runner-a', attempts: 1 });
    expect(running?.startedAt).toEqual(new Date(clock));
    expect(running?.leaseExpiresAt).toEqual(new Date(clock + LEASE_MS));
    const startedAt = running?.startedAt;

    clock += 1000;
    const requeued = store.transition(id, 'QUEUED', { expectOwner: 'runner-a', message: 'runner gone' });
    expect(requeued).toMatchObject({ state: 'QUEUED', resumes: 1 });
    expect(requeued.owner).toBeUndefined();
    clock += 1000;
    const again = store.claimNext('runner-b', LEASE_MS);
    expect(again).toMatchObject({ owner: 'runner-b', attempts: 2, resumes: 1, startedAt });

    expect(() => store.transition(id, 'SUCCEEDED', { expectOwner: 'runner-a' })).toThrow(/held by runner-b/);
    clock += 1000;
    const done = store.transition(id, 'SUCCEEDED', { expectOwner: 'runner-b', result: { version: 3 } });
    expect(done).toMatchObject({ state: 'SUCCEEDED', result: { version: 3 }, finishedAt: new Date(clock) });
    expect(done.owner).toBeUndefined();

    const failed = jobIn('RUNNING');
    expect(store.transition(failed, 'FAILED', { error: 'boom' })).toMatchObject({
      state: 'FAILED',
      error: 'boom',
    });
    expect(store.events(id).map((e) => e.body)).toEqual([
      { type: 'state', state: 'QUEUED' },
      { type: 'state', state: 'RUNNING' },
      { type: 'state', state: 'QUEUED' },
      { type: 'message', message: 'runner gone' },
      { type: 'state', state: 'RUNNING' },
      { type: 'state', state: 'SUCCEEDED' },
    ]);
  });

  it('claims queued jobs oldest first, one runner each, only of the given kinds', () => {
    const a = queued();
    const b = store.create({ kind: 'other', spec: {} }).job.id;
    const c = queued();
    const second = JobStore.open(join(dir, 'jobs.sqlite'));
    try {
      expect(store.claimNext('r1', LEASE_MS, ['fake'])?.id).toBe(a);
      expect(second.claimNext('r2', LEASE_MS, ['fake'])?.id).toBe(c);
      expect(store.claimNext('r1', LEASE_MS, ['fake'])).toBeUndefined();
      expect(second.claimNext('r2', LEASE_MS)?.id).toBe(b);
      expect(store.claimNext('r1', LEASE_MS)).toBeUndefined();
    } finally {
      second.close();
    }
    expect(store.heldBy('r1').map((j) => j.id)).toEqual([a]);
    expect(store.heldByOthers('r1').map((j) => j.id)).toEqual([b, c]);
    clock += 5000;
    expect(store.renewLeases('r1', LEASE_MS)).toBe(1);
    expect(store.get(a).leaseExpiresAt).toEqual(new Date(clock + LEASE_MS));
  });

  it('lists newest first with state filters and page tokens', () => {
    const ids = Array.from({ length: 5 }, () => queued());
    store.transition(ids[1] ?? '', 'CANCELLED');
    store.transition(ids[3] ?? '', 'CANCELLED');
    const page1 = store.list({ pageSize: 2 });
    expect(page1.jobs.map((j) => j.id)).toEqual([ids[4], ids[3]]);
    const page2 = store.list({ pageSize: 2, pageToken: page1.nextPageToken });
    expect(page2.jobs.map((j) => j.id)).toEqual([ids[2], ids[1]]);
    const page3 = store.list({ pageSize: 2, pageToken: page2.nextPageToken });
    expect(page3).toEqual({ jobs: [expect.objectContaining({ id: ids[0] })], nextPageToken: '' });
    expect(store.list({ states: ['CANCELLED'] }).jobs.map((j) => j.id)).toEqual([ids[3], ids[1]]);
    expect(store.list({ states: ['QUEUED', 'CANCELLED'], pageSize: 0 }).jobs).toHaveLength(5);
    expect(() => store.list({ pageToken: 'garbage' })).toThrow(InvalidArgumentError);
    expect(() => store.list({ pageSize: 5000 })).toThrow(InvalidArgumentError);
    expect(() => store.list({ states: ['BOGUS' as JobState] })).toThrow(InvalidArgumentError);
  });

  it('appends events with gap-free sequence numbers and reads them after a seq', () => {
    const id = jobIn('RUNNING');
    store.setProgress(id, { epoch: 1, epochs: 2, step: 3, stepsPerEpoch: 10 });
    store.appendEvent(id, { type: 'message', message: 'hello' });
    store.appendEvent(id, { type: 'eval', eval: { epoch: 1, dataset: 'val', images: 10 } });
    expect(store.get(id).progress).toEqual({ epoch: 1, epochs: 2, step: 3, stepsPerEpoch: 10 });
    const events = store.events(id);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(store.events(id, 3).map((e) => e.body.type)).toEqual(['message', 'eval']);
    expect(store.snapshot(id).lastSeq).toBe(5);
    expect(() => store.appendEvent('nope', { type: 'message', message: 'x' })).toThrow(NotFoundError);
  });

  it('records checkpoints; the latest is the one recorded last', () => {
    const id = jobIn('RUNNING');
    expect(store.latestCheckpoint(id)).toBeUndefined();
    store.recordCheckpoint(id, 1, '/w/e1');
    store.recordCheckpoint(id, 2, '/w/e2');
    store.recordCheckpoint(id, 2, '/w/e2-cancel');
    expect(store.latestCheckpoint(id)).toMatchObject({ jobId: id, epoch: 2, path: '/w/e2-cancel' });
    expect(store.checkpoints(id).map((c) => c.path)).toEqual(['/w/e1', '/w/e2', '/w/e2-cancel']);
    expect(() => store.recordCheckpoint('nope', 1, '/x')).toThrow(NotFoundError);
  });

  it('notifies in-process subscribers after each commit', () => {
    const changes: string[] = [];
    const unsubscribe = store.subscribe((c) =>
      changes.push(c.type === 'created' ? 'created' : `event ${c.seq}`),
    );
    const id = queued();
    store.claimNext('r', LEASE_MS);
    store.appendEvent(id, { type: 'message', message: 'm' });
    unsubscribe();
    store.transition(id, 'FAILED');
    expect(changes).toEqual(['created', 'event 2', 'event 3']);
  });
});
