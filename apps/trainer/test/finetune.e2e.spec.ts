import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { FASHION_MNIST_LABELS } from '@deit-serve/datasets';
import { nativeBuildInstalled } from '@deit-serve/model/testing';
import { packageAndPublish, presetWeights } from '@deit-serve/packaging';
import { healthV1Client, inferenceV1Client, trainerV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { healthCheck } from '@deit-serve/testing';
import { freePort } from '@deit-serve/grpc-server';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The product end to end, as deployed: registry + inference + trainer as separate processes from the
 * build. A tiny hard-distillation fine-tune on real Fashion-MNIST images publishes a new version, the
 * promotion policy moves an alias, and the running inference service answers from the new version.
 */
const root = join(__dirname, '..', '..', '..');
const JOB_TIMEOUT_MS = 420_000;

function startService(app: 'inference' | 'trainer', env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [join(root, 'dist', 'apps', app, 'src', 'main.js')], {
    cwd: root,
    env: { ...process.env, DEIT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return child;
}

async function waitServing(address: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await healthCheck(address)).status === healthV1Client.HealthCheckResponse_ServingStatus.SERVING)
        return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${address} did not become SERVING`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const unary =
  <Req, Res>(fn: (req: Req, md: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown) =>
  (req: Req) =>
    new Promise<Res>((resolve, reject) => fn(req, new Metadata(), (e, r) => (e ? reject(e) : resolve(r))));

describe('fine-tune end to end (registry + inference + trainer)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deit-e2e-train-'));
  const registryDir = join(dir, 'registry');
  const children: ChildProcess[] = [];
  let trainer: trainerV1Client.TrainerServiceClient;
  let trainerEnv: Record<string, string>;
  let trainerProcess: ChildProcess;
  let inference: inferenceV1Client.InferenceServiceClient;

  beforeAll(async () => {
    execFileSync(process.execPath, [join(root, 'tools', 'scripts', 'build.mjs')], {
      cwd: root,
      stdio: 'ignore',
    });
    const registry = await DirectoryRegistry.open(registryDir, { create: true });
    for (const [name, preset] of [
      ['fm', 'deit_pico_distilled_patch4_28'],
      ['fm-teacher', 'regnety_fmnist_28'],
    ] as const) {
      const w = presetWeights({ preset, seed: 1 });
      await packageAndPublish(registry, name, {
        spec: w.spec,
        preset,
        weights: w.weights,
        labels: [...FASHION_MNIST_LABELS],
        input: w.input,
      });
      await registry.setAlias(name, 'production', 1);
    }
    const [inferencePort, trainerPort] = [await freePort(), await freePort()];
    children.push(
      startService('inference', {
        DEIT_REGISTRY_DIR: registryDir,
        DEIT_GRPC_PORT: String(inferencePort),
        DEIT_METRICS_PORT: '0',
        DEIT_DEFAULT_MODEL: 'fm',
        DEIT_REGISTRY_WATCH: 'poll',
        DEIT_REGISTRY_POLL_MS: '200',
      }),
    );
    trainerEnv = {
      DEIT_REGISTRY_DIR: registryDir,
      DEIT_TRAINER_GRPC_PORT: String(trainerPort),
      DEIT_JOBS_DB: join(dir, 'jobs.sqlite'),
      DEIT_TRAINER_WORK_DIR: join(dir, 'work'),
    };
    trainerProcess = startService('trainer', trainerEnv);
    children.push(trainerProcess);
    await waitServing(`127.0.0.1:${inferencePort}`);
    await waitServing(`127.0.0.1:${trainerPort}`);
    trainer = new trainerV1Client.TrainerServiceClient(
      `127.0.0.1:${trainerPort}`,
      credentials.createInsecure(),
    );
    inference = new inferenceV1Client.InferenceServiceClient(
      `127.0.0.1:${inferencePort}`,
      credentials.createInsecure(),
    );
  }, 120_000);

  afterAll(async () => {
    trainer?.close();
    inference?.close();
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) =>
            c.exitCode !== null || c.signalCode !== null
              ? resolve()
              : (c.once('exit', () => resolve()), c.kill('SIGTERM')),
          ),
      ),
    );
  });

  const spec = (overrides: object = {}): trainerV1Client.FineTuneSpec =>
    trainerV1Client.FineTuneSpec.fromPartial({
      outputModel: 'fm',
      student: { registryRef: 'fm@production' },
      teacher: { registryRef: 'fm-teacher@production' },
      dataset: { fashionMnist: {}, maxTrainImages: 192, maxEvalImages: 64 },
      distillation: { type: trainerV1Client.DistillationType.DISTILLATION_TYPE_HARD },
      optimization: { epochs: 1, batchSize: 32, lr: 1e-3, lrFixed: true, warmupEpochs: 0 },
      seed: 7,
      promotion: { alias: 'candidate', minImprovement: 0 },
      ...overrides,
    } as trainerV1Client.FineTuneSpec);

  it('refuses a bad spec with every problem at once', async () => {
    const start = unary<trainerV1Client.StartFineTuneRequest, trainerV1Client.StartFineTuneResponse>(
      trainer.startFineTune.bind(trainer),
    );
    const error = (await start({
      spec: spec({ outputModel: '', optimization: { epochs: 0, batchSize: 0 } }),
      requestId: '',
    }).catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/output_model/);
    expect(error.details).toMatch(/epochs/);
    expect(error.details).toMatch(/batch_size/);
    const unknown = (await start({ spec: spec({ teacher: { registryRef: 'nope' } }), requestId: '' }).catch(
      (e: unknown) => e,
    )) as ServiceError;
    expect(unknown.code).toBe(status.INVALID_ARGUMENT);
    expect(unknown.details).toMatch(/nope/);
  });

  it(
    'runs a hard-distillation fine-tune, publishes and promotes it, and inference serves it without a restart',
    async () => {
      const started = await unary<
        trainerV1Client.StartFineTuneRequest,
        trainerV1Client.StartFineTuneResponse
      >(trainer.startFineTune.bind(trainer))({ spec: spec(), requestId: 'e2e-1' });
      const jobId = started.job!.id;
      const states: number[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = trainer.watchJob({ jobId });
        call.on('data', (r: trainerV1Client.WatchJobResponse) => {
          const state = r.event?.state;
          if (state !== undefined) states.push(state);
          if (state === trainerV1Client.JobState.JOB_STATE_SUCCEEDED) resolve();
          if (
            state === trainerV1Client.JobState.JOB_STATE_FAILED ||
            state === trainerV1Client.JobState.JOB_STATE_CANCELLED
          ) {
            reject(new Error(`job ended in state ${state}`));
          }
        });
        call.on('error', reject);
      });
      expect(states).toContain(trainerV1Client.JobState.JOB_STATE_RUNNING);
      const { job } = await unary<trainerV1Client.GetJobRequest, trainerV1Client.GetJobResponse>(
        trainer.getJob.bind(trainer),
      )({ jobId });
      expect(job?.result).toMatchObject({ model: 'fm', version: 2, promoted: true });
      expect(job?.result?.finalEval?.teacherTop1).toBeGreaterThanOrEqual(0);
      // Trained on native TensorFlow wherever `npm ci` built it (tools/scripts/install-native.mjs).
      expect(job?.backend).toBe(nativeBuildInstalled() ? 'tfjs-tensorflow' : 'tfjs-wasm');

      // The inference service follows the registry: the promoted alias now routes to version 2.
      const image = {
        tensor: { shape: [3, 28, 28], data: new Uint8Array(new Float32Array(3 * 28 * 28).buffer) },
      };
      const classify = unary<inferenceV1Client.ClassifyRequest, inferenceV1Client.ClassifyResponse>(
        inference.classify.bind(inference),
      );
      let answered = 0;
      for (let i = 0; i < 50 && answered !== 2; i++) {
        answered = (
          await classify(inferenceV1Client.ClassifyRequest.fromPartial({ model: 'fm@candidate', ...image }))
        ).model!.version;
        if (answered !== 2) await new Promise((r) => setTimeout(r, 200));
      }
      expect(answered).toBe(2);
    },
    JOB_TIMEOUT_MS,
  );

  const getJob = (jobId: string) =>
    unary<trainerV1Client.GetJobRequest, trainerV1Client.GetJobResponse>(trainer.getJob.bind(trainer))({
      jobId,
    }).then((r) => r.job!);

  async function waitFor(jobId: string, done: (job: trainerV1Client.Job) => boolean, timeoutMs: number) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const job = await getJob(jobId).catch(() => undefined); // the trainer may be restarting
      if (job && done(job)) return job;
      if (Date.now() > until)
        throw new Error(`job ${jobId}: condition not met in ${timeoutMs} ms (${JSON.stringify(job?.state)})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it(
    'survives the trainer being killed mid-epoch: the job resumes from its checkpoint and publishes once',
    async () => {
      const start = unary<trainerV1Client.StartFineTuneRequest, trainerV1Client.StartFineTuneResponse>(
        trainer.startFineTune.bind(trainer),
      );
      const { job } = await start({
        spec: spec({
          outputModel: 'fm-resumed',
          dataset: { fashionMnist: {}, maxTrainImages: 320, maxEvalImages: 32 },
          optimization: { epochs: 3, batchSize: 32, lr: 1e-3, lrFixed: true, warmupEpochs: 0 },
          promotion: { alias: '', minImprovement: 0 },
        }),
        requestId: 'e2e-resume',
      });
      const jobId = job!.id;
      // Kill the trainer (and with it the job's worker) once epoch 2 is under way.
      await waitFor(jobId, (j) => (j.progress?.epoch ?? 0) >= 2 && (j.progress?.step ?? 0) >= 1, 300_000);
      trainerProcess.kill('SIGKILL');
      await new Promise((r) => trainerProcess.once('exit', r));
      trainerProcess = startService('trainer', trainerEnv);
      children.push(trainerProcess);
      await waitServing(`127.0.0.1:${trainerEnv['DEIT_TRAINER_GRPC_PORT']}`);
      const finished = await waitFor(
        jobId,
        (j) =>
          j.state === trainerV1Client.JobState.JOB_STATE_SUCCEEDED ||
          j.state === trainerV1Client.JobState.JOB_STATE_FAILED,
        300_000,
      );
      expect(finished.error).toBe('');
      expect(finished.state).toBe(trainerV1Client.JobState.JOB_STATE_SUCCEEDED);
      expect(finished.resumes).toBeGreaterThanOrEqual(1);
      const registry = await DirectoryRegistry.open(registryDir);
      expect(await registry.listVersions('fm-resumed')).toEqual([1]); // published exactly once
    },
    JOB_TIMEOUT_MS,
  );

  it(
    'cancels a running job within seconds',
    async () => {
      const start = unary<trainerV1Client.StartFineTuneRequest, trainerV1Client.StartFineTuneResponse>(
        trainer.startFineTune.bind(trainer),
      );
      const { job } = await start({
        spec: spec({
          outputModel: 'fm-cancelled',
          optimization: { epochs: 50, batchSize: 32, lr: 1e-3, lrFixed: true, warmupEpochs: 0 },
        }),
        requestId: 'e2e-cancel',
      });
      const jobId = job!.id;
      await waitFor(jobId, (j) => (j.progress?.step ?? 0) >= 1, 120_000);
      const asked = Date.now();
      await unary<trainerV1Client.CancelJobRequest, trainerV1Client.CancelJobResponse>(
        trainer.cancelJob.bind(trainer),
      )({
        jobId,
      });
      const cancelled = await waitFor(
        jobId,
        (j) => j.state === trainerV1Client.JobState.JOB_STATE_CANCELLED,
        30_000,
      );
      expect(cancelled.state).toBe(trainerV1Client.JobState.JOB_STATE_CANCELLED);
      expect(Date.now() - asked).toBeLessThan(15_000);
    },
    JOB_TIMEOUT_MS,
  );
});
