import { InvalidArgumentError } from '@deit-serve/core';
import { EXIT_CODE_PERMANENT_FAILURE } from '@deit-serve/k8s-jobs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobAbortedError, type JobContext, type JobFunction } from './job-function';
import { EVENTS_FILE, EventFileWriter, readEventFile, writeJobFile } from './job-files';
import { isPermanentFailure, POD_EXIT, runPodJob } from './pod-job';

let work: string;
let dir: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'pod-job-'));
  dir = join(work, 'jobs', 'job-1');
  writeJobFile(dir, { jobId: 'job-1', kind: 'fake', spec: { epochs: 2 } });
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const events = () => readEventFile(join(dir, EVENTS_FILE));

function run(fn: JobFunction, controller = new AbortController()): Promise<number> {
  return runPodJob({
    jobId: 'job-1',
    jobDir: dir,
    functions: { fake: fn },
    signal: controller.signal,
    pod: 'pod-a',
  });
}

describe('runPodJob', () => {
  it("runs the job file's kind with a context on the job folder and records what it reports", async () => {
    let seen: JobContext | undefined;
    const code = await run(async (ctx) => {
      seen = ctx;
      ctx.report.backend('tfjs-wasm');
      ctx.report.progress({ epoch: 1, epochs: 2, step: 1, stepsPerEpoch: 1 });
      await ctx.report.checkpoint(join(ctx.workDir, 'c1'), 1);
      return { version: 7 };
    });
    expect(code).toBe(POD_EXIT.ok);
    expect(seen).toMatchObject({ jobId: 'job-1', spec: { epochs: 2 }, workDir: dir, attempt: 1 });
    expect(seen?.resumeFrom).toBeUndefined();
    expect(events()).toEqual([
      { type: 'start', attempt: 1, pod: 'pod-a', time: expect.any(Number) },
      { type: 'backend', name: 'tfjs-wasm' },
      { type: 'progress', progress: { epoch: 1, epochs: 2, step: 1, stepsPerEpoch: 1 } },
      { type: 'checkpoint', path: join(dir, 'c1'), epoch: 1 },
      { type: 'done', result: { version: 7 } },
    ]);
  });

  it('a restarted pod is the next attempt and resumes from the last checkpoint recorded', async () => {
    const writer = EventFileWriter.open(join(dir, EVENTS_FILE));
    writer.append({ type: 'start', attempt: 1, time: 1 });
    writer.append({ type: 'checkpoint', path: '/work/jobs/job-1/c1', epoch: 1 });
    writer.close(); // the first pod was OOM-killed here
    let seen: JobContext | undefined;
    expect(await run((ctx) => ((seen = ctx), Promise.resolve(null)))).toBe(POD_EXIT.ok);
    expect(seen).toMatchObject({ attempt: 2, resumeFrom: { path: '/work/jobs/job-1/c1', epoch: 1 } });
    expect(events()[2]).toEqual({
      type: 'start',
      attempt: 2,
      pod: 'pod-a',
      resumeFrom: { path: '/work/jobs/job-1/c1', epoch: 1 },
      time: expect.any(Number),
    });
  });

  it('does not run a job again whose result is recorded', async () => {
    const writer = EventFileWriter.open(join(dir, EVENTS_FILE));
    writer.append({ type: 'done', result: 1 });
    writer.close();
    let ran = false;
    expect(await run(() => ((ran = true), Promise.resolve(null)))).toBe(POD_EXIT.ok);
    expect(ran).toBe(false);
  });

  it('exits so that Kubernetes retries transient failures and stops on permanent ones', async () => {
    expect(await run(() => Promise.reject(new Error('socket hang up')))).toBe(POD_EXIT.failed);
    expect(events().at(-1)).toEqual({ type: 'failed', error: 'socket hang up', permanent: false });
    expect(await run(() => Promise.reject(new InvalidArgumentError('dataset: no such folder')))).toBe(
      EXIT_CODE_PERMANENT_FAILURE,
    );
    expect(events().at(-1)).toEqual({ type: 'failed', error: 'dataset: no such folder', permanent: true });
    expect(
      events()
        .filter((r) => r.type === 'start')
        .map((r) => r.type === 'start' && r.attempt),
    ).toEqual([1, 2]);
  });

  it('on SIGTERM the job checkpoints and stops, and the pod says so', async () => {
    const controller = new AbortController();
    const code = await run(async (ctx) => {
      controller.abort(new JobAbortedError('shutdown'));
      await ctx.report.checkpoint('/work/jobs/job-1/stop', 1);
      throw ctx.signal.reason;
    }, controller);
    expect(code).toBe(POD_EXIT.stopped);
    expect(events().slice(-2)).toEqual([
      { type: 'checkpoint', path: '/work/jobs/job-1/stop', epoch: 1 },
      { type: 'stopped', reason: 'shutdown' },
    ]);
  });

  it('fails permanently for a job file of another job or a kind the image does not run', async () => {
    writeJobFile(dir, { jobId: 'job-2', kind: 'fake', spec: {} });
    expect(await run(() => Promise.resolve(null))).toBe(POD_EXIT.permanent);
    expect(events().at(-1)).toMatchObject({
      type: 'failed',
      permanent: true,
      error: expect.stringMatching(/job-2/),
    });
    writeJobFile(dir, { jobId: 'job-1', kind: 'other', spec: {} });
    expect(await run(() => Promise.resolve(null))).toBe(POD_EXIT.permanent);
    expect(events().at(-1)).toMatchObject({ error: 'this image runs no "other" jobs' });
  });

  it('classifies errors', () => {
    expect(isPermanentFailure(new InvalidArgumentError('x'))).toBe(true);
    expect(isPermanentFailure(Object.assign(new Error('x'), { name: 'ConfigError' }))).toBe(true);
    expect(isPermanentFailure(new Error('ECONNRESET'))).toBe(false);
  });
});
