import { PROTO_PACKAGES, trainerV1, trainerV1Client } from '@deit-serve/proto';
import { startTestService, type TestService } from '@deit-serve/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../cli';
import { fakeTrainerModule, io, job, progress, trainer } from './fake-trainer.testing';
import { runFinetuneCommand } from './finetune';
import { FINETUNE_FLAG_DEFAULTS, withFlagNames } from './finetune-flags';

const { JobState, DistillationType, SoftNormalization, CropMode } = trainerV1;

describe('deit finetune', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService(fakeTrainerModule, {
      protoFiles: ['trainer'],
      packages: [PROTO_PACKAGES.trainer],
    });
  });
  afterAll(() => service?.close());
  beforeEach(() => trainer.reset());

  it('builds the FineTuneSpec from the flags and prints the job id', async () => {
    const t = io();
    const code = await runFinetuneCommand(
      [
        '--output',
        'fmnist-pico',
        '--student-safetensors',
        '/ckpt/pico.safetensors',
        '--student-preset',
        'deit_pico_distilled_patch4_28',
        '--teacher-onnx',
        '/t/teacher.onnx',
        '--image-folder',
        '/data/train',
        '--val-dir',
        '/data/val',
        '--max-train',
        '512',
        '--max-eval',
        '128',
        '--distillation',
        'soft',
        '--alpha',
        '0.7',
        '--tau',
        '2',
        '--soft-norm',
        'batchmean',
        '--epochs',
        '3',
        '--batch-size',
        '64',
        '--lr',
        '0.001',
        '--lr-fixed',
        '--weight-decay',
        '0',
        '--warmup-epochs',
        '0.5',
        '--label-smoothing',
        '0.1',
        '--drop-path',
        '0.05',
        '--crop',
        'padded',
        '--padding',
        '2',
        '--flip',
        '--random-erasing',
        '0.25',
        '--mixup',
        '0.8',
        '--cutmix',
        '1',
        '--seed',
        '7',
        '--last-blocks',
        '2',
        '--eval-interval',
        '1',
        '--promote',
        'prod',
        '--min-improvement',
        '0.002',
        '--request-id',
        'req-1',
        '--addr',
        service.address,
      ],
      t.io,
    );
    expect(t.err()).toBe('');
    expect(code).toBe(0);
    expect(t.out()).toBe('job-1\n');
    expect(trainer.started).toHaveLength(1);
    const req = trainer.started[0];
    expect(req?.requestId).toBe('req-1');
    const spec = req?.spec;
    expect(spec?.outputModel).toBe('fmnist-pico');
    expect(spec?.student?.safetensors).toEqual({
      path: '/ckpt/pico.safetensors',
      preset: 'deit_pico_distilled_patch4_28',
    });
    expect(spec?.teacher?.onnxPath).toBe('/t/teacher.onnx');
    expect(spec?.dataset).toMatchObject({
      imageFolder: { trainDir: '/data/train', valDir: '/data/val' },
      maxTrainImages: 512,
      maxEvalImages: 128,
    });
    expect(spec?.dataset?.fashionMnist).toBeUndefined();
    expect(spec?.distillation?.type).toBe(DistillationType.DISTILLATION_TYPE_SOFT);
    expect(spec?.distillation?.alpha).toBeCloseTo(0.7);
    expect(spec?.distillation?.tau).toBe(2);
    expect(spec?.distillation?.softNormalization).toBe(SoftNormalization.SOFT_NORMALIZATION_BATCHMEAN);
    expect(spec?.optimization).toMatchObject({ epochs: 3, batchSize: 64, lrFixed: true, weightDecay: 0 });
    expect(spec?.optimization?.lr).toBeCloseTo(0.001);
    expect(spec?.optimization?.warmupEpochs).toBe(0.5);
    expect(spec?.optimization?.labelSmoothing).toBeCloseTo(0.1);
    expect(spec?.optimization?.dropPath).toBeCloseTo(0.05);
    expect(spec?.augmentation).toMatchObject({
      crop: CropMode.CROP_MODE_PADDED,
      padding: 2,
      horizontalFlip: true,
      randomErasing: 0.25,
      cutmixAlpha: 1,
    });
    expect(spec?.augmentation?.mixupAlpha).toBeCloseTo(0.8);
    expect(spec?.seed).toBe(7);
    expect(spec?.trainable?.lastBlocks).toBe(2);
    expect(spec?.evalIntervalEpochs).toBe(1);
    expect(spec?.promotion?.alias).toBe('prod');
    expect(spec?.promotion?.minImprovement).toBeCloseTo(0.002);
  });

  it('leaves unset optional values to the trainer and defaults to Fashion-MNIST', async () => {
    const t = io({ DEIT_TRAINER_ADDR: service.address });
    expect(
      await runFinetuneCommand(
        [
          '--output',
          'm',
          '--student-ref',
          'tiny@prod',
          '--teacher-ref',
          'big:2',
          '--dataset',
          'fashion-mnist:/d',
        ],
        t.io,
      ),
    ).toBe(0);
    const spec = trainer.started[0]?.spec;
    expect(spec?.student?.registryRef).toBe('tiny@prod');
    expect(spec?.teacher?.registryRef).toBe('big:2');
    expect(spec?.dataset?.fashionMnist?.dir).toBe('/d');
    expect(spec?.distillation?.type).toBe(DistillationType.DISTILLATION_TYPE_UNSPECIFIED);
    expect(spec?.distillation?.alpha).toBeUndefined();
    expect(spec?.optimization?.lr).toBeUndefined();
    expect(spec?.optimization?.epochs).toBe(FINETUNE_FLAG_DEFAULTS.epochs);
    expect(spec?.trainable).toBeUndefined();
    expect(spec?.promotion).toBeUndefined();

    trainer.reset();
    expect(await runFinetuneCommand(['--output', 'm', '--student-preset', 'p'], t.io)).toBe(0);
    expect(trainer.started[0]?.spec?.student?.preset).toBe('p');
    expect(trainer.started[0]?.spec?.dataset?.fashionMnist?.dir).toBe('');
  });

  it('prints INVALID_ARGUMENT from the trainer with the flag behind each field it names, and exits 1', async () => {
    const defaults = io();
    expect(
      await runFinetuneCommand(
        ['--output', 'm', '--student-preset', 'p', '--addr', service.address],
        defaults.io,
      ),
    ).toBe(0);
    // Without --epochs and --batch-size the trainer gets the CLI's defaults, never 0 (which it refuses).
    expect(trainer.started.at(-1)?.spec?.optimization).toMatchObject({
      epochs: FINETUNE_FLAG_DEFAULTS.epochs,
      batchSize: FINETUNE_FLAG_DEFAULTS.batchSize,
    });
    const t = io();
    expect(
      await runFinetuneCommand(['--output', 'bad', '--student-preset', 'p', '--addr', service.address], t.io),
    ).toBe(1);
    expect(t.err()).toBe(
      'deit finetune: INVALID_ARGUMENT: invalid fine-tune spec: --output (output_model): "bad" is reserved; ' +
        '--epochs (optimization.epochs): must be ≥ 1\n',
    );
    expect(t.out()).toBe('');
  });

  it('--watch follows the job and exits 0 on success with the published version and the alias', async () => {
    trainer.events.set('job-1', [
      { jobId: 'job-1', time: undefined, state: JobState.JOB_STATE_QUEUED },
      { jobId: 'job-1', time: undefined, state: JobState.JOB_STATE_RUNNING },
      { jobId: 'job-1', time: undefined, progress: progress({ step: 5 }) },
      { jobId: 'job-1', time: undefined, progress: progress({ step: 10 }) },
      {
        jobId: 'job-1',
        time: undefined,
        eval: {
          epoch: 1,
          dataset: 'fashion-mnist validation',
          images: 100,
          cls: { top1: 0.81, top5: 0.99 },
          dist: { top1: 0.83, top5: 0.99 },
          average: { top1: 0.84, top5: 0.99 },
          teacherTop1: 0.9,
          clsDistAgreement: 0.95,
        },
      },
      { jobId: 'job-1', time: undefined, message: 'published m:4' },
      { jobId: 'job-1', time: undefined, state: JobState.JOB_STATE_SUCCEEDED },
    ]);
    // The fake keeps the first job it stored under an id: the finished one.
    trainer.jobs.set(
      'job-1',
      job({
        id: 'job-1',
        state: JobState.JOB_STATE_SUCCEEDED,
        spec: trainerV1Client.FineTuneSpec.fromPartial({ outputModel: 'm', promotion: { alias: 'prod' } }),
        result: {
          model: 'm',
          version: 4,
          sha256: 'ab'.repeat(32),
          finalEval: undefined,
          promoted: true,
          promotionReason: 'top-1 0.84 > 0.80 + 0.002',
        },
      }),
    );
    const t = io();
    const code = await runFinetuneCommand(
      ['--output', 'm', '--student-preset', 'p', '--promote', 'prod', '--watch', '--addr', service.address],
      t.io,
    );
    expect(t.err()).toBe('');
    expect(code).toBe(0);
    const lines = t.out().trimEnd().split('\n');
    expect(lines[0]).toBe('started job job-1 (queued)');
    expect(lines).toContain('job-1: running');
    expect(lines).toContain('epoch 1/2 step 5/10  loss 0.5000  100.0 img/s  ETA 1m05s');
    expect(lines.find((l) => l.startsWith('eval'))).toBe(
      'eval epoch 1 on fashion-mnist validation (100 images): top-1 cls 81.00%, dist 83.00%, avg 84.00%; teacher 90.00%, cls/dist agree 95.00%',
    );
    expect(lines).toContain('job-1: succeeded');
    expect(lines).toContain(`published m:4 (sha256 ${'ab'.repeat(6)})`);
    expect(lines.at(-1)).toBe('alias prod moved to 4 (top-1 0.84 > 0.80 + 0.002)');
  });

  it('draws one live progress bar on a TTY', async () => {
    trainer.events.set('job-1', [
      { jobId: 'job-1', time: undefined, progress: progress({ step: 5 }) },
      { jobId: 'job-1', time: undefined, progress: progress({ step: 10 }) },
      { jobId: 'job-1', time: undefined, state: JobState.JOB_STATE_FAILED },
    ]);
    trainer.jobs.set('job-1', job({ id: 'job-1', state: JobState.JOB_STATE_FAILED, error: 'out of memory' }));
    const t = io({}, true);
    const code = await runFinetuneCommand(
      ['--output', 'm', '--student-preset', 'p', '--watch', '--addr', service.address],
      t.io,
    );
    expect(code).toBe(1);
    const out = t.out();
    expect(out).toContain('\r\x1b[Kepoch 1/2 [##########----------] step 5/10');
    expect(out).toContain('\r\x1b[Kepoch 1/2 [####################] step 10/10');
    expect(out.endsWith('\r\x1b[Kjob-1: failed\n')).toBe(true);
    expect(t.err()).toBe('deit finetune: job job-1 failed: out of memory\n');
  });

  it('--watch exits 1 when the job is cancelled', async () => {
    trainer.events.set('job-1', [
      { jobId: 'job-1', time: undefined, state: JobState.JOB_STATE_CANCELLING },
      { jobId: 'job-1', time: undefined, state: JobState.JOB_STATE_CANCELLED },
    ]);
    trainer.jobs.set('job-1', job({ id: 'job-1', state: JobState.JOB_STATE_CANCELLED }));
    const t = io();
    expect(
      await runFinetuneCommand(
        ['--output', 'm', '--student-preset', 'p', '--watch', '--addr', service.address],
        t.io,
      ),
    ).toBe(1);
    expect(t.err()).toBe('deit finetune: job job-1 was cancelled\n');
  });

  it.each([
    [['--student-preset', 'p'], /--output NAME is required/],
    [['--output', 'm'], /name the student/],
    [['--output', 'm', '--student-ref', 'a', '--student-preset', 'p'], /not both/],
    [['--output', 'm', '--student-safetensors', 'f'], /needs --student-preset/],
    [['--output', 'm', '--student-preset', 'p', '--teacher-ref', 'a', '--teacher-onnx', 'b'], /not both/],
    [['--output', 'm', '--student-preset', 'p', '--dataset', 'cifar'], /--dataset must be fashion-mnist/],
    [['--output', 'm', '--student-preset', 'p', '--val-dir', 'v'], /--val-dir goes with --image-folder/],
    [
      ['--output', 'm', '--student-preset', 'p', '--distillation', 'warm'],
      /--distillation must be none, soft, hard/,
    ],
    [['--output', 'm', '--student-preset', 'p', '--epochs', '0'], /--epochs must be an integer ≥ 1, not "0"/],
    [['--output', 'm', '--student-preset', 'p', '--alpha', 'x'], /--alpha must be a number, not "x"/],
    [['--output', 'm', '--student-preset', 'p', '--min-improvement', '0.1'], /goes with --promote/],
    [['--output', 'm', '--student-preset', 'p', '--frobnicate'], /Unknown option '--frobnicate'/],
  ])('refuses %j with exit 2, sending nothing', async (argv, message) => {
    const t = io();
    expect(await runFinetuneCommand([...argv, '--addr', service.address], t.io)).toBe(2);
    expect(t.err()).toMatch(message);
    expect(trainer.started).toHaveLength(0);
  });

  it('is reachable as `deit finetune`, with its own help', async () => {
    const t = io();
    expect(await runCli(['finetune', '--help'], t.io)).toBe(0);
    expect(t.out()).toMatch(/^Usage: deit finetune --output NAME/);
  });
});

describe("deit finetune flags and the trainer's field names", () => {
  it('names the flag beside every field a problem names, leaving other text alone', () => {
    expect(
      withFlagNames(
        'invalid fine-tune spec (3 problems): optimization.batch_size: must be an integer in [1, 65536], got 0; ' +
          'dataset.image_folder.val_dir: not found; student: unknown preset "x"',
      ),
    ).toBe(
      'invalid fine-tune spec (3 problems): --batch-size (optimization.batch_size): must be an integer in [1, 65536], got 0; ' +
        '--val-dir (dataset.image_folder.val_dir): not found; student: unknown preset "x"',
    );
    // A field inside another's text is not a problem's field.
    expect(withFlagNames('seedling: x')).toBe('seedling: x');
  });
});
