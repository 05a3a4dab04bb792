import { FailedPreconditionError } from '@deit-serve/core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTerminal, type JobRecord } from '../src/job';
import { JobRunner, type JobRunnerOptions } from '../src/job-runner';
import { JobStore } from '../src/job-store';
import { readFakeLog, type FakeSpec } from './fixtures/fake-job';
import { FAKE_KINDS, TS_WORKER, waitFor } from './fixtures/support';

/** A cancelled fake job notices within one step (epochMs / 4); the rest is IPC and bookkeeping. */
const CANCEL_WITHIN_MS = 3000;

let dir: string;
let store: JobStore;
let log: string;
const runners: JobRunner[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'job-runner-'));
  store = JobStore.open(join(dir, 'jobs.sqlite'));
  log = join(dir, 'fake.jsonl');
});
afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.stop({ graceMs: 500 })));
  store.close();
  await rm(dir, { recursive: true, force: true });
});

function runner(options: Partial<JobRunnerOptions> = {}): JobRunner {
  const r = new JobRunner({
    store,
    kinds: FAKE_KINDS,
    workDir: join(dir, 'work'),
    worker: TS_WORKER,
    pollIntervalMs: 50,
    progressIntervalMs: 50,
    ...options,
  });
  runners.push(r);
  r.start();
  return r;
}

function fake(spec: Partial<FakeSpec> = {}, kind = 'fake'): string {
  return store.create({ kind, spec: { epochs: 2, epochMs: 200, log, ...spec } }).job.id;
}

function ended(id: string, timeoutMs?: number): Promise<JobRecord> {
  return waitFor(
    `job ${id} to end`,
    () => {
      const job = store.get(id);
      return isTerminal(job.state) && job;
    },
    timeoutMs,
  );
}

function epochsDone(id: string): number[] {
  return readFakeLog(log)
    .filter((e) => e.job === id && e.event === 'epoch-done')
    .map((e) => e.epoch ?? -1);
}

describe('JobRunner', () => {
  it('runs a job in a worker process and records its progress, evaluations and checkpoints', async () => {
    const id = fake({ epochs: 3, epochMs: 150 });
    runner();
    const job = await ended(id);
    expect(job).toMatchObject({
      state: 'SUCCEEDED',
      result: { model: 'fake', epochs: 3 },
      backend: 'fake',
      attempts: 1,
      resumes: 0,
    });
    expect(job.progress).toMatchObject({ epoch: 3, epochs: 3, step: 4, stepsPerEpoch: 4 });
    expect(epochsDone(id)).toEqual([1, 2, 3]);
    expect(readFakeLog(log)[0]?.pid).not.toBe(process.pid);
    expect(store.checkpoints(id).map((c) => c.epoch)).toEqual([1, 2, 3]);
    const bodies = store.events(id).map((e) => e.body);
    expect(bodies.filter((b) => b.type === 'eval')).toHaveLength(3);
    expect(bodies.filter((b) => b.type === 'state').map((b) => b.type === 'state' && b.state)).toEqual([
      'QUEUED',
      'RUNNING',
      'SUCCEEDED',
    ]);
    expect(bodies).toContainEqual({ type: 'message', message: 'checkpoint written (epoch 2)' });
    expect(bodies).toContainEqual({ type: 'message', message: 'fake training finished' });
    // Progress is throttled but every epoch is stored.
    const progressEpochs = bodies.flatMap((b) => (b.type === 'progress' ? [b.progress.epoch] : []));
    expect(new Set(progressEpochs)).toEqual(new Set([1, 2, 3]));
  });

  it("hands the worker its job kind's configuration as ctx.config, and none to a kind without one", async () => {
    const config = { sandbox: { roots: ['/data'], cwd: '/srv' }, limit: 3 };
    const module = FAKE_KINDS['fake']?.module ?? '';
    runner({
      kinds: {
        configured: { module, export: 'configEchoJob', config },
        bare: { module, export: 'configEchoJob' },
      },
    });
    const configured = store.create({ kind: 'configured', spec: {} }).job.id;
    const bare = store.create({ kind: 'bare', spec: {} }).job.id;
    expect((await ended(configured)).result).toEqual({ config, sawConfig: true });
    expect((await ended(bare)).result).toEqual({ config: null, sawConfig: false });
  });

  it('runs at most maxConcurrentJobs at once; the others wait queued', async () => {
    const ids = [fake(), fake(), fake()];
    let most = 0;
    const unsubscribe = store.subscribe(() => {
      most = Math.max(most, store.list({ states: ['RUNNING'] }).jobs.length);
    });
    runner({ maxConcurrentJobs: 2 });
    expect(store.list({ states: ['RUNNING'] }).jobs.map((j) => j.id)).toEqual([ids[1], ids[0]]);
    expect(store.get(ids[2] ?? '').state).toBe('QUEUED');
    for (const id of ids) expect((await ended(id)).state).toBe('SUCCEEDED');
    unsubscribe();
    expect(most).toBe(2);
    for (const id of ids) expect(epochsDone(id)).toEqual([1, 2]);
  });

  it('cancels a running job within seconds; it checkpoints first', async () => {
    const id = fake({ epochs: 50, epochMs: 200 });
    const r = runner();
    await waitFor('the first checkpoint', () => store.latestCheckpoint(id));
    const asked = Date.now();
    expect(r.cancel(id).state).toBe('CANCELLING');
    expect(r.cancel(id).state).toBe('CANCELLING');
    const job = await ended(id);
    expect(job.state).toBe('CANCELLED');
    expect(Date.now() - asked).toBeLessThan(CANCEL_WITHIN_MS);
    expect(store.latestCheckpoint(id)?.path).toMatch(/-stopped\.json$/);
    expect(readFakeLog(log).some((e) => e.job === id && e.event === 'stopped')).toBe(true);
    expect(() => r.cancel(id)).toThrow(FailedPreconditionError);
  });

  it('logs how each job ended: succeeded, cancelled, failed', async () => {
    const lines: string[] = [];
    const logger = {
      log: (m: string) => lines.push(m),
      warn: (m: string) => lines.push(m),
      error: () => undefined,
    };
    const done = fake({ epochs: 1, epochMs: 50 });
    const cancelled = fake({ epochs: 50, epochMs: 200 });
    const failed = fake({ epochs: 3, epochMs: 50, failAtEpoch: 1 });
    const r = runner({ maxConcurrentJobs: 3, logger });
    await ended(done);
    await waitFor('the first checkpoint', () => store.latestCheckpoint(cancelled));
    r.cancel(cancelled);
    await ended(cancelled);
    await ended(failed);
    expect(lines).toContain(`job ${done} succeeded`);
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^job ${cancelled} cancelled; last checkpoint: epoch \\d+$`)),
    );
    expect(lines).toContain(`job ${failed} failed: fake failure in epoch 1`);
  });

  it('cancels a queued job directly, without starting it', async () => {
    const running = fake({ epochs: 50, epochMs: 200 });
    const waiting = fake();
    const r = runner({ maxConcurrentJobs: 1 });
    expect(r.cancel(waiting).state).toBe('CANCELLED');
    r.cancel(running);
    await ended(running);
    expect(readFakeLog(log).filter((e) => e.job === waiting)).toEqual([]);
    expect(store.get(waiting).attempts).toBe(0);
  });

  it('kills a worker that ignores the cancel after the grace period', async () => {
    const id = fake({ epochs: 50, epochMs: 200, ignoreAbort: true });
    const r = runner({ stopGraceMs: 300 });
    await waitFor('the job to start', () => readFakeLog(log).length > 0);
    r.cancel(id);
    expect((await ended(id, CANCEL_WITHIN_MS)).state).toBe('CANCELLED');
  });

  it('fails a job whose worker crashes, with the exit reason', async () => {
    const crash = fake({ epochs: 3, epochMs: 100, crashAtEpoch: 2 });
    const thrown = fake({ epochs: 3, epochMs: 100, failAtEpoch: 1 });
    const noExport = fake({}, 'no-export');
    runner({ maxConcurrentJobs: 3 });
    const crashed = await ended(crash);
    expect(crashed.state).toBe('FAILED');
    expect(crashed.error).toMatch(
      /^worker exited with code 9 before the job finished: .*out of memory in epoch 2/,
    );
    expect(await ended(thrown)).toMatchObject({ state: 'FAILED', error: 'fake failure in epoch 1' });
    expect((await ended(noExport)).error).toMatch(/exports no job function named "missing"/);
  });

  it('retries a job whose worker was SIGKILLed (OOM killer): it resumes from its checkpoint and succeeds', async () => {
    const id = fake({ epochs: 3, epochMs: 150, sigkillAtEpoch: 2, faultyAttempts: 1 });
    runner({ maxRetries: 3 });
    const job = await ended(id);
    expect(job).toMatchObject({ state: 'SUCCEEDED', attempts: 2, retries: 1 });
    const starts = readFakeLog(log).filter((e) => e.event === 'start');
    // The second attempt starts after the epoch-1 checkpoint, not from scratch.
    expect(starts.map((s) => [s.attempt, s.from])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(epochsDone(id)).toEqual([1, 2, 3]);
    const messages = store.events(id).flatMap((e) => (e.body.type === 'message' ? [e.body.message] : []));
    expect(messages).toContain(
      'worker was killed by SIGKILL before the job finished; retry 1 of 3: re-queued to resume from the epoch 1 checkpoint',
    );
  });

  it('retries a job that hit a full disk (ENOSPC) from its checkpoint', async () => {
    const id = fake({ epochs: 2, epochMs: 150, enospcAtEpoch: 2, faultyAttempts: 2 });
    runner({ maxRetries: 3 });
    expect(await ended(id)).toMatchObject({ state: 'SUCCEEDED', attempts: 3, retries: 2 });
    expect(epochsDone(id)).toEqual([1, 2]);
  });

  it('fails a job once its retry budget is spent, saying how many attempts were made', async () => {
    const killed = fake({ epochs: 2, epochMs: 100, sigkillAtEpoch: 1 });
    const full = fake({ epochs: 2, epochMs: 100, enospcAtEpoch: 1 });
    runner({ maxRetries: 2, maxConcurrentJobs: 2 });
    const a = await ended(killed);
    expect(a).toMatchObject({ state: 'FAILED', attempts: 3, retries: 2 });
    expect(a.error).toBe(
      'worker was killed by SIGKILL before the job finished; gave up after 3 attempts (2 retries allowed: DEIT_JOB_MAX_RETRIES)',
    );
    const b = await ended(full);
    expect(b).toMatchObject({ state: 'FAILED', attempts: 3 });
    expect(b.error).toMatch(
      /^ENOSPC: no space left on device.*; gave up after 3 attempts \(2 retries allowed/,
    );
  });

  it('never retries a job that failed or was cancelled', async () => {
    const thrown = fake({ epochs: 2, epochMs: 100, failAtEpoch: 1 });
    runner({ maxRetries: 3 });
    expect(await ended(thrown)).toMatchObject({ state: 'FAILED', attempts: 1, retries: 0 });
  });

  it('re-queues running jobs on stop; the next runner resumes them from their checkpoint', async () => {
    const id = fake({ epochs: 3, epochMs: 300 });
    const first = runner();
    await waitFor('the first checkpoint', () => store.latestCheckpoint(id));
    await first.stop();
    const stopped = store.get(id);
    expect(stopped).toMatchObject({ state: 'QUEUED', resumes: 1 });
    const resumeFrom = store.latestCheckpoint(id);
    runner();
    expect((await ended(id)).state).toBe('SUCCEEDED');
    const starts = readFakeLog(log).filter((e) => e.event === 'start');
    expect(starts.map((s) => s.from)).toEqual([1, (resumeFrom?.epoch ?? 0) + 1]);
    expect(starts.map((s) => s.attempt)).toEqual([1, 2]);
    expect(epochsDone(id)).toEqual([1, 2, 3]);
  });

  it('stops a job that runs past its wall-time limit: it checkpoints, then fails saying why', async () => {
    const limited = fake({ epochs: 50, epochMs: 200 });
    runner({ maxJobWallMs: 700 });
    const job = await ended(limited);
    expect(job.state).toBe('FAILED');
    expect(job.error).toMatch(
      /^ran past its wall-time limit of 0\.7 s \(counted from its first start\) and was stopped; its last checkpoint is epoch \d+$/,
    );
    // Stopped by the limit, not let run: well short of 50 epochs of 200 ms.
    expect(epochsDone(limited).length).toBeLessThan(10);
    expect(store.latestCheckpoint(limited)?.path).toMatch(/-stopped\.json$/);
    expect(readFakeLog(log).some((e) => e.job === limited && e.event === 'stopped')).toBe(true);
  });

  it('lets a job within its wall-time limit finish', async () => {
    const quick = fake({ epochs: 2, epochMs: 100 });
    runner({ maxJobWallMs: 60_000 });
    expect((await ended(quick)).state).toBe('SUCCEEDED');
  });

  it('fails a job whose wall time ran out while it waited to resume, without starting it again', async () => {
    const id = fake({ epochs: 50, epochMs: 200 });
    const first = runner();
    await waitFor('the first checkpoint', () => store.latestCheckpoint(id));
    await first.stop();
    const { startedAt } = store.get(id);
    expect(store.get(id).state).toBe('QUEUED');
    const limitMs = 1000;
    await new Promise((r) =>
      setTimeout(r, Math.max(0, (startedAt?.getTime() ?? 0) + limitMs + 50 - Date.now())),
    );
    runner({ maxJobWallMs: limitMs });
    const job = await ended(id);
    expect(job).toMatchObject({
      state: 'FAILED',
      error: expect.stringMatching(/wall-time limit of 1 s .*last checkpoint is epoch/) as string,
    });
    expect(readFakeLog(log).filter((e) => e.job === id && e.event === 'start')).toHaveLength(1);
  });

  it('refuses a wall-time limit that is not positive', () => {
    expect(() => new JobRunner({ store, kinds: FAKE_KINDS, workDir: dir, maxJobWallMs: 0 })).toThrow(
      RangeError,
    );
  });

  it('recovers jobs of gone runners: dead owner at once, unknown owner once its lease expires', () => {
    const job = (owner: string, leaseMs: number): string => {
      const id = fake();
      expect(store.claimNext(owner, leaseMs)?.id).toBe(id);
      return id;
    };
    const expired = job('otherhost:1:a', -1);
    const leased = job('otherhost:2:b', 60_000);
    const dead = job('thishost:3:c', 60_000);
    const cancelling = job('otherhost:4:d', -1);
    store.transition(cancelling, 'CANCELLING');
    const crashLoop = job('otherhost:5:e', -1);
    for (let i = 0; i < 2; i++) {
      store.transition(crashLoop, 'QUEUED');
      store.claimNext('otherhost:5:e', -1);
    }
    // No kinds: this runner recovers but never claims, so nothing is re-run here.
    runner({
      kinds: {},
      maxResumes: 2,
      isOwnerAlive: (owner) => (owner.startsWith('thishost') ? false : undefined),
    });
    expect(store.get(expired)).toMatchObject({ state: 'QUEUED', resumes: 1 });
    expect(store.events(expired).at(-1)?.body).toEqual({
      type: 'message',
      message: 'runner otherhost:1:a is gone; re-queued to resume from the start',
    });
    expect(store.get(leased)).toMatchObject({ state: 'RUNNING', owner: 'otherhost:2:b' });
    expect(store.get(dead)).toMatchObject({ state: 'QUEUED', resumes: 1 });
    expect(store.get(cancelling).state).toBe('CANCELLED');
    expect(store.get(crashLoop)).toMatchObject({
      state: 'FAILED',
      error: 'runner otherhost:5:e is gone again; gave up after 2 resumes',
    });
  });
});
