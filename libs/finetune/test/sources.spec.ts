import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FASHION_MNIST_LABELS } from '@deit-serve/datasets';
import { DEIT_PRESETS, initDeitWeights, writeSafetensors } from '@deit-serve/model';
import { packageAndPublish, presetWeights } from '@deit-serve/packaging';
import { DirectoryRegistry } from '@deit-serve/registry';
import { validateFineTuneSpec } from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFineTuneSources, sourcesSpecCheck } from '../src';
import { TeacherRunner } from '../src/teacher';
import { fineTuneRequest, writeFashionMnist, writeImageFolder } from './fixtures/fine-tune-fixtures';

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

  it('serves as a SpecCheck that lists the problems instead of throwing them', async () => {
    const spec = validateFineTuneSpec({
      ...fineTuneRequest({
        student: { preset: 'deit_pico_distilled_patch4_28' },
        teacher: { onnxPath: join(root, 'no.onnx') },
      }),
      dataset: fashionMnist(join(root, 'missing')),
    });
    const problems = await sourcesSpecCheck({ registry })(spec, {});
    expect(problems.map((p) => p.field)).toEqual(['dataset.fashion_mnist.dir', 'teacher.onnx_path']);
    expect(problems[1]?.problem).toMatch(/no\.onnx/);
  });
});
