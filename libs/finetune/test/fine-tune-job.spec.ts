import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBackend, readOnnxWeights } from '@deit-serve/model';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  InvalidSpecError,
  JobAbortedError,
  validateFineTuneSpec,
  type EvalResult,
  type FineTuneJobSpec,
  type JobContext,
  type JobProgress,
  type ResumePoint,
} from '@deit-serve/trainer-engine';
import { trainerV1 } from '@deit-serve/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFineTuneJob, type FineTuneJobOptions } from '../src';
import {
  fineTuneRequest,
  publishStudent,
  writeFashionMnist,
  writeImageFolder,
  writeTeacherOnnx,
} from './fixtures/fine-tune-fixtures';

const JOB_TIMEOUT = 60_000; // a job: load, a few steps, eval, ONNX export + check, publish
const { DistillationType: D } = trainerV1;

interface Recorded {
  progress: JobProgress[];
  evals: EvalResult[];
  checkpoints: Array<{ path: string; epoch: number }>;
  logs: string[];
  backends: string[];
}

let root: string;
let registry: DirectoryRegistry;
let fmnist: string;
let teacher: string;
let jobCount = 0;

function context(
  spec: FineTuneJobSpec,
  options: {
    controller?: AbortController;
    resumeFrom?: ResumePoint;
    workDir?: string;
    onCheckpoint?: (epoch: number) => void;
  } = {},
): { ctx: JobContext<FineTuneJobSpec>; recorded: Recorded } {
  const recorded: Recorded = { progress: [], evals: [], checkpoints: [], logs: [], backends: [] };
  const controller = options.controller ?? new AbortController();
  const ctx: JobContext<FineTuneJobSpec> = {
    jobId: `job-${++jobCount}`,
    spec,
    workDir: options.workDir ?? join(root, 'jobs', `job-${jobCount}`),
    attempt: options.resumeFrom === undefined ? 1 : 2,
    signal: controller.signal,
    ...(options.resumeFrom !== undefined && { resumeFrom: options.resumeFrom }),
    report: {
      progress: (p) => void recorded.progress.push(p),
      eval: (e) => void recorded.evals.push(e),
      checkpoint: (path, epoch) => {
        recorded.checkpoints.push({ path, epoch });
        options.onCheckpoint?.(epoch);
        return Promise.resolve();
      },
      log: (m) => void recorded.logs.push(m),
      backend: (b) => void recorded.backends.push(b),
    },
  };
  return { ctx, recorded };
}

function job(options: FineTuneJobOptions = {}) {
  return createFineTuneJob({ registry, parallelism: 'local', progressIntervalMs: 0, ...options });
}

function spec(overrides: Partial<trainerV1.FineTuneSpec> = {}): FineTuneJobSpec {
  const request = fineTuneRequest(overrides);
  return validateFineTuneSpec({
    ...request,
    dataset: request.dataset && { ...request.dataset, fashionMnist: { dir: fmnist, evalOnTest: false } },
    ...overrides,
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-'));
  registry = await DirectoryRegistry.open(join(root, 'registry'));
  fmnist = await writeFashionMnist(join(root, 'fmnist'), 40);
  teacher = await writeTeacherOnnx(join(root, 'teacher.onnx'));
  await publishStudent(registry, 'student-tiny');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('fineTuneJob', () => {
  it(
    'hard distillation, data-parallel: publishes a version with metrics, lineage and curves, and moves the alias',
    async () => {
      const s = spec({
        teacher: { onnxPath: teacher },
        distillation: { type: D.DISTILLATION_TYPE_HARD, softNormalization: 0 },
        promotion: { alias: 'candidate', minImprovement: 0 },
      });
      const { ctx, recorded } = context(s);
      // The data-parallel path is the wasm one (native backends train in one thread).
      const result = await job({ backend: 'wasm', parallelism: { workers: 2 } })(ctx);

      expect(recorded.backends).toEqual(['tfjs-wasm']);
      expect(recorded.logs.join('\n')).toMatch(/data-parallel, 2 workers/);
      // 30 training images (40 less a quarter held out) in batches of 16: two steps.
      expect(recorded.progress.map((p) => [p.epoch, p.step, p.stepsPerEpoch])).toEqual([
        [1, 1, 2],
        [1, 2, 2],
      ]);
      const last = recorded.progress[1];
      expect(last.loss?.distillation).toBeGreaterThan(0);
      expect(last.imagesPerSecond).toBeGreaterThan(0);
      expect(last.etaSeconds).toBe(0);
      expect(recorded.checkpoints.map((c) => c.epoch)).toEqual([1]);
      expect(recorded.evals).toHaveLength(1);

      const { finalEval } = result;
      expect(finalEval?.images).toBe(10);
      for (const head of [finalEval?.cls, finalEval?.dist, finalEval?.average]) {
        expect(head?.top1).toBeGreaterThanOrEqual(0);
        expect(head?.top5).toBeGreaterThanOrEqual(head?.top1 ?? 0);
      }
      expect(finalEval?.teacherTop1).toBeGreaterThanOrEqual(0);
      expect(finalEval?.clsDistAgreement).toBeGreaterThanOrEqual(0);

      expect(result).toMatchObject({ model: 'fmnist-student', version: 1, promoted: true });
      expect(result.promotionReason).toMatch(/alias candidate pointed nowhere/);
      expect(await registry.getAliases('fmnist-student')).toEqual({ candidate: 1 });

      const loaded = await registry.loadVersion('fmnist-student:1', { files: ['model.onnx', 'curves.png'] });
      const { manifest } = loaded;
      expect(result.sha256).toBe(manifest.files['model.onnx']?.sha256);
      expect(manifest.outputs).toEqual({ cls: 'cls_logits', dist: 'dist_logits' });
      expect(manifest.metrics).toEqual({
        eval_set: finalEval?.dataset,
        top1: { cls: finalEval?.cls?.top1, dist: finalEval?.dist?.top1, avg: finalEval?.average?.top1 },
        teacher_top1: finalEval?.teacherTop1,
      });
      expect(manifest.metrics?.eval_set).toMatch(
        /^fashion-mnist\/train-holdout\(0\.25,seed=3\)\/10@[0-9a-f]{12}$/,
      );
      expect(manifest.lineage).toMatchObject({
        job_id: ctx.jobId,
        parent: { name: 'student-tiny', version: 1 },
        dataset: { name: 'fashion-mnist' },
        backend: 'tfjs-wasm',
        hyperparameters: {
          distillation: { type: 'hard', alpha: 0.5, tau: 1 },
          trainer: { kind: 'data-parallel', workers: 2 },
        },
      });
      expect(manifest.lineage?.teacher).toContain(teacher);
      expect(manifest.lineage?.dataset?.sha256).toMatch(/^[0-9a-f]{64}$/);
      const png = loaded.files.get('curves.png');
      expect(png?.subarray(1, 4).toString()).toBe('PNG');
      expect(Object.keys(manifest.files).sort()).toEqual([
        'curves.png',
        'labels.txt',
        'model.onnx',
        'training.json',
      ]);
    },
    JOB_TIMEOUT,
  );

  it(
    'distillation none: trains without a teacher, leaves head_dist untouched, and keeps the alias when the gain is below δ',
    async () => {
      const s = spec({
        distillation: { type: D.DISTILLATION_TYPE_NONE, softNormalization: 0 },
        promotion: { alias: 'candidate', minImprovement: 1 },
      });
      const { ctx, recorded } = context(s);
      const result = await job()(ctx);

      // One thread (parallelism local), described by the backend itself.
      expect(recorded.logs).toContainEqual(
        `training student-tiny:1 on ${describeBackend()}, batch 16 in passes of ≤ 16 rows, 1.00e-3 peak lr`,
      );
      expect(recorded.progress.every((p) => p.loss?.distillation === 0)).toBe(true);
      expect(result.finalEval?.teacherTop1).toBeUndefined();
      expect(result).toMatchObject({ version: 2, promoted: false });
      // Same data and seed: the same evaluation set, so v1's recorded number is compared.
      expect(result.promotionReason).toMatch(/from its manifest.*< δ 1: candidate stays at v1/);
      expect(await registry.getAliases('fmnist-student')).toEqual({ candidate: 1 });

      const parent = readOnnxWeights(
        (await registry.loadVersion('student-tiny:1')).files.get('model.onnx') as Buffer,
      );
      const child = readOnnxWeights(
        (await registry.loadVersion('fmnist-student:2')).files.get('model.onnx') as Buffer,
      );
      const same = (name: string) =>
        Array.from(child.weights.get(name)?.data ?? []).every(
          (v, i) => v === parent.weights.get(name)?.data[i],
        );
      expect(same('head_dist.weight')).toBe(true);
      expect(same('head.weight')).toBe(false);
    },
    JOB_TIMEOUT,
  );

  it(
    'resumes from the checkpoint written when stopped, at the next epoch',
    async () => {
      const s = spec({
        outputModel: 'resumed',
        teacher: { onnxPath: teacher },
        distillation: { type: D.DISTILLATION_TYPE_SOFT, softNormalization: 0, tau: 2 },
        optimization: { epochs: 2, batchSize: 16, lr: 1e-3, lrFixed: true, warmupEpochs: 1 },
      });
      const workDir = join(root, 'jobs', 'resumed');
      const controller = new AbortController();
      const first = context(s, {
        workDir,
        controller,
        onCheckpoint: (epoch) => {
          if (epoch === 1) controller.abort(new JobAbortedError('shutdown'));
        },
      });
      await expect(job()(first.ctx)).rejects.toBeInstanceOf(JobAbortedError);
      expect(first.recorded.logs.join('\n')).toMatch(
        /checkpoint written, resuming at epoch 2, batch 1 when the trainer restarts/,
      );
      expect(first.recorded.progress.map((p) => p.epoch)).toEqual([1, 1]);
      // The epoch's checkpoint, then the one written on stopping (same position).
      expect(first.recorded.checkpoints.map((c) => c.epoch)).toEqual([1, 1]);
      const resumeFrom = first.recorded.checkpoints[1];

      const second = context(s, { workDir, resumeFrom });
      const result = await job()(second.ctx);
      expect(second.recorded.logs.join('\n')).toMatch(/resumed from .*: epoch 2/);
      expect(second.recorded.progress.map((p) => [p.epoch, p.step])).toEqual([
        [2, 1],
        [2, 2],
      ]);
      expect(second.recorded.checkpoints.map((c) => c.epoch)).toEqual([2]);
      expect(result.finalEval?.epoch).toBe(2);
      const history = JSON.parse(
        (await registry.loadVersion('resumed:1', { files: ['training.json'] })).files
          .get('training.json')
          ?.toString() ?? '{}',
      ) as { evals: EvalResult[]; losses: Array<{ epoch: number }> };
      expect(history.evals.map((e) => e.epoch)).toEqual([1, 2]);
      expect(history.losses.map((l) => l.epoch)).toEqual([0.5, 1, 1.5, 2]);
      const files = (await readdir(workDir)).filter((f) => f.startsWith('checkpoint-'));
      expect(files).toHaveLength(2);
    },
    JOB_TIMEOUT,
  );

  it(
    'stopped mid-epoch, resumes at the next batch; last-blocks training leaves the rest frozen',
    async () => {
      const s = spec({
        outputModel: 'partial',
        trainable: { lastBlocks: 1 },
        optimization: { epochs: 1, batchSize: 16, lr: 1e-2, lrFixed: true, warmupEpochs: 0 },
      });
      const workDir = join(root, 'jobs', 'partial');
      const controller = new AbortController();
      const first = context(s, { workDir, controller });
      const run = job()({
        ...first.ctx,
        report: {
          ...first.ctx.report,
          progress: (p) => {
            first.recorded.progress.push(p);
            controller.abort(new JobAbortedError('cancel'));
          },
        },
      });
      await expect(run).rejects.toThrow(/job cancelled/);
      // Nothing resumes a cancelled job: its log must not promise it.
      expect(first.recorded.logs.join('\n')).toMatch(
        /checkpoint written before epoch 1, batch 2; this job does not resume/,
      );
      expect(first.recorded.logs.join('\n')).not.toMatch(/resuming/);
      expect(first.recorded.checkpoints.map((c) => c.epoch)).toEqual([0]);

      const second = context(s, { workDir, resumeFrom: first.recorded.checkpoints[0] });
      await job()(second.ctx);
      expect(second.recorded.logs.join('\n')).toMatch(/resumed from .*: epoch 1, batch 2/);
      expect(second.recorded.progress.map((p) => p.step)).toEqual([2]);

      const parent = readOnnxWeights(
        (await registry.loadVersion('student-tiny:1')).files.get('model.onnx') as Buffer,
      );
      const child = readOnnxWeights(
        (await registry.loadVersion('partial:1')).files.get('model.onnx') as Buffer,
      );
      const same = (name: string) =>
        Array.from(child.weights.get(name)?.data ?? []).every(
          (v, i) => v === parent.weights.get(name)?.data[i],
        );
      for (const frozen of [
        'patch_embed.proj.weight',
        'pos_embed',
        'cls_token',
        'blocks.0.attn.qkv.weight',
      ]) {
        expect([frozen, same(frozen)]).toEqual([frozen, true]);
      }
      for (const trained of ['blocks.1.attn.qkv.weight', 'norm.weight', 'head.weight', 'head.bias']) {
        expect([trained, same(trained)]).toEqual([trained, false]);
      }
    },
    JOB_TIMEOUT,
  );

  it('fails fast, naming every mismatch, when teacher, student and data disagree on the labels', async () => {
    const wrongTeacher = await writeTeacherOnnx(join(root, 'teacher-5.onnx'), { classes: 5 });
    await publishStudent(registry, 'student-other-labels', {
      labels: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'],
    });
    const s = spec({ student: { registryRef: 'student-other-labels' }, teacher: { onnxPath: wrongTeacher } });
    const { ctx, recorded } = context(s);
    const failure = await job()(ctx).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(InvalidSpecError);
    const message = (failure as Error).message;
    expect(message).toMatch(
      /student: student student-other-labels:1 and the data set disagree on the labels: class 0 is "a" vs "T-shirt\/top"/,
    );
    expect(message).toMatch(/teacher: teacher .*teacher-5\.onnx .* has 5 classes but the data set has 10/);
    expect(recorded.progress).toEqual([]);
  });

  it('fails fast on an empty or unreadable data set', async () => {
    const empty = await writeFashionMnist(join(root, 'fmnist-empty'), 0);
    const emptyIdx = validateFineTuneSpec({
      ...fineTuneRequest(),
      dataset: {
        fashionMnist: { dir: empty, evalOnTest: false },
        validationFraction: 0,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
    });
    await expect(job()(context(emptyIdx).ctx)).rejects.toThrow(
      /dataset\.fashion_mnist\.dir: .*train-images-idx3-ubyte\.gz holds no images/,
    );

    const noClasses = join(root, 'empty-folder');
    await mkdir(noClasses, { recursive: true });
    const emptyFolder = validateFineTuneSpec({
      ...fineTuneRequest(),
      dataset: {
        imageFolder: { trainDir: noClasses, valDir: '' },
        validationFraction: 0,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
    });
    await expect(job()(context(emptyFolder).ctx)).rejects.toThrow(
      /dataset\.image_folder\.train_dir: .*empty-folder/,
    );

    const missing = validateFineTuneSpec({
      ...fineTuneRequest(),
      dataset: {
        fashionMnist: { dir: join(root, 'nowhere'), evalOnTest: false },
        validationFraction: 0,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
    });
    await expect(job()(context(missing).ctx)).rejects.toThrow(
      /dataset\.fashion_mnist\.dir: .*nowhere does not exist/,
    );
  });

  it(
    'reports a corrupt image inside an ImageFolder and trains on the rest',
    async () => {
      const classes = ['boot', 'coat', 'shirt'];
      const folder = await writeImageFolder(join(root, 'folder'), classes, 6);
      await publishStudent(registry, 'student-folder', { labels: classes, config: { numClasses: 3 } });
      const s = validateFineTuneSpec({
        ...fineTuneRequest({ student: { registryRef: 'student-folder' }, outputModel: 'folder-student' }),
        dataset: {
          imageFolder: { trainDir: folder.dir, valDir: '' },
          validationFraction: 0.34,
          maxTrainImages: 0,
          maxEvalImages: 0,
        },
      });
      const { ctx, recorded } = context(s);
      const result = await job()(ctx);
      expect(recorded.logs.some((l) => l.includes('broken.png'))).toBe(true);
      expect(result.finalEval?.images).toBe(6);
      expect(result.version).toBe(1);
    },
    JOB_TIMEOUT,
  );
});
