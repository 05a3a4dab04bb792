/**
 * Across processes: the trainer killed mid-epoch loses and duplicates nothing, and concurrent runners
 * never claim the same job.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTerminal } from '../src/job';
import { JobRunner } from '../src/job-runner';
import { JobStore } from '../src/job-store';
import { readFakeLog } from './fixtures/fake-job';
import { FAKE_KINDS, REGISTER_TS, TS_WORKER, pidAlive, waitFor } from './fixtures/support';

/** Node start-up plus on-the-fly compilation, per process, on two shared cores. */
const PROCESS_START_MARGIN_MS = 1500;

let dir: string;
let store: JobStore;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'job-processes-'));
  store = JobStore.open(join(dir, 'jobs.sqlite'));
});
afterEach(async () => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  store.close();
  await rm(dir, { recursive: true, force: true });
});

function start(script: string, args: string[]): { child: ChildProcess; output: Promise<string> } {
  const child = spawn(process.execPath, ['-r', REGISTER_TS, join(__dirname, 'fixtures', script), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const output = new Promise<string>((resolve, reject) =>
    child.on('close', (code, signal) =>
      code === 0 || signal === 'SIGKILL'
        ? resolve(stdout)
        : reject(new Error(`${script} exited with ${code}: ${stderr}`)),
    ),
  );
  return { child, output };
}

describe('fault tolerance', () => {
  it('a trainer killed mid-epoch: on restart every job finishes, resumed from its checkpoint, no epoch run twice', async () => {
    const log = join(dir, 'fake.jsonl');
    const spec = { epochs: 3, epochMs: 400, log };
    const ids = [0, 1, 2].map(() => store.create({ kind: 'fake', spec }).job.id);
    const [first = '', second = '', third = ''] = ids;

    const trainer = start('runner-main.ts', [join(dir, 'jobs.sqlite'), join(dir, 'work'), '2']);
    // Mid-epoch 2 of the first job: epoch 1 is checkpointed and recorded, epoch 2 has begun.
    await waitFor(
      'the first job to be in its second epoch',
      () =>
        store.latestCheckpoint(first)?.epoch === 1 &&
        readFakeLog(log).some((e) => e.job === first && e.event === 'epoch-start' && e.epoch === 2),
    );
    trainer.child.kill('SIGKILL');
    await trainer.output;
    const workers = [...new Set(readFakeLog(log).map((e) => e.pid))];
    // Orphaned workers stop by themselves as soon as their runner's IPC channel closes.
    await waitFor('the orphaned workers to exit', () => workers.every((pid) => !pidAlive(pid)), 5000);
    expect(store.get(first).state).toBe('RUNNING');
    expect(store.get(third).state).toBe('QUEUED');

    const restarted = new JobRunner({
      store,
      kinds: FAKE_KINDS,
      workDir: join(dir, 'work'),
      maxConcurrentJobs: 2,
      worker: TS_WORKER,
      pollIntervalMs: 50,
    });
    restarted.start();
    try {
      const jobs = await waitFor(
        'every job to end',
        () => {
          const all = ids.map((id) => store.get(id));
          return all.every((j) => isTerminal(j.state)) && all;
        },
        30_000,
      );
      expect(jobs.map((j) => j.state)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    } finally {
      await restarted.stop();
    }

    const entries = readFakeLog(log);
    for (const id of ids) {
      const done = entries.filter((e) => e.job === id && e.event === 'epoch-done').map((e) => e.epoch);
      expect(done, `epochs completed by ${id}`).toEqual([1, 2, 3]);
    }
    const firstStarts = entries.filter((e) => e.job === first && e.event === 'start');
    expect(firstStarts.map((s) => s.from)).toEqual([1, 2]);
    expect(store.get(first)).toMatchObject({ resumes: 1, attempts: 2 });
    expect(store.events(first).map((e) => e.body)).toContainEqual({
      type: 'message',
      message: 'resuming from the epoch 1 checkpoint',
    });
    // The job that had not started yet was simply run once.
    expect(store.get(third)).toMatchObject({ resumes: 0, attempts: 1 });
    expect(entries.filter((e) => e.job === third && e.event === 'start')).toHaveLength(1);
    // The second job was running too: resumed (from its checkpoint if it had one), never run twice.
    expect(store.get(second).resumes).toBe(1);
  });
});

describe('claimNext across processes', () => {
  it('gives each job to exactly one of several competing processes', async () => {
    const jobs = 60;
    const ids = Array.from({ length: jobs }, () => store.create({ kind: 'fake', spec: {} }).job.id);
    const startAt = String(Date.now() + PROCESS_START_MARGIN_MS);
    const claimers = ['a', 'b', 'c'].map((owner) =>
      start('claim-worker.ts', [join(dir, 'jobs.sqlite'), owner, startAt]),
    );
    const won = (await Promise.all(claimers.map((c) => c.output))).map((out) => JSON.parse(out) as string[]);
    const all = won.flat();
    expect(all).toHaveLength(jobs);
    expect(new Set(all)).toEqual(new Set(ids));
    for (const id of ids) expect(store.get(id)).toMatchObject({ state: 'SUCCEEDED', attempts: 1 });
  });
});
