import { InvalidArgumentError } from '@deit-serve/core';
import { trainerV1 } from '@deit-serve/proto';
import { describe, expect, it } from 'vitest';
import { toProtoSpec } from './proto';
import {
  FINE_TUNE_DEFAULTS,
  InvalidSpecError,
  runSpecChecks,
  validateFineTuneSpec,
  type FineTuneJobSpec,
  type SpecProblem,
} from './spec';

const { DistillationType: D, SoftNormalization: N, CropMode: C } = trainerV1;

/** The smallest valid request: everything else takes its default. */
function minimal(overrides: Partial<trainerV1.FineTuneSpec> = {}): trainerV1.FineTuneSpec {
  return {
    outputModel: 'fmnist-deit',
    student: { preset: 'deit_pico_distilled_patch4_28' },
    teacher: { registryRef: 'fmnist-regnet@production' },
    dataset: {
      fashionMnist: { dir: '', evalOnTest: false },
      validationFraction: 0,
      maxTrainImages: 0,
      maxEvalImages: 0,
    },
    distillation: undefined,
    optimization: { epochs: 3, batchSize: 64, lrFixed: false, warmupEpochs: 0 },
    augmentation: undefined,
    seed: 0,
    trainable: undefined,
    evalIntervalEpochs: 0,
    promotion: undefined,
    ...overrides,
  };
}

function problems(input: trainerV1.FineTuneSpec): SpecProblem[] {
  try {
    validateFineTuneSpec(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidSpecError);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return [...(error as InvalidSpecError).problems];
  }
  throw new Error('expected the spec to be rejected');
}

function fields(input: trainerV1.FineTuneSpec): string[] {
  return problems(input).map((p) => p.field);
}

describe('validateFineTuneSpec defaults', () => {
  it('fills every documented default', () => {
    const spec = validateFineTuneSpec(minimal());
    expect(spec).toEqual<FineTuneJobSpec>({
      outputModel: 'fmnist-deit',
      student: { kind: 'preset', preset: 'deit_pico_distilled_patch4_28' },
      teacher: { kind: 'registry', ref: 'fmnist-regnet@production' },
      dataset: {
        source: { kind: 'fashion-mnist', dir: '/usr/share/datasets/fashion-mnist', evalOnTest: false },
        validationFraction: 0.1,
      },
      // A teacher without a distillation type: hard distillation.
      distillation: { type: 'hard', alpha: 0.5, tau: 1.0, softNormalization: 'numel' },
      optimization: {
        epochs: 3,
        batchSize: 64,
        baseLr: 5e-4,
        lrFixed: false,
        lr: (5e-4 * 64) / 512,
        weightDecay: 0.05,
        warmupEpochs: 0,
        warmupLr: 1e-6,
        minLr: 1e-5,
        labelSmoothing: 0.1,
        dropPath: 0.1,
      },
      augmentation: {
        crop: 'none',
        padding: 0,
        horizontalFlip: false,
        randomErasing: 0,
        mixupAlpha: 0,
        cutmixAlpha: 0,
      },
      seed: 0,
      trainable: { kind: 'all' },
      evalIntervalEpochs: 1,
    });
  });

  it('without a teacher nor a distillation type trains with labels only', () => {
    expect(validateFineTuneSpec(minimal({ teacher: undefined })).distillation.type).toBe('none');
  });

  it('scales the lr by batch/512 unless lr_fixed', () => {
    const scaled = validateFineTuneSpec(
      minimal({ optimization: { epochs: 1, batchSize: 1024, lr: 1e-3, lrFixed: false, warmupEpochs: 0 } }),
    );
    expect(scaled.optimization.lr).toBeCloseTo(2e-3, 12);
    const fixed = validateFineTuneSpec(
      minimal({ optimization: { epochs: 1, batchSize: 1024, lr: 1e-3, lrFixed: true, warmupEpochs: 0 } }),
    );
    expect(fixed.optimization.lr).toBe(1e-3);
    expect(FINE_TUNE_DEFAULTS.lrReferenceBatchSize).toBe(512);
  });

  it('keeps explicit values, including explicit zeros of optional fields', () => {
    const spec = validateFineTuneSpec(
      minimal({
        student: { safetensors: { path: '/w/deit.safetensors', preset: 'deit_tiny_distilled_patch16_224' } },
        teacher: { onnxPath: '/w/regnet.onnx' },
        dataset: {
          imageFolder: { trainDir: '/d/train', valDir: '/d/val' },
          validationFraction: 0.2,
          maxTrainImages: 300,
          maxEvalImages: 50,
        },
        distillation: {
          type: D.DISTILLATION_TYPE_SOFT,
          alpha: 0,
          tau: 3,
          softNormalization: N.SOFT_NORMALIZATION_BATCHMEAN,
        },
        optimization: {
          epochs: 2,
          batchSize: 8,
          lr: 1e-4,
          lrFixed: true,
          weightDecay: 0,
          warmupEpochs: 1,
          warmupLr: 0,
          minLr: 0,
          labelSmoothing: 0,
          dropPath: 0,
        },
        augmentation: {
          crop: C.CROP_MODE_PADDED,
          padding: 4,
          horizontalFlip: true,
          randomErasing: 0.25,
          mixupAlpha: 0.8,
          cutmixAlpha: 1,
        },
        seed: 42,
        trainable: { lastBlocks: 2 },
        evalIntervalEpochs: 2,
        promotion: { alias: 'production', minImprovement: 0.002 },
      }),
    );
    expect(spec.student).toEqual({
      kind: 'safetensors',
      path: '/w/deit.safetensors',
      preset: 'deit_tiny_distilled_patch16_224',
    });
    expect(spec.teacher).toEqual({ kind: 'onnx', path: '/w/regnet.onnx' });
    expect(spec.dataset).toEqual({
      source: { kind: 'image-folder', trainDir: '/d/train', valDir: '/d/val' },
      validationFraction: 0.2,
      maxTrainImages: 300,
      maxEvalImages: 50,
    });
    expect(spec.distillation).toEqual({ type: 'soft', alpha: 0, tau: 3, softNormalization: 'batchmean' });
    expect(spec.optimization).toMatchObject({
      weightDecay: 0,
      warmupLr: 0,
      minLr: 0,
      labelSmoothing: 0,
      dropPath: 0,
      lr: 1e-4,
    });
    expect(spec.augmentation).toEqual({
      crop: 'padded',
      padding: 4,
      horizontalFlip: true,
      randomErasing: 0.25,
      mixupAlpha: 0.8,
      cutmixAlpha: 1,
    });
    expect(spec.trainable).toEqual({ kind: 'last-blocks', blocks: 2 });
    expect(spec.promotion).toEqual({ alias: 'production', minImprovement: 0.002 });
    expect(spec.seed).toBe(42);
    expect(spec.evalIntervalEpochs).toBe(2);
  });

  it('canonicalises registry refs and accepts proto-loader nulls for unset messages', () => {
    const spec = validateFineTuneSpec({
      ...minimal({ student: { registryRef: 'fmnist-deit:3' } }),
      augmentation: null,
      trainable: null,
      promotion: null,
      distillation: null,
    } as unknown as trainerV1.FineTuneSpec);
    expect(spec.student).toEqual({ kind: 'registry', ref: 'fmnist-deit:3' });
    expect(spec.promotion).toBeUndefined();
  });

  it('round-trips through toProtoSpec', () => {
    const spec = validateFineTuneSpec(
      minimal({ promotion: { alias: 'production', minImprovement: 0.01 }, trainable: { lastBlocks: 1 } }),
    );
    expect(validateFineTuneSpec(toProtoSpec(spec))).toEqual(spec);
  });
});

describe('validateFineTuneSpec problems', () => {
  it('reports every bad field at once, in one INVALID_ARGUMENT message', () => {
    const input = minimal({
      outputModel: 'Bad Name',
      student: {},
      teacher: undefined,
      distillation: {
        type: D.DISTILLATION_TYPE_SOFT,
        alpha: 1.5,
        tau: 0,
        softNormalization: N.SOFT_NORMALIZATION_UNSPECIFIED,
      },
      optimization: { epochs: 0, batchSize: 0, lr: -1, lrFixed: false, warmupEpochs: 0 },
      promotion: { alias: 'Bad Alias', minImprovement: 0 },
    });
    let error: unknown;
    try {
      validateFineTuneSpec(input);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidSpecError);
    const message = (error as Error).message;
    expect(message).toMatch(/^invalid fine-tune spec \(9 problems\): /);
    for (const field of [
      'output_model: model name "Bad Name" is invalid',
      'student: set one of registry_ref, safetensors, preset',
      'teacher: is required for soft distillation',
      'distillation.alpha: must be in [0, 1], got 1.5',
      'distillation.tau: must be in (0, ∞), got 0',
      'optimization.epochs: must be an integer in [1, 10000], got 0',
      'optimization.batch_size: must be an integer in [1, 65536], got 0',
      'optimization.lr: must be in (0, ∞), got -1',
      'promotion.alias: alias name "Bad Alias" is invalid',
    ]) {
      expect(message).toContain(field);
    }
  });

  it('a missing spec, or missing required messages', () => {
    expect(() => validateFineTuneSpec(undefined)).toThrow('spec: is required');
    expect(
      fields(minimal({ outputModel: '', student: undefined, dataset: undefined, optimization: undefined })),
    ).toEqual(['output_model', 'student', 'dataset', 'optimization']);
  });

  it('student and teacher sources', () => {
    expect(problems(minimal({ student: { preset: 'a', registryRef: 'b' } }))).toEqual([
      {
        field: 'student',
        problem: 'set only one of registry_ref, safetensors, preset, got registry_ref and preset',
      },
    ]);
    expect(fields(minimal({ student: { registryRef: 'x@y:1' } }))).toEqual(['student.registry_ref']);
    expect(fields(minimal({ student: { safetensors: { path: '', preset: '' } } }))).toEqual([
      'student.safetensors.path',
      'student.safetensors.preset',
    ]);
    expect(fields(minimal({ student: { preset: 'Not A Preset' } }))).toEqual(['student.preset']);
    expect(fields(minimal({ teacher: {} }))).toEqual(['teacher']);
    expect(fields(minimal({ teacher: { onnxPath: '' } }))).toEqual(['teacher.onnx_path']);
    expect(fields(minimal({ teacher: { registryRef: '../etc' } }))).toEqual(['teacher.registry_ref']);
    expect(
      fields(
        minimal({
          teacher: undefined,
          distillation: { type: D.DISTILLATION_TYPE_HARD, softNormalization: 0 },
        }),
      ),
    ).toEqual(['teacher']);
  });

  it('refuses malformed paths and names with INVALID_ARGUMENT naming each field', () => {
    const folder = (trainDir: string, valDir = '') => ({
      imageFolder: { trainDir, valDir },
      validationFraction: 0,
      maxTrainImages: 0,
      maxEvalImages: 0,
    });
    for (const [path, problem] of [
      ['../etc/passwd', 'must not contain ".." segments'],
      ['/data/../../etc', 'must not contain ".." segments'],
      ['data\\..\\x', 'must not contain ".." segments'],
      ['/data/a\u0000b', 'must not contain control characters'],
      ['/data/a\nb', 'must not contain control characters'],
      ['/data/\u007f', 'must not contain control characters'],
      ['/' + 'a'.repeat(5000), 'at most 4096'],
    ] as const) {
      expect(problems(minimal({ teacher: { onnxPath: path } }))).toEqual([
        { field: 'teacher.onnx_path', problem: expect.stringContaining(problem) as string },
      ]);
      expect(
        fields(minimal({ student: { safetensors: { path, preset: 'deit_pico_distilled_patch4_28' } } })),
      ).toEqual(['student.safetensors.path']);
      expect(
        fields(
          minimal({
            dataset: {
              ...folder('/d'),
              fashionMnist: undefined,
              imageFolder: { trainDir: path, valDir: '' },
            },
          }),
        ),
      ).toEqual(['dataset.image_folder.train_dir']);
      expect(fields(minimal({ dataset: { ...folder('/d', path) } }))).toEqual([
        'dataset.image_folder.val_dir',
      ]);
      expect(
        fields(
          minimal({
            dataset: {
              ...folder('/d'),
              imageFolder: undefined,
              fashionMnist: { dir: path, evalOnTest: false },
            },
          }),
        ),
      ).toEqual(['dataset.fashion_mnist.dir']);
    }
    // Dots inside names are fine; only whole ".." segments climb.
    expect(validateFineTuneSpec(minimal({ teacher: { onnxPath: '/m/a..b/.x/t.onnx' } })).teacher).toEqual({
      kind: 'onnx',
      path: '/m/a..b/.x/t.onnx',
    });
    // Model and alias names are registry names: no separators, "..", or control characters.
    for (const name of ['../x', 'a/b', 'a\\b', 'a\u0000', 'a\n', '..']) {
      expect(fields(minimal({ outputModel: name }))).toEqual(['output_model']);
      expect(fields(minimal({ promotion: { alias: name, minImprovement: 0 } }))).toEqual(['promotion.alias']);
      expect(fields(minimal({ student: { registryRef: `${name}@production` } }))).toEqual([
        'student.registry_ref',
      ]);
      expect(fields(minimal({ teacher: { registryRef: `m@${name}` } }))).toEqual(['teacher.registry_ref']);
    }
  });

  it('checks presets against a known list when given one', () => {
    const input = minimal({ student: { preset: 'deit_huge' } });
    expect(() => validateFineTuneSpec(input, { presets: ['deit_pico_distilled_patch4_28'] })).toThrow(
      'student.preset: unknown preset "deit_huge"; known presets: deit_pico_distilled_patch4_28',
    );
    expect(validateFineTuneSpec(input).student).toEqual({ kind: 'preset', preset: 'deit_huge' });
  });

  it('dataset', () => {
    const dataset = (d: Partial<trainerV1.DatasetSpec>): trainerV1.FineTuneSpec =>
      minimal({ dataset: { validationFraction: 0, maxTrainImages: 0, maxEvalImages: 0, ...d } });
    expect(fields(dataset({}))).toEqual(['dataset']);
    expect(
      fields(
        dataset({ fashionMnist: { dir: '', evalOnTest: false }, imageFolder: { trainDir: 'a', valDir: '' } }),
      ),
    ).toEqual(['dataset']);
    expect(fields(dataset({ imageFolder: { trainDir: '', valDir: '' } }))).toEqual([
      'dataset.image_folder.train_dir',
    ]);
    expect(fields(dataset({ imageFolder: { trainDir: '/d', valDir: '/d' } }))).toEqual([
      'dataset.image_folder.val_dir',
    ]);
    expect(fields(dataset({ fashionMnist: { dir: '', evalOnTest: false }, validationFraction: 1 }))).toEqual([
      'dataset.validation_fraction',
    ]);
    expect(
      fields(dataset({ fashionMnist: { dir: '', evalOnTest: false }, validationFraction: -0.1 })),
    ).toEqual(['dataset.validation_fraction']);
    expect(
      fields(
        dataset({ fashionMnist: { dir: '', evalOnTest: false }, maxTrainImages: 1.5, maxEvalImages: -1 }),
      ),
    ).toEqual(['dataset.max_train_images', 'dataset.max_eval_images']);
  });

  it('distillation', () => {
    const distillation = (d: Partial<trainerV1.DistillationSpec>): trainerV1.FineTuneSpec =>
      minimal({ distillation: { type: D.DISTILLATION_TYPE_SOFT, softNormalization: 0, ...d } });
    expect(fields(distillation({ alpha: -0.1 }))).toEqual(['distillation.alpha']);
    expect(fields(distillation({ tau: -1 }))).toEqual(['distillation.tau']);
    expect(fields(distillation({ tau: Number.NaN }))).toEqual(['distillation.tau']);
    expect(fields(distillation({ type: 9 as trainerV1.DistillationType }))).toEqual(['distillation.type']);
    expect(fields(distillation({ softNormalization: -1 }))).toEqual(['distillation.soft_normalization']);
    expect(validateFineTuneSpec(distillation({ alpha: 0 })).distillation.alpha).toBe(0);
    expect(validateFineTuneSpec(distillation({ alpha: 1 })).distillation.alpha).toBe(1);
  });

  it('optimization', () => {
    const optimization = (o: Partial<trainerV1.OptimizationSpec>): trainerV1.FineTuneSpec =>
      minimal({ optimization: { epochs: 4, batchSize: 8, lrFixed: false, warmupEpochs: 0, ...o } });
    expect(fields(optimization({ epochs: 10_001 }))).toEqual(['optimization.epochs']);
    expect(fields(optimization({ epochs: 1.5 }))).toEqual(['optimization.epochs']);
    expect(fields(optimization({ batchSize: 65_537 }))).toEqual(['optimization.batch_size']);
    expect(fields(optimization({ lr: 0 }))).toEqual(['optimization.lr']);
    expect(fields(optimization({ lr: Number.POSITIVE_INFINITY }))).toEqual(['optimization.lr']);
    expect(fields(optimization({ weightDecay: -0.01 }))).toEqual(['optimization.weight_decay']);
    expect(fields(optimization({ warmupEpochs: -1 }))).toEqual(['optimization.warmup_epochs']);
    expect(fields(optimization({ warmupEpochs: 5 }))).toEqual(['optimization.warmup_epochs']);
    expect(fields(optimization({ warmupLr: -1e-6 }))).toEqual(['optimization.warmup_lr']);
    expect(fields(optimization({ minLr: -1e-5 }))).toEqual(['optimization.min_lr']);
    expect(fields(optimization({ labelSmoothing: 1 }))).toEqual(['optimization.label_smoothing']);
    expect(fields(optimization({ dropPath: 1 }))).toEqual(['optimization.drop_path']);
    expect(validateFineTuneSpec(optimization({ warmupEpochs: 4 })).optimization.warmupEpochs).toBe(4);
  });

  it('augmentation', () => {
    const augmentation = (a: Partial<trainerV1.AugmentationSpec>): trainerV1.FineTuneSpec =>
      minimal({
        augmentation: {
          crop: C.CROP_MODE_UNSPECIFIED,
          padding: 0,
          horizontalFlip: false,
          randomErasing: 0,
          mixupAlpha: 0,
          cutmixAlpha: 0,
          ...a,
        },
      });
    expect(fields(augmentation({ crop: C.CROP_MODE_PADDED }))).toEqual(['augmentation.padding']);
    expect(fields(augmentation({ crop: C.CROP_MODE_RANDOM_RESIZED, padding: 4 }))).toEqual([
      'augmentation.padding',
    ]);
    expect(fields(augmentation({ crop: 7 as trainerV1.CropMode }))).toEqual(['augmentation.crop']);
    expect(fields(augmentation({ randomErasing: 1.5, mixupAlpha: -1, cutmixAlpha: Number.NaN }))).toEqual([
      'augmentation.random_erasing',
      'augmentation.mixup_alpha',
      'augmentation.cutmix_alpha',
    ]);
  });

  it('seed, trainable scope, eval interval and promotion', () => {
    expect(fields(minimal({ seed: -1 }))).toEqual(['seed']);
    expect(fields(minimal({ trainable: { all: false } }))).toEqual(['trainable.all']);
    expect(fields(minimal({ trainable: { lastBlocks: 0 } }))).toEqual(['trainable.last_blocks']);
    expect(fields(minimal({ trainable: { all: true, lastBlocks: 2 } }))).toEqual(['trainable']);
    expect(fields(minimal({ evalIntervalEpochs: -2 }))).toEqual(['eval_interval_epochs']);
    expect(fields(minimal({ promotion: { alias: '', minImprovement: 0.01 } }))).toEqual([
      'promotion.min_improvement',
    ]);
    expect(fields(minimal({ promotion: { alias: 'production', minImprovement: 2 } }))).toEqual([
      'promotion.min_improvement',
    ]);
    expect(
      validateFineTuneSpec(minimal({ promotion: { alias: '', minImprovement: 0 } })).promotion,
    ).toBeUndefined();
  });
});

describe('runSpecChecks', () => {
  it('gathers the problems of every start-time check into one error', async () => {
    const spec = validateFineTuneSpec(minimal());
    const checks = [
      () => [{ field: 'teacher.registry_ref', problem: 'model "fmnist-regnet" not found' }],
      () => Promise.resolve([]),
      () => Promise.resolve([{ field: 'dataset.fashion_mnist.dir', problem: 'no such folder' }]),
    ];
    await expect(runSpecChecks(spec, checks)).rejects.toThrow(
      'invalid fine-tune spec (2 problems): teacher.registry_ref: model "fmnist-regnet" not found; dataset.fashion_mnist.dir: no such folder',
    );
    await expect(runSpecChecks(spec, [() => []])).resolves.toBeUndefined();
  });
});
