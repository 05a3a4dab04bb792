import 'reflect-metadata';
import { credentials, Metadata } from '@grpc/grpc-js';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { trainerV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { startTestService, type TestService } from '@deit-serve/testing';
import { WORKER_ENTRY } from '@deit-serve/trainer-engine';
import { execFileSync } from 'node:child_process';
import { constants, mkdirSync, mkdtempSync, realpathSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../src/app.module';
import { sourceChecks } from '../src/spec-checks';
import { FASHION_MNIST_NAMES, writeFolder } from './fixtures/data';

/**
 * What StartFineTune leaves to the job: reading the data set. A request whose data set is too large,
 * or whose files are FIFOs, is answered at once with a queued job, and the job ends FAILED with an
 * error naming the field and the problem, which GetJob and WatchJob both show. The jobs run in real
 * worker processes (the fine-tune job from sources), configured by the module's sandbox and limits
 * only: the worker's environment names other data roots and no dataset limit.
 */
const REGISTER_TS = join(__dirname, '..', '..', '..', 'tools', 'test-support', 'register-ts.cjs');
const base = realpathSync(mkdtempSync(join(tmpdir(), 'deit-trainer-job-checks-')));
const dataRoot = join(base, 'data');
const MAX_DATASET_IMAGES = 12;
/** StartFineTune answers within this, whatever the data set holds. */
const PROMPT_MS = 2_000;
/** A worker starts, loads the job from sources and fails it in its first phase. */
const JOB_FAILS_WITHIN_MS = 120_000;

const { DistillationType, JobState } = trainerV1Client;

describe('checks that need the data run in the job (gRPC)', () => {
  let service: TestService;
  let client: trainerV1Client.TrainerServiceClient;

  beforeAll(async () => {
    await writeFolder(join(dataRoot, 'too-big'), ['cat', 'dog'], MAX_DATASET_IMAGES / 2 + 1);
    mkdirSync(join(dataRoot, 'fifo-fm'));
    for (const name of FASHION_MNIST_NAMES) execFileSync('mkfifo', [join(dataRoot, 'fifo-fm', name)]);
    const config = loadConfig(trainerConfigSpec, {
      DEIT_JOBS_DB: join(base, 'jobs.sqlite'),
      DEIT_TRAINER_WORK_DIR: join(base, 'work'),
      DEIT_REGISTRY_DIR: join(base, 'registry'),
      DEIT_TRAINER_DATA_ROOTS: dataRoot,
      DEIT_MAX_DATASET_IMAGES: String(MAX_DATASET_IMAGES),
      DEIT_MAX_CONCURRENT_JOBS: '2',
    });
    const registry = await DirectoryRegistry.open(config.registryDir, { create: true });
    service = await startTestService(
      () =>
        AppModule.register(config, {
          // The default job kinds: the fine-tune job with this module's configuration.
          worker: {
            entry: WORKER_ENTRY,
            execArgv: ['-r', REGISTER_TS],
            // Were the worker to read its settings from here, it would refuse every path (other
            // roots) or load the too-big set (no limit) instead of failing as asserted below.
            env: {
              ...process.env,
              DEIT_TRAINER_DATA_ROOTS: join(base, 'elsewhere'),
              DEIT_MAX_DATASET_IMAGES: '',
            },
          },
          specChecks: sourceChecks(registry),
          runner: { pollIntervalMs: 100 },
        }),
      { protoFiles: ['trainer'], packages: ['deit.trainer.v1'] },
    );
    client = new trainerV1Client.TrainerServiceClient(service.address, credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    // Should a read be blocked on a FIFO (the failure guarded against), a writer coming and going
    // releases it, so the job can end.
    for (const name of FASHION_MNIST_NAMES) {
      const writer = await open(
        join(dataRoot, 'fifo-fm', name),
        constants.O_WRONLY | constants.O_NONBLOCK,
      ).catch(() => undefined);
      await writer?.close();
    }
    client?.close();
    await service?.close();
    await rm(base, { recursive: true, force: true });
  });

  const spec = (dataset: Partial<trainerV1Client.DatasetSpec>): trainerV1Client.FineTuneSpec =>
    trainerV1Client.FineTuneSpec.fromPartial({
      outputModel: 'checked-in-job',
      student: { preset: 'deit_pico_distilled_patch4_28' },
      dataset: { validationFraction: 0.25, maxTrainImages: 0, maxEvalImages: 0, ...dataset },
      distillation: { type: DistillationType.DISTILLATION_TYPE_NONE },
      optimization: { epochs: 1, batchSize: 4 },
    });

  const start = (s: trainerV1Client.FineTuneSpec, requestId: string) =>
    new Promise<trainerV1Client.Job>((resolve, reject) =>
      client.startFineTune(
        { spec: s, requestId },
        new Metadata(),
        { deadline: Date.now() + PROMPT_MS },
        (e, r) => (e ? reject(e) : r.job ? resolve(r.job) : reject(new Error('no job in the answer'))),
      ),
    );
  const getJob = (jobId: string) =>
    new Promise<trainerV1Client.Job>((resolve, reject) =>
      client.getJob({ jobId }, new Metadata(), (e, r) =>
        e ? reject(e) : r.job ? resolve(r.job) : reject(new Error('no job in the answer')),
      ),
    );
  /** Every event of the job's watch stream, until the server ends it (the job ended). */
  const watch = (jobId: string) =>
    new Promise<trainerV1Client.JobEvent[]>((resolve, reject) => {
      const events: trainerV1Client.JobEvent[] = [];
      const call = client.watchJob({ jobId }, new Metadata(), {
        deadline: Date.now() + JOB_FAILS_WITHIN_MS,
      });
      call.on('data', (response: trainerV1Client.WatchJobResponse) => {
        if (response.event) events.push(response.event);
      });
      call.on('error', reject);
      call.on('end', () => resolve(events));
    });

  async function expectFailed(jobId: string, error: RegExp): Promise<void> {
    const events = await watch(jobId);
    const states = events.flatMap((e) => (e.state === undefined ? [] : [e.state]));
    expect(states.at(-1)).toBe(JobState.JOB_STATE_FAILED);
    // The stream says why just before the final state.
    expect(events.at(-2)?.message).toMatch(new RegExp(`^failed: .*${error.source}`));
    const job = await getJob(jobId);
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.error).toMatch(error);
    expect(events.at(-2)?.message).toBe(`failed: ${job.error}`);
  }

  it(
    'answers a data set above DEIT_MAX_DATASET_IMAGES with a queued job; the job fails naming the dataset and the limit',
    async () => {
      const started = Date.now();
      const job = await start(
        spec({ imageFolder: { trainDir: join(dataRoot, 'too-big'), valDir: '' } }),
        'big',
      );
      expect(Date.now() - started).toBeLessThan(PROMPT_MS);
      expect(job.state).toBe(JobState.JOB_STATE_QUEUED);
      await expectFailed(
        job.id,
        new RegExp(
          `invalid fine-tune spec .*dataset: .*would load ${MAX_DATASET_IMAGES + 2} images, more than the ${MAX_DATASET_IMAGES} allowed`,
        ),
      );
    },
    JOB_FAILS_WITHIN_MS,
  );

  it(
    'answers FIFOs named like Fashion-MNIST files at once, request after request; each job fails saying so',
    async () => {
      const jobs: trainerV1Client.Job[] = [];
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        jobs.push(
          await start(
            spec({ fashionMnist: { dir: join(dataRoot, 'fifo-fm'), evalOnTest: false } }),
            `fifo-${i}`,
          ),
        );
        expect(Date.now() - started).toBeLessThan(PROMPT_MS);
      }
      for (const job of jobs) {
        await expectFailed(job.id, /train-images-idx3-ubyte\.gz" is not a regular file \(a FIFO\)/);
      }
    },
    3 * JOB_FAILS_WITHIN_MS,
  );
});
