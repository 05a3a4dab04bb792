import 'reflect-metadata';
import { credentials, Metadata } from '@grpc/grpc-js';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import {
  buildFineTuneJob,
  FINETUNE_JOB_SCRIPT,
  fineTuneJobName,
  type BatchJobsApi,
  type Job,
  type JobView,
} from '@deit-serve/k8s-jobs';
import { PROTO_PACKAGES, trainerV1Client } from '@deit-serve/proto';
import { startTestService, type TestService } from '@deit-serve/testing';
import {
  JobStore,
  KubernetesJobRunner,
  validateFineTuneSpec,
  type JobExecutor,
} from '@deit-serve/trainer-engine';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from './app.module';
import { jobEnvironment, kubernetesRunnerOptions } from './job-mode';
import { JOB_EXECUTOR } from './tokens';

const workspaceRoot = join(__dirname, '..', '..', '..');

/** The three calls job mode makes, against an in-memory set of Jobs. */
class RecordingBatchApi implements BatchJobsApi {
  readonly jobs = new Map<string, Job>();
  readonly deleted: unknown[] = [];
  createNamespacedJob(request: { namespace: string; body: Job }): Promise<unknown> {
    this.jobs.set(request.body.metadata.name, request.body);
    return Promise.resolve(request.body);
  }
  listNamespacedJob(): Promise<{ items: JobView[] }> {
    return Promise.resolve({
      items: [...this.jobs.values()].map((j) => ({ metadata: j.metadata, status: { active: 1 } })),
    });
  }
  deleteNamespacedJob(request: { name: string }): Promise<unknown> {
    this.deleted.push(request);
    this.jobs.delete(request.name);
    return Promise.resolve({});
  }
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the Job of a fine-tune, from the trainer configuration', () => {
  it('forwards the configuration the job function reads, and not the trainer-only variables', () => {
    expect(
      jobEnvironment({
        DEIT_TRAINING_BACKEND: 'wasm',
        DEIT_TRAINER_DATA_ROOTS: '/work/data',
        DEIT_LOG_LEVEL: 'debug',
        DEIT_REGISTRY_DIR: '/registry',
        DEIT_TRAINER_WORK_DIR: '/work',
        DEIT_JOBS_DB: '/var/lib/deit-trainer/jobs.sqlite',
        DEIT_TRAINER_RUNNER: 'kubernetes',
        DEIT_TLS_KEY_FILE: '/tls/key.pem',
        DEIT_AUTH_TOKENS_FILE: '/auth/tokens.json',
        DEIT_MAX_DATASET_IMAGES: '',
        PATH: '/usr/bin',
        KUBERNETES_SERVICE_HOST: '10.0.0.1',
      }),
    ).toEqual({
      DEIT_TRAINING_BACKEND: 'wasm',
      DEIT_TRAINER_DATA_ROOTS: '/work/data',
      DEIT_LOG_LEVEL: 'debug',
    });
  });

  it('builds the Job from DEIT_FINETUNE_*: image, account, registry and work claims, deadline', () => {
    const config = loadConfig(trainerConfigSpec, {
      DEIT_TRAINER_RUNNER: 'kubernetes',
      DEIT_TRAINER_NAMESPACE: 'deit-serve',
      DEIT_FINETUNE_IMAGE: 'registry.example/deit-serve/trainer:1.2.3',
      DEIT_FINETUNE_SERVICE_ACCOUNT: 'deit-finetune',
      DEIT_FINETUNE_REGISTRY_CLAIM: 'deit-registry',
      DEIT_FINETUNE_WORK_CLAIM: 'deit-finetune-work',
      DEIT_MAX_JOB_WALL_MS: '7200000',
    });
    const store = JobStore.open(':memory:');
    const options = kubernetesRunnerOptions(config, store, new RecordingBatchApi(), {
      env: { DEIT_TRAINING_BACKEND: 'wasm', DEIT_REGISTRY_DIR: '/registry' },
    });
    store.close();
    const job = buildFineTuneJob({ ...options.job, jobId: 'j-1', namespace: options.namespace });
    const pod = job.spec.template.spec;
    expect(job.metadata.namespace).toBe('deit-serve');
    expect(job.spec.activeDeadlineSeconds).toBe(7200);
    expect(pod.serviceAccountName).toBe('deit-finetune');
    expect(pod.containers[0]?.image).toBe('registry.example/deit-serve/trainer:1.2.3');
    expect(pod.volumes).toEqual(
      expect.arrayContaining([
        { name: 'registry', persistentVolumeClaim: { claimName: 'deit-registry' } },
        { name: 'work', persistentVolumeClaim: { claimName: 'deit-finetune-work' } },
      ]),
    );
    // The pod sees the work claim at /work; the trainer must mount it there too (same paths in both).
    expect(pod.containers[0]?.env).toContainEqual({ name: 'DEIT_TRAINER_WORK_DIR', value: '/work' });
    expect(pod.containers[0]?.env).toContainEqual({ name: 'DEIT_TRAINING_BACKEND', value: 'wasm' });
  });

  it('asks for DEIT_FINETUNE_GPUS NVIDIA GPUs (request = limit), and for none by default', () => {
    const jobFor = (env: Record<string, string>) => {
      const config = loadConfig(trainerConfigSpec, { DEIT_TRAINER_RUNNER: 'kubernetes', ...env });
      const store = JobStore.open(':memory:');
      const options = kubernetesRunnerOptions(config, store, new RecordingBatchApi(), { env: {} });
      store.close();
      return buildFineTuneJob({ ...options.job, jobId: 'j-1', namespace: options.namespace });
    };
    const resources = jobFor({ DEIT_FINETUNE_GPUS: '1' }).spec.template.spec.containers[0]?.resources;
    expect(resources?.requests?.['nvidia.com/gpu']).toBe('1');
    expect(resources?.limits?.['nvidia.com/gpu']).toBe('1');
    const cpuOnly = jobFor({}).spec.template.spec.containers[0]?.resources;
    expect(cpuOnly?.requests?.['nvidia.com/gpu']).toBeUndefined();
    expect(cpuOnly?.limits?.['nvidia.com/gpu']).toBeUndefined();
  });

  it("the Job's command runs this app's run-job entry point, as the build lays it out", () => {
    // tools/scripts/build.mjs: <root>/apps/trainer/src/run-job.ts → dist/apps/trainer/src/run-job.js,
    // and docker/Dockerfile copies dist/ to /app/dist.
    const source = join(workspaceRoot, relative('/app/dist', FINETUNE_JOB_SCRIPT)).replace(/\.js$/, '.ts');
    expect(relative(workspaceRoot, source)).toBe(join('apps', 'trainer', 'src', 'run-job.ts'));
    expect(existsSync(source)).toBe(true);
  });
});

describe('the trainer app with DEIT_TRAINER_RUNNER=kubernetes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deit-trainer-job-mode-'));
  const api = new RecordingBatchApi();
  let service: TestService;
  let client: trainerV1Client.TrainerServiceClient;

  beforeAll(async () => {
    service = await startTestService(
      (port) =>
        AppModule.register(
          loadConfig(trainerConfigSpec, {
            DEIT_TRAINER_GRPC_PORT: String(port),
            DEIT_JOBS_DB: join(dir, 'jobs.sqlite'),
            DEIT_TRAINER_WORK_DIR: join(dir, 'work'),
            DEIT_TRAINER_RUNNER: 'kubernetes',
            DEIT_TRAINER_NAMESPACE: 'deit-serve',
          }),
          { kinds: {}, batchApi: api, runner: { pollIntervalMs: 50 } },
        ),
      { protoFiles: ['trainer'], packages: [PROTO_PACKAGES.trainer] },
    );
    client = new trainerV1Client.TrainerServiceClient(service.address, credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a queued fine-tune as a Kubernetes Job, and CancelJob deletes that Job', async () => {
    expect(service.app.get<JobExecutor>(JOB_EXECUTOR)).toBeInstanceOf(KubernetesJobRunner);
    const store = service.app.get(JobStore);
    const spec = validateFineTuneSpec({
      outputModel: 'fm',
      student: { registryRef: 'fm:1' },
      teacher: undefined,
      dataset: {
        fashionMnist: { dir: '/data/fmnist', evalOnTest: false },
        validationFraction: 0.25,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
      distillation: undefined,
      optimization: { epochs: 1, batchSize: 16, lr: 1e-3, lrFixed: true, warmupEpochs: 0 },
      augmentation: undefined,
      seed: 1,
      trainable: undefined,
      evalIntervalEpochs: 0,
      promotion: undefined,
    });
    const { job } = store.create({ kind: 'fine-tune', spec });
    const name = fineTuneJobName(job.id);
    await waitFor('the Job', () => api.jobs.has(name));
    expect(api.jobs.get(name)?.metadata.namespace).toBe('deit-serve');

    const cancelled = await new Promise<trainerV1Client.CancelJobResponse>((resolve, reject) =>
      client.cancelJob({ jobId: job.id }, new Metadata(), (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
    expect(cancelled.job?.state).toBe(trainerV1Client.JobState.JOB_STATE_CANCELLING);
    await waitFor('CANCELLED', () => store.get(job.id).state === 'CANCELLED');
    expect(api.deleted).toEqual([{ name, namespace: 'deit-serve', propagationPolicy: 'Background' }]);
    expect(api.jobs.size).toBe(0);
  });
});
