import 'reflect-metadata';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { Logger } from '@nestjs/common';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { FASHION_MNIST_FILES } from '@deit-serve/datasets';
import { trainerV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { startTestService, type TestService } from '@deit-serve/testing';
import { mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AppModule } from '../src/app.module';
import { sourceChecks } from '../src/spec-checks';
import { writeFolder } from './fixtures/data';

/**
 * The trainer's path sandbox through its gRPC API: what StartFineTune refuses before queueing (the
 * app as main.ts wires it, in process). What only reading the data shows (its size, FIFOs) fails the
 * job instead: job-checks.e2e.spec.ts.
 */
const base = realpathSync(mkdtempSync(join(tmpdir(), 'deit-trainer-sandbox-')));
const dataRoot = join(base, 'data');
const outside = join(base, 'outside');
const SECRET = 'SECRET-CONTENT-51c0de';
const { DistillationType } = trainerV1Client;

describe('trainer path sandbox (gRPC)', () => {
  let service: TestService;
  let client: trainerV1Client.TrainerServiceClient;
  const warn = vi.spyOn(Logger.prototype, 'warn');

  beforeAll(async () => {
    mkdirSync(dataRoot, { recursive: true });
    mkdirSync(outside, { recursive: true });
    await writeFolder(join(dataRoot, 'pets'), ['cat', 'dog'], 3);
    await writeFolder(join(outside, 'private'), ['cat', 'dog'], 3);
    // Never read: the sandbox refuses the symlink first.
    writeFileSync(join(outside, 'teacher.onnx'), 'private bytes');
    symlinkSync(join(outside, 'teacher.onnx'), join(dataRoot, 'teacher.onnx'));
    symlinkSync(join(outside, 'private'), join(dataRoot, 'linked-private'));
    // Fashion-MNIST files that are symlinks out of the root: to a secret, and to /etc/passwd.
    writeFileSync(join(outside, 'secret.bin'), SECRET.repeat(50));
    mkdirSync(join(dataRoot, 'linked-fm'));
    symlinkSync(join(outside, 'secret.bin'), join(dataRoot, 'linked-fm', FASHION_MNIST_FILES.train.images));
    symlinkSync('/etc/passwd', join(dataRoot, 'linked-fm', FASHION_MNIST_FILES.train.labels));

    const config = loadConfig(trainerConfigSpec, {
      DEIT_JOBS_DB: join(base, 'jobs.sqlite'),
      DEIT_TRAINER_WORK_DIR: join(base, 'work'),
      DEIT_REGISTRY_DIR: join(base, 'registry'),
      DEIT_TRAINER_DATA_ROOTS: dataRoot,
    });
    const registry = await DirectoryRegistry.open(config.registryDir, { create: true });
    service = await startTestService(
      () =>
        AppModule.register(config, {
          kinds: {}, // jobs are queued, never run: this is about what gets in
          specChecks: sourceChecks(registry),
        }),
      { protoFiles: ['trainer'], packages: ['deit.trainer.v1'] },
    );
    client = new trainerV1Client.TrainerServiceClient(service.address, credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await service?.close();
    warn.mockRestore();
    await rm(base, { recursive: true, force: true });
  });

  const spec = (overrides: Partial<trainerV1Client.FineTuneSpec> = {}): trainerV1Client.FineTuneSpec =>
    trainerV1Client.FineTuneSpec.fromPartial({
      outputModel: 'sandboxed',
      student: { preset: 'deit_pico_distilled_patch4_28' },
      dataset: { imageFolder: { trainDir: join(dataRoot, 'pets') }, validationFraction: 0.34 },
      distillation: { type: DistillationType.DISTILLATION_TYPE_NONE },
      optimization: { epochs: 1, batchSize: 4 },
      ...overrides,
    });

  const start = (s: trainerV1Client.FineTuneSpec, requestId = '', deadlineMs = 60_000) =>
    new Promise<trainerV1Client.StartFineTuneResponse>((resolve, reject) =>
      client.startFineTune(
        { spec: s, requestId },
        new Metadata(),
        { deadline: Date.now() + deadlineMs },
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
  const refusal = (s: trainerV1Client.FineTuneSpec, requestId = '', deadlineMs?: number) =>
    start(s, requestId, deadlineMs).then(
      (r) => {
        throw new Error(`expected a refusal; job ${r.job?.id} was queued`);
      },
      (e: ServiceError) => e,
    );
  const fashionMnist = (dir: string) => ({
    dataset: {
      fashionMnist: { dir, evalOnTest: false },
      validationFraction: 0.25,
      maxTrainImages: 0,
      maxEvalImages: 0,
    },
  });
  const folder = (trainDir: string, valDir = '') => ({
    dataset: {
      imageFolder: { trainDir, valDir },
      validationFraction: 0.34,
      maxTrainImages: 0,
      maxEvalImages: 0,
    },
  });

  it('queues a job whose paths lie inside the data roots', async () => {
    const { job } = await start(spec());
    expect(job?.state).toBe(trainerV1Client.JobState.JOB_STATE_QUEUED);
  });

  it.each([
    [
      'a "../" climb out of a root',
      () => folder(`${dataRoot}/../outside/private`),
      'dataset.image_folder.train_dir',
      '".." segments',
    ],
    ['a relative "../" path', () => folder('../../etc'), 'dataset.image_folder.train_dir', '".." segments'],
    [
      'a NUL byte',
      () => ({ teacher: { onnxPath: `${dataRoot}/teacher.onnx\u0000.txt` } }),
      'teacher.onnx_path',
      'control characters',
    ],
    [
      'a newline',
      () => folder(join(dataRoot, 'pets'), `${dataRoot}/x\ny`),
      'dataset.image_folder.val_dir',
      'control characters',
    ],
  ])('refuses %s with INVALID_ARGUMENT naming the field', async (_what, overrides, field, problem) => {
    const error = await refusal(spec(overrides()));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain(`${field}: must not contain ${problem}`);
  });

  it.each([
    [
      'an absolute path outside every root',
      () => folder('/etc'),
      'dataset.image_folder.train_dir',
      'is outside the data roots',
    ],
    [
      'Fashion-MNIST outside the roots (its default folder)',
      () => ({ dataset: { fashionMnist: {} } }),
      'dataset.fashion_mnist.dir',
      'is outside the data roots',
    ],
    [
      'a student file outside',
      () => ({
        student: {
          safetensors: { path: join(outside, 'w.safetensors'), preset: 'deit_pico_distilled_patch4_28' },
        },
      }),
      'student.safetensors.path',
      'is outside the data roots',
    ],
    [
      'a file symlink inside a root pointing out',
      () => ({
        teacher: { onnxPath: join(dataRoot, 'teacher.onnx') },
        distillation: { type: DistillationType.DISTILLATION_TYPE_HARD },
      }),
      'teacher.onnx_path',
      'through a symbolic link',
    ],
    [
      'a folder symlink inside a root pointing out',
      () => folder(join(dataRoot, 'linked-private')),
      'dataset.image_folder.train_dir',
      'through a symbolic link',
    ],
  ])('refuses %s with PERMISSION_DENIED naming the field', async (_what, overrides, field, problem) => {
    const error = await refusal(spec(overrides() as Partial<trainerV1Client.FineTuneSpec>));
    expect(error.code).toBe(status.PERMISSION_DENIED);
    expect(error.details).toMatch(new RegExp(`${field.replace(/\./g, '\\.')}: .*${problem}`));
    // Where a symlink leads stays on the server.
    if (problem.includes('symbolic link')) expect(error.details).not.toContain(outside);
  });

  it.each([
    ['output_model', { outputModel: '../evil' }],
    ['output_model', { outputModel: 'a/b' }],
    ['output_model', { outputModel: 'x\u0000y' }],
    ['student.registry_ref', { student: { registryRef: '..\\models@production' } }],
    ['promotion.alias', { promotion: { alias: 'prod/../x', minImprovement: 0 } }],
    ['promotion.alias', { promotion: { alias: 'line\nbreak', minImprovement: 0 } }],
  ] as const)('refuses an odd name in %s with INVALID_ARGUMENT', async (field, overrides) => {
    const error = await refusal(spec(overrides));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain(`${field}: `);
  });

  it('logs each refusal with the field and, for the server only, where the path really leads', async () => {
    warn.mockClear();
    await refusal(spec(folder(join(dataRoot, 'linked-private'))), 'probe-1');
    await refusal(spec(folder('../x')), 'probe-2');
    const lines = warn.mock.calls.map((args) => String(args[0]));
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `request "probe-1".*dataset\\.image_folder\\.train_dir ".*linked-private" → ${join(outside, 'private')}`,
        ),
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/request "probe-2".*refused: .*train_dir: must not contain "\.\." segments/),
    );
  });

  it('refuses Fashion-MNIST files that are symlinks out of the root with PERMISSION_DENIED, quoting none of their bytes', async () => {
    const error = await refusal(spec(fashionMnist(join(dataRoot, 'linked-fm'))));
    expect(error.code).toBe(status.PERMISSION_DENIED);
    expect(error.details).toMatch(
      /dataset\.fashion_mnist\.dir: ".*linked-fm\/train-images-idx3-ubyte\.gz" leads outside the data roots through a symbolic link/,
    );
    for (const leak of [SECRET, 'SECR', '53454352', 'root:', '726f6f74', outside]) {
      expect(error.details).not.toContain(leak);
    }
  });
});
