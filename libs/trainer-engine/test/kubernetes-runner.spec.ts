/**
 * Job mode against a fake kube-apiserver: the Job created for each job (exactly the built spec), no
 * duplicate after a trainer restart, the pod's event file tailed into the store, the Job's status
 * mapped to the job's state, cancel deleting the Job.
 */
import { FailedPreconditionError } from '@deit-serve/core';
import { buildFineTuneJob, fineTuneJobName, type FineTuneJobOptions } from '@deit-serve/k8s-jobs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENTS_FILE, EventFileWriter, jobFolder, readJobFile, type JobFileRecord } from '../src/job-files';
import { JobStore } from '../src/job-store';
import { KubernetesJobRunner, type KubernetesRunnerOptions } from '../src/kubernetes-runner';
import { FakeBatchApi } from './fixtures/fake-batch-api';

const NAMESPACE = 'deit-serve';
const OWNER = `kubernetes/${NAMESPACE}`;
const SPEC = { outputModel: 'fm', epochs: 2 };
const JOB: Omit<FineTuneJobOptions, 'jobId' | 'namespace'> = {
  image: 'deit-serve/trainer:0.1.0',
  serviceAccountName: 'deit-finetune',
  registryClaimName: 'deit-registry',
  workVolume: { type: 'persistentVolumeClaim', claimName: 'deit-finetune-work' },
  env: { DEIT_TRAINING_BACKEND: 'wasm' },
  activeDeadlineSeconds: 86_400,
};

let dir: string;
let work: string;
let store: JobStore;
let api: FakeBatchApi;
const runners: KubernetesJobRunner[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k8s-runner-'));
  work = join(dir, 'work');
  store = JobStore.open(join(dir, 'jobs.sqlite'));
  api = new FakeBatchApi();
});
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop();
  store.close();
  await rm(dir, { recursive: true, force: true });
});

/** A runner that only works when told to (poll), as if its timer never fired. */
function runner(overrides: Partial<KubernetesRunnerOptions> = {}): KubernetesJobRunner {
  const r = new KubernetesJobRunner({
    store,
    api,
    namespace: NAMESPACE,
    job: JOB,
    workDir: work,
    maxConcurrentJobs: 2,
    pollIntervalMs: 3_600_000,
    resultGraceMs: 0,
    ...overrides,
  });
  runners.push(r);
  return r;
}

/** The pod's side: appends records to the job's event file, as runPodJob does. */
function pod(jobId: string, ...records: JobFileRecord[]): void {
  const writer = EventFileWriter.open(join(jobFolder(work, jobId), EVENTS_FILE));
  for (const record of records) writer.append(record);
  writer.close();
}

const start = (attempt: number): JobFileRecord => ({
  type: 'start',
  attempt,
  pod: `pod-${attempt}`,
  time: attempt,
});

function messages(jobId: string): string[] {
  return store.events(jobId).flatMap((e) => (e.body.type === 'message' ? [e.body.message] : []));
}

function newJob(): string {
  return store.create({ kind: 'fine-tune', spec: SPEC }).job.id;
}

describe('KubernetesJobRunner', () => {
  it('creates one Job per started job, exactly as built, after writing the job file for its pod', async () => {
    const id = newJob();
    const other = store.create({ kind: 'other-kind', spec: {} }).job.id;
    await runner().poll();

    const expected = buildFineTuneJob({ ...JOB, jobId: id, namespace: NAMESPACE });
    expect(api.calls[0]).toEqual({
      method: 'createNamespacedJob',
      request: {
        namespace: NAMESPACE,
        body: expected,
        fieldManager: 'deit-trainer',
        fieldValidation: 'Strict',
      },
    });
    expect(api.creates()).toHaveLength(1);
    expect(readJobFile(jobFolder(work, id))).toEqual({
      version: 1,
      jobId: id,
      kind: 'fine-tune',
      spec: SPEC,
    });
    expect(store.get(id)).toMatchObject({ state: 'RUNNING', owner: OWNER });
    expect(messages(id)).toContain(`Kubernetes Job ${NAMESPACE}/${fineTuneJobName(id)} created`);
    expect(store.get(other).state).toBe('QUEUED'); // not a kind the image runs
  });

  it('has at most maxConcurrentJobs Jobs; the next one starts when one ends', async () => {
    const [a = '', b = '', c = ''] = [newJob(), newJob(), newJob()];
    const r = runner();
    await r.poll();
    expect(api.creates().map((j) => j.metadata.name)).toEqual([fineTuneJobName(a), fineTuneJobName(b)]);
    expect(store.get(c).state).toBe('QUEUED');
    pod(a, start(1), { type: 'done', result: { version: 1 } });
    await r.poll();
    await r.poll();
    expect(store.get(a).state).toBe('SUCCEEDED');
    expect(api.creates().map((j) => j.metadata.name)).toContain(fineTuneJobName(c));
    expect(r.runningJobs().sort()).toEqual([b, c].sort());
  });

  it("tails the pod's event file into the store; the recorded result makes the job SUCCEEDED", async () => {
    const id = newJob();
    const r = runner();
    await r.poll();
    const name = fineTuneJobName(id);
    api.setStatus(name, { active: 1, ready: 1 });
    const evaluation = { epoch: 1, dataset: 'val', images: 8, cls: { top1: 0.5, top5: 1 } };
    pod(
      id,
      start(1),
      { type: 'backend', name: 'tfjs-wasm' },
      { type: 'progress', progress: { epoch: 1, epochs: 2, step: 1, stepsPerEpoch: 2 } },
      { type: 'progress', progress: { epoch: 1, epochs: 2, step: 2, stepsPerEpoch: 2 } },
      { type: 'eval', eval: evaluation },
      { type: 'checkpoint', path: '/work/jobs/x/checkpoint-1', epoch: 1 },
      { type: 'log', message: 'teacher top-1: 0.9' },
    );
    await r.poll();
    const job = store.get(id);
    expect(job).toMatchObject({ state: 'RUNNING', backend: 'tfjs-wasm' });
    expect(job.progress).toEqual({ epoch: 1, epochs: 2, step: 2, stepsPerEpoch: 2 });
    expect(
      store
        .events(id)
        .filter((e) => e.body.type === 'eval')
        .map((e) => e.body),
    ).toEqual([{ type: 'eval', eval: evaluation }]);
    expect(store.checkpoints(id).map((c) => [c.epoch, c.path])).toEqual([[1, '/work/jobs/x/checkpoint-1']]);
    expect(messages(id)).toEqual(
      expect.arrayContaining([
        'pod pod-1 started attempt 1',
        'training backend: tfjs-wasm',
        'checkpoint written (epoch 1)',
        'teacher top-1: 0.9',
      ]),
    );

    const result = { model: 'fm', version: 2, sha256: 'ab', promoted: false, promotionReason: 'none' };
    pod(id, { type: 'done', result });
    await r.poll();
    expect(store.get(id)).toMatchObject({ state: 'SUCCEEDED', result });
    expect(r.runningJobs()).toEqual([]);
  });

  it('a restarted trainer takes its jobs up: no second Job, nothing lost, nothing applied twice', async () => {
    const id = newJob();
    const first = runner();
    await first.poll();
    pod(
      id,
      start(1),
      { type: 'eval', eval: { epoch: 1, dataset: 'val', images: 8 } },
      { type: 'log', message: 'one' },
    );
    await first.poll();
    await first.stop();
    expect(store.get(id).state).toBe('RUNNING'); // the Job keeps running without the trainer

    pod(id, { type: 'log', message: 'two' }); // written while no trainer was there
    const second = runner();
    await second.poll();
    await second.poll();
    expect(api.jobs.size).toBe(1);
    // It asked for the Job again (it cannot know whether the last trainer got that far) and was told
    // it exists; nothing was created.
    expect(api.creates().map((j) => j.metadata.name)).toEqual([fineTuneJobName(id), fineTuneJobName(id)]);
    expect(messages(id).filter((m) => m.endsWith('created'))).toHaveLength(1);
    expect(messages(id).filter((m) => m === 'one' || m === 'two')).toEqual(['one', 'two']);
    expect(store.events(id).filter((e) => e.body.type === 'eval')).toHaveLength(1);
    expect(second.runningJobs()).toEqual([id]);
  });

  it('creates the Job of a job claimed by a trainer that died before creating it', async () => {
    const claimed = newJob();
    store.claimNext(OWNER, 30_000, ['fine-tune']);
    await runner().poll();
    expect(api.creates().map((j) => j.metadata.name)).toEqual([fineTuneJobName(claimed)]);
    expect(readJobFile(jobFolder(work, claimed)).jobId).toBe(claimed);
  });

  it("maps a failed Job to FAILED, with its last pod's error and the Job controller's reason", async () => {
    const id = newJob();
    const r = runner();
    await r.poll();
    const name = fineTuneJobName(id);
    pod(id, start(1), { type: 'failed', error: 'ECONNRESET reading the teacher', permanent: false });
    api.setStatus(name, { failed: 1 });
    await r.poll();
    expect(store.get(id).state).toBe('RUNNING'); // Kubernetes retries
    expect(messages(id)).toEqual(
      expect.arrayContaining([
        'pod attempt failed: ECONNRESET reading the teacher; Kubernetes retries it within the backoff limit',
        'pod failed (1 so far); Kubernetes starts another, which resumes from the last checkpoint',
      ]),
    );

    pod(id, start(2), { type: 'failed', error: 'out of memory in matMul', permanent: false });
    api.setStatus(name, {
      failed: 3,
      conditions: [
        {
          type: 'Failed',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: 'Job has reached the specified backoff limit',
        },
      ],
    });
    await r.poll();
    const failed = store.get(id);
    expect(failed.state).toBe('FAILED');
    expect(failed.error).toBe(
      `out of memory in matMul [Kubernetes Job ${name}: BackoffLimitExceeded: Job has reached the specified backoff limit]`,
    );
  });

  it('a pod that died without a word (OOM-killed) fails the job with where to look', async () => {
    const id = newJob();
    const r = runner();
    await r.poll();
    pod(id, start(1), { type: 'failed', error: 'earlier failure', permanent: false }, start(2));
    api.setStatus(fineTuneJobName(id), {
      failed: 2,
      conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: '' }],
    });
    await r.poll();
    expect(store.get(id).error).toBe(
      `its last pod ended without reporting an error (killed? see kubectl describe pods -l deit-serve.io/job-id=${id}) ` +
        `[Kubernetes Job ${fineTuneJobName(id)}: BackoffLimitExceeded]`,
    );
  });

  it('a Job that completed without a recorded result fails after the grace period', async () => {
    const patient = runner({ resultGraceMs: 3_600_000 });
    const id = newJob();
    await patient.poll();
    api.setStatus(fineTuneJobName(id), { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] });
    await patient.poll();
    expect(store.get(id).state).toBe('RUNNING'); // the done record may not be visible yet
    await patient.stop();
    await runner({ resultGraceMs: 0 }).poll();
    expect(store.get(id)).toMatchObject({
      state: 'FAILED',
      error: expect.stringMatching(/recorded no result/),
    });
  });

  it('cancel deletes the Job with its pods in the background; the job ends CANCELLED', async () => {
    const id = newJob();
    const queued = store.create({ kind: 'fine-tune', spec: SPEC }).job.id;
    const r = runner({ maxConcurrentJobs: 1 });
    await r.poll();
    expect(r.cancel(queued).state).toBe('CANCELLED'); // no Job to delete
    expect(r.cancel(id).state).toBe('CANCELLING');
    await r.poll();
    expect(api.calls.filter((c) => c.method === 'deleteNamespacedJob')).toEqual([
      {
        method: 'deleteNamespacedJob',
        request: { name: fineTuneJobName(id), namespace: NAMESPACE, propagationPolicy: 'Background' },
      },
    ]);
    expect(api.jobs.size).toBe(0);
    expect(store.get(id).state).toBe('CANCELLED');
    expect(() => r.cancel(id)).toThrow(FailedPreconditionError);
  });

  it('a cancel that fails to reach the API server is retried; a job that finished first keeps its result', async () => {
    const [a = '', b = ''] = [newJob(), newJob()];
    const r = runner();
    await r.poll();
    api.failNext('deleteNamespacedJob', new Error('ECONNREFUSED'));
    r.cancel(a);
    await r.poll();
    expect(store.get(a).state).toBe('CANCELLING');
    await r.poll();
    expect(store.get(a).state).toBe('CANCELLED');

    pod(b, start(1), { type: 'done', result: { version: 9 } });
    r.cancel(b);
    await r.poll();
    expect(store.get(b)).toMatchObject({ state: 'SUCCEEDED', result: { version: 9 } });
  });

  it('a Job deleted outside the trainer fails its job', async () => {
    const id = newJob();
    const r = runner();
    await r.poll();
    api.jobs.delete(fineTuneJobName(id));
    await r.poll();
    expect(store.get(id)).toMatchObject({ state: 'FAILED', error: expect.stringMatching(/disappeared/) });
  });

  it('Kubernetes refusing a Job fails the job; an unreachable API server is retried', async () => {
    const refused = newJob();
    const r = runner({ maxConcurrentJobs: 1 });
    api.failNext('createNamespacedJob', Object.assign(new Error('jobs.batch is forbidden'), { code: 403 }));
    await r.poll();
    expect(store.get(refused)).toMatchObject({
      state: 'FAILED',
      error: `Kubernetes refused the Job ${fineTuneJobName(refused)}: jobs.batch is forbidden`,
    });

    const retried = newJob();
    api.failNext('createNamespacedJob', new Error('connect ECONNREFUSED 10.0.0.1:443'));
    await r.poll();
    expect(store.get(retried).state).toBe('RUNNING');
    expect(api.jobs.size).toBe(0);
    api.failNext('listNamespacedJob', new Error('connect ECONNREFUSED 10.0.0.1:443'));
    await r.poll(); // created now; the status is unknown this pass and changes nothing
    expect(api.jobs.has(fineTuneJobName(retried))).toBe(true);
    expect(store.get(retried).state).toBe('RUNNING');
  });

  it('re-queues jobs of a runner that is gone and runs them as Jobs', async () => {
    const id = newJob();
    store.claimNext('old-host:1234:abcd', -1, ['fine-tune']); // its lease has expired
    await runner().poll();
    await runner().poll();
    expect(store.get(id)).toMatchObject({ state: 'RUNNING', owner: OWNER, resumes: 1 });
    expect(api.jobs.has(fineTuneJobName(id))).toBe(true);
  });

  it('refuses a configuration that cannot make a valid Job', () => {
    expect(() => runner({ job: { ...JOB, image: '' } })).toThrow(/bad image/);
  });
});
