import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FASHION_MNIST_LABELS } from '@deit-serve/datasets';
import { DEIT_PRESETS, initDeitWeights, writeSafetensors } from '@deit-serve/model';
import { packageAndPublish, presetWeights } from '@deit-serve/packaging';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  InvalidSpecError,
  PathNotAllowedError,
  PathSandbox,
  validateFineTuneSpec,
} from '@deit-serve/trainer-engine';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadFineTuneSources, registryRefsSpecCheck } from '../src';
import { TeacherRunner } from '../src/teacher';
import { fineTuneRequest, writeFashionMnist, writeImageFolder } from './fixtures/fine-tune-fixtures';
import { sourceProblems } from './fixtures/source-problems';

let root: string;
let registry: DirectoryRegistry;
let fmnist: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-sources-'));
  registry = await DirectoryRegistry.open(join(root, 'registry'));
  fmnist = await writeFashionMnist(join(root, 'fmnist'), 20, 10);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const fashionMnist = (dir: string, evalOnTest = false) => ({
  fashionMnist: { dir, evalOnTest },
  validationFraction: 0.25,
  maxTrainImages: 0,
  maxEvalImages: 0,
});

describe('loadFineTuneSources', () => {
  it('reads a timm safetensors student for its preset and evaluates on the test split', async () => {
    const path = join(root, 'pico.safetensors');
    await writeFile(path, writeSafetensors(initDeitWeights(DEIT_PRESETS.deit_pico_distilled_patch4_28, 5)));
    const spec = validateFineTuneSpec({
      ...fineTuneRequest({ student: { safetensors: { path, preset: 'deit_pico_distilled_patch4_28' } } }),
      dataset: fashionMnist(fmnist, true),
    });
    const { student, data } = await loadFineTuneSources(spec, { registry });
    expect(student.description).toBe(`${path} (deit_pico_distilled_patch4_28)`);
    expect(student.config).toMatchObject({ embedDim: 96, depth: 6, numClasses: 10 });
    expect(student.input).toMatchObject({ image_size: 28, mean: [0.286, 0.286, 0.286] });
    expect([data.train.size, data.eval.size]).toEqual([20, 10]);
    expect(data.evalSetName).toMatch(/^fashion-mnist\/test\/10@[0-9a-f]{12}$/);
  });

  it('re-initialises a preset’s heads for the data set’s classes', async () => {
    const folder = await writeImageFolder(join(root, 'folder'), ['a', 'b', 'c'], 3);
    const spec = validateFineTuneSpec({
      ...fineTuneRequest({ student: { preset: 'deit_pico_distilled_patch4_28' } }),
      dataset: {
        imageFolder: { trainDir: folder.dir, valDir: '' },
        validationFraction: 0.34,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
    });
    const { student, data } = await loadFineTuneSources(spec, { registry });
    expect(student.config.numClasses).toBe(3);
    expect(student.weights.get('head.weight')?.shape).toEqual([3, 96]);
    expect(student.changes.join('\n')).toMatch(/head/);
    expect(data.labelNames).toEqual(['a', 'b', 'c']);
    expect(data.problems.map((p) => p.path)).toEqual([join(folder.dir, folder.corrupt)]);
  });

  it('loads a registry teacher with its own normalisation, and re-normalises the batch for it', async () => {
    const regnet = presetWeights({ preset: 'regnety_fmnist_28', seed: 1 });
    await packageAndPublish(registry, 'teacher-regnet', {
      ...regnet,
      input: { ...regnet.input, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
      preset: 'regnety_fmnist_28',
      labels: FASHION_MNIST_LABELS,
    });
    const spec = validateFineTuneSpec({
      ...fineTuneRequest({
        student: { preset: 'deit_pico_distilled_patch4_28' },
        teacher: { registryRef: 'teacher-regnet' },
      }),
      dataset: fashionMnist(fmnist),
    });
    const { teacher, student } = await loadFineTuneSources(spec, { registry });
    expect(teacher).toMatchObject({ description: 'teacher-regnet:1', outputs: ['logits'], numClasses: 10 });
    const runner = new TeacherRunner(teacher!, student.input);
    try {
      // A pixel of value p normalised for the student must reach the teacher as (p − 0.5) / 0.25.
      const p = 0.8;
      const pixels = new Float32Array(3 * 28 * 28).fill((p - 0.286) / 0.353);
      const direct = await teacher!.session.run({
        pixel_values: { data: new Float32Array(3 * 28 * 28).fill((p - 0.5) / 0.25), dims: [1, 3, 28, 28] },
      });
      const viaStudent = await runner.logits(pixels, [1, 3, 28, 28]);
      const expected = direct['logits']?.data ?? new Float32Array();
      expect(Math.max(...Array.from(viaStudent, (v, i) => Math.abs(v - expected[i])))).toBeLessThan(1e-4);
    } finally {
      await runner.release();
    }
  });

  it('lists every problem of the data set and the teacher, as the failed job reports them', async () => {
    const spec = validateFineTuneSpec({
      ...fineTuneRequest({
        student: { preset: 'deit_pico_distilled_patch4_28' },
        teacher: { onnxPath: join(root, 'no.onnx') },
      }),
      dataset: fashionMnist(join(root, 'missing')),
    });
    const problems = await sourceProblems(spec, { registry });
    expect(problems.map((p) => p.field)).toEqual(['dataset.fashion_mnist.dir', 'teacher.onnx_path']);
    expect(problems[1]?.problem).toMatch(/no\.onnx/);
  });
});

describe('registryRefsSpecCheck (StartFineTune)', () => {
  it('names each registry ref that does not resolve, and reads no version', async () => {
    const student = presetWeights({ preset: 'deit_pico_distilled_patch4_28', seed: 2 });
    await packageAndPublish(registry, 'refs-student', {
      ...student,
      preset: 'deit_pico_distilled_patch4_28',
      labels: FASHION_MNIST_LABELS,
    });
    const loads = vi.spyOn(registry, 'loadVersion');
    const manifests = vi.spyOn(registry, 'getManifest');
    const check = registryRefsSpecCheck(registry);
    const spec = (studentRef: string, teacherRef: string) =>
      validateFineTuneSpec({
        ...fineTuneRequest({ student: { registryRef: studentRef }, teacher: { registryRef: teacherRef } }),
        dataset: fashionMnist(join(root, 'never-read')),
      });
    const problems = await check(spec('refs-student', 'no-such-teacher'), {});
    expect(problems.map((p) => p.field)).toEqual(['teacher.registry_ref']);
    expect(problems[0]?.problem).toMatch(/no-such-teacher/);
    expect((await check(spec('refs-student@nowhere', 'refs-student:7'), {})).map((p) => p.field)).toEqual([
      'student.registry_ref',
      'teacher.registry_ref',
    ]);
    expect(await check(spec('refs-student', 'refs-student'), {})).toEqual([]);
    // What the version holds is the job's to check.
    expect(loads).not.toHaveBeenCalled();
    expect(manifests).not.toHaveBeenCalled();
    loads.mockRestore();
    manifests.mockRestore();
  });
});

describe('loadFineTuneSources within a sandbox and data set limits', () => {
  const pico = 'deit_pico_distilled_patch4_28';
  const folderSpec = (trainDir: string, valDir = '') =>
    validateFineTuneSpec({
      ...fineTuneRequest({ student: { preset: pico } }),
      dataset: {
        imageFolder: { trainDir, valDir },
        validationFraction: 0.34,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
    });
  const problemsOf = (error: unknown) => {
    expect(error).toBeInstanceOf(InvalidSpecError);
    return (error as InvalidSpecError).problems;
  };

  it('refuses a spec path that leads out of the roots before reading anything (PERMISSION_DENIED)', async () => {
    const data = join(root, 'sandboxed');
    await mkdir(data, { recursive: true });
    const weights = join(root, 'outside.safetensors');
    await writeFile(
      weights,
      writeSafetensors(initDeitWeights(DEIT_PRESETS.deit_pico_distilled_patch4_28, 5)),
    );
    await symlink(weights, join(data, 'student.safetensors'));
    const spec = validateFineTuneSpec({
      ...fineTuneRequest({
        student: { safetensors: { path: join(data, 'student.safetensors'), preset: pico } },
      }),
      dataset: fashionMnist(fmnist),
    });
    // Without a sandbox the same spec loads: the refusal below is the sandbox's doing.
    await expect(loadFineTuneSources(spec, { registry })).resolves.toBeDefined();
    const error = await loadFineTuneSources(spec, { registry, sandbox: new PathSandbox([data]) }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PathNotAllowedError);
    expect((error as PathNotAllowedError).kind).toBe('PERMISSION_DENIED');
    expect((error as Error).message).toMatch(/student\.safetensors\.path: .*symbolic link/);
    expect((error as Error).message).toMatch(/dataset\.fashion_mnist\.dir: .*outside the data roots/);
  });

  it('skips image files that a symlink inside the folder leads out of the roots', async () => {
    const folder = await writeImageFolder(join(root, 'roots', 'folder-with-link'), ['a', 'b', 'c'], 3);
    const png = sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 1, g: 2, b: 3 } } });
    await writeFile(join(root, 'stolen.png'), await png.png().toBuffer());
    await symlink(join(root, 'stolen.png'), join(folder.dir, 'a', 'zz-link.png'));
    const { data } = await loadFineTuneSources(folderSpec(folder.dir), {
      registry,
      sandbox: new PathSandbox([join(root, 'roots')]),
    });
    expect(data.train.size + data.eval.size).toBe(9);
    expect(data.problems.map((p) => [p.path, p.reason])).toContainEqual([
      join(folder.dir, 'a', 'zz-link.png'),
      expect.stringMatching(/leads outside the data roots through a symbolic link/),
    ]);
  });

  it('refuses a data set with more images than the limit, naming the dataset field', async () => {
    const folder = await writeImageFolder(join(root, 'limit-images'), ['a', 'b', 'c'], 3);
    const within = await loadFineTuneSources(folderSpec(folder.dir), {
      registry,
      datasetLimits: { maxImages: 10, maxBytes: 1 << 30 },
    });
    expect(within.data.train.size + within.data.eval.size).toBe(9);
    const error = await loadFineTuneSources(folderSpec(folder.dir), {
      registry,
      datasetLimits: { maxImages: 8, maxBytes: 1 << 30 },
    }).catch((e: unknown) => e);
    expect(problemsOf(error)).toEqual([
      {
        field: 'dataset',
        problem: expect.stringMatching(/would load 10 images, more than the 8 allowed.*max_train_images/),
      },
    ]);
    // Fashion-MNIST: train (20) and test (10) count together.
    const fm = (evalOnTest: boolean) =>
      validateFineTuneSpec({
        ...fineTuneRequest({ student: { preset: pico } }),
        dataset: fashionMnist(fmnist, evalOnTest),
      });
    const limits = { maxImages: 25, maxBytes: 1 << 30 };
    await expect(loadFineTuneSources(fm(false), { registry, datasetLimits: limits })).resolves.toBeDefined();
    expect(
      problemsOf(
        await loadFineTuneSources(fm(true), { registry, datasetLimits: limits }).catch((e: unknown) => e),
      ),
    ).toEqual([
      {
        field: 'dataset',
        // Refused from the test split's header, before its images are inflated.
        problem: expect.stringMatching(
          /t10k-images-idx3-ubyte\.gz: the header declares 10 images, more than the 5 allowed; not inflated/,
        ),
      },
    ]);
  });

  it('refuses a data set whose files exceed the byte limit', async () => {
    const folder = await writeImageFolder(join(root, 'limit-bytes'), ['a', 'b'], 2);
    const error = await loadFineTuneSources(folderSpec(folder.dir), {
      registry,
      datasetLimits: { maxImages: 1000, maxBytes: 100 },
    }).catch((e: unknown) => e);
    expect(problemsOf(error)).toEqual([
      {
        field: 'dataset',
        problem: expect.stringMatching(/would pass the limit of 100 bytes of dataset files/),
      },
    ]);
    const trainFiles = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'];
    const stored = (await Promise.all(trainFiles.map((f) => stat(join(fmnist, f))))).reduce(
      (a, s) => a + s.size,
      0,
    );
    // The limit holds for the files as stored and again decompressed (20 images + 20 labels).
    const inflated = 16 + 20 * 784 + 8 + 20;
    const fmBytes = Math.max(stored, inflated);
    const fm = validateFineTuneSpec({
      ...fineTuneRequest({ student: { preset: pico } }),
      dataset: fashionMnist(fmnist),
    });
    await expect(
      loadFineTuneSources(fm, { registry, datasetLimits: { maxImages: 1000, maxBytes: fmBytes } }),
    ).resolves.toBeDefined();
    expect(
      problemsOf(
        await loadFineTuneSources(fm, {
          registry,
          datasetLimits: { maxImages: 1000, maxBytes: fmBytes - 1 },
        }).catch((e: unknown) => e),
      ),
    ).toEqual([
      {
        field: 'dataset',
        problem: expect.stringMatching(
          /train-labels-idx1-ubyte\.gz: the header declares 20 labels .*bytes allowed; not inflated/,
        ),
      },
    ]);
  });
});
