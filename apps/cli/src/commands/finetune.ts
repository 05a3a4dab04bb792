import { trainerV1Client } from '@deit-serve/proto';
import { type ServiceError, status } from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import {
  call,
  DEFAULT_TRAINER_ADDR,
  jobJson,
  reportError,
  stateName,
  trainerAddr,
  trainerClient,
  watchJob,
} from './jobs';
import { FINETUNE_FLAG_DEFAULTS, withFlagNames } from './finetune-flags';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, connectionOf, type Connection } from './connection';
import { type CommandIo, EXIT_OK, EXIT_USAGE, intFlag, numberFlag, UsageError } from './options';

const { DistillationType, SoftNormalization, CropMode } = trainerV1Client;

const USAGE = `Usage: deit finetune --output NAME STUDENT [options]

Starts a distillation fine-tune on the trainer and prints the job id. The trainer checks the whole
spec and reports every bad field at once.

Student (one of):
  --student-ref REF                 fine-tune a registry model (NAME, NAME@ALIAS, NAME:VERSION)
  --student-preset P                train preset P from scratch
  --student-safetensors FILE --student-preset P   start from a timm checkpoint of preset P
Teacher (optional, at most one):
  --teacher-ref REF | --teacher-onnx FILE
Data:
  --dataset fashion-mnist[:DIR]     Fashion-MNIST IDX files (default; DIR defaults to the trainer's)
  --image-folder DIR [--val-dir DIR]  one sub-folder per class
  --max-train N / --max-eval N      use at most N training / evaluation images
Distillation:
  --distillation none|soft|hard  --alpha A  --tau T  --soft-norm numel|batchmean
Optimization:
  --epochs N (default ${FINETUNE_FLAG_DEFAULTS.epochs})  --batch-size B (default ${FINETUNE_FLAG_DEFAULTS.batchSize})
  --lr LR  --lr-fixed  --weight-decay W  --warmup-epochs E
  --label-smoothing S  --drop-path D  --seed N  --last-blocks N  --eval-interval N
Augmentation:
  --crop none|rrc|padded  --padding P  --flip  --random-erasing P  --mixup A  --cutmix A
Publishing:
  --output NAME                     registry name to publish under (required)
  --promote ALIAS [--min-improvement D]   move ALIAS when top-1 improves by at least D (fraction)
Other:
  --request-id ID     idempotency key: the same key returns the first job
  --watch             follow the job; exit 0 when it succeeds, 1 when it fails or is cancelled
  --addr HOST:PORT    trainer (default: $DEIT_TRAINER_ADDR, else ${DEFAULT_TRAINER_ADDR})
  --json              machine-readable output
  -h, --help          this text

${CONNECTION_USAGE}`;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  output: { type: 'string' },
  'student-ref': { type: 'string' },
  'student-preset': { type: 'string' },
  'student-safetensors': { type: 'string' },
  'teacher-ref': { type: 'string' },
  'teacher-onnx': { type: 'string' },
  dataset: { type: 'string' },
  'image-folder': { type: 'string' },
  'val-dir': { type: 'string' },
  distillation: { type: 'string' },
  alpha: { type: 'string' },
  tau: { type: 'string' },
  'soft-norm': { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  'lr-fixed': { type: 'boolean' },
  'weight-decay': { type: 'string' },
  'warmup-epochs': { type: 'string' },
  'label-smoothing': { type: 'string' },
  'drop-path': { type: 'string' },
  crop: { type: 'string' },
  padding: { type: 'string' },
  flip: { type: 'boolean' },
  'random-erasing': { type: 'string' },
  mixup: { type: 'string' },
  cutmix: { type: 'string' },
  seed: { type: 'string' },
  'last-blocks': { type: 'string' },
  'eval-interval': { type: 'string' },
  'max-train': { type: 'string' },
  'max-eval': { type: 'string' },
  promote: { type: 'string' },
  'min-improvement': { type: 'string' },
  'request-id': { type: 'string' },
  addr: { type: 'string' },
  watch: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = {
  [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string;
};

function choice<T>(flag: string, text: string | undefined, choices: Record<string, T>, unset: T): T {
  if (text === undefined) return unset;
  const v = choices[text.toLowerCase()];
  if (v === undefined)
    throw new UsageError(`${flag} must be ${Object.keys(choices).join(', ')}, not ${JSON.stringify(text)}`);
  return v;
}

const opt = <T>(text: string | undefined, parse: (t: string) => T): T | undefined =>
  text === undefined ? undefined : parse(text);

/** The FineTuneSpec a command line asks for; throws UsageError for a flag that cannot be right. */
export function specFromFlags(v: Values): trainerV1Client.FineTuneSpec {
  if (!v.output) throw new UsageError('--output NAME is required');

  const ref = v['student-ref'];
  const preset = v['student-preset'];
  const safetensors = v['student-safetensors'];
  let student: trainerV1Client.StudentSource;
  if (safetensors !== undefined) {
    if (ref !== undefined) throw new UsageError('give --student-ref or --student-safetensors, not both');
    if (!preset) throw new UsageError('--student-safetensors needs --student-preset P');
    student = { safetensors: { path: safetensors, preset } };
  } else if (ref !== undefined) {
    if (preset !== undefined) throw new UsageError('give --student-ref or --student-preset, not both');
    student = { registryRef: ref };
  } else if (preset !== undefined) student = { preset };
  else throw new UsageError('name the student: --student-ref, --student-preset or --student-safetensors');

  if (v['teacher-ref'] !== undefined && v['teacher-onnx'] !== undefined)
    throw new UsageError('give --teacher-ref or --teacher-onnx, not both');
  const teacher =
    v['teacher-ref'] !== undefined
      ? { registryRef: v['teacher-ref'] }
      : v['teacher-onnx'] !== undefined
        ? { onnxPath: v['teacher-onnx'] }
        : undefined;

  let source: Pick<trainerV1Client.DatasetSpec, 'fashionMnist' | 'imageFolder'>;
  if (v['image-folder'] !== undefined) {
    if (v.dataset !== undefined) throw new UsageError('give --dataset or --image-folder, not both');
    source = { imageFolder: { trainDir: v['image-folder'], valDir: v['val-dir'] ?? '' } };
  } else {
    if (v['val-dir'] !== undefined) throw new UsageError('--val-dir goes with --image-folder');
    const [kind, ...dir] = (v.dataset ?? 'fashion-mnist').split(':');
    if (kind !== 'fashion-mnist')
      throw new UsageError(
        `--dataset must be fashion-mnist[:DIR] (or use --image-folder), not ${JSON.stringify(v.dataset)}`,
      );
    source = { fashionMnist: { dir: dir.join(':'), evalOnTest: false } };
  }

  if (v['min-improvement'] !== undefined && v.promote === undefined)
    throw new UsageError('--min-improvement goes with --promote ALIAS');

  const num = (flag: keyof Values) => opt(v[flag] as string | undefined, (t) => numberFlag(`--${flag}`, t));
  const int = (flag: keyof Values, min = 0) =>
    opt(v[flag] as string | undefined, (t) => intFlag(`--${flag}`, t, min));

  return trainerV1Client.FineTuneSpec.fromPartial({
    outputModel: v.output,
    student,
    teacher,
    dataset: { ...source, maxTrainImages: int('max-train') ?? 0, maxEvalImages: int('max-eval') ?? 0 },
    distillation: {
      type: choice(
        '--distillation',
        v.distillation,
        {
          none: DistillationType.DISTILLATION_TYPE_NONE,
          soft: DistillationType.DISTILLATION_TYPE_SOFT,
          hard: DistillationType.DISTILLATION_TYPE_HARD,
        },
        DistillationType.DISTILLATION_TYPE_UNSPECIFIED,
      ),
      alpha: num('alpha'),
      tau: num('tau'),
      softNormalization: choice(
        '--soft-norm',
        v['soft-norm'],
        {
          numel: SoftNormalization.SOFT_NORMALIZATION_NUMEL,
          batchmean: SoftNormalization.SOFT_NORMALIZATION_BATCHMEAN,
        },
        SoftNormalization.SOFT_NORMALIZATION_UNSPECIFIED,
      ),
    },
    optimization: {
      epochs: int('epochs', 1) ?? FINETUNE_FLAG_DEFAULTS.epochs,
      batchSize: int('batch-size', 1) ?? FINETUNE_FLAG_DEFAULTS.batchSize,
      lr: num('lr'),
      lrFixed: v['lr-fixed'] === true,
      weightDecay: num('weight-decay'),
      warmupEpochs: num('warmup-epochs') ?? 0,
      labelSmoothing: num('label-smoothing'),
      dropPath: num('drop-path'),
    },
    augmentation: {
      crop: choice(
        '--crop',
        v.crop,
        {
          none: CropMode.CROP_MODE_NONE,
          rrc: CropMode.CROP_MODE_RANDOM_RESIZED,
          padded: CropMode.CROP_MODE_PADDED,
        },
        CropMode.CROP_MODE_UNSPECIFIED,
      ),
      padding: int('padding') ?? 0,
      horizontalFlip: v.flip === true,
      randomErasing: num('random-erasing') ?? 0,
      mixupAlpha: num('mixup') ?? 0,
      cutmixAlpha: num('cutmix') ?? 0,
    },
    seed: int('seed') ?? 0,
    trainable: v['last-blocks'] !== undefined ? { lastBlocks: int('last-blocks', 1) } : undefined,
    evalIntervalEpochs: int('eval-interval') ?? 0,
    promotion: v.promote ? { alias: v.promote, minImprovement: num('min-improvement') ?? 0 } : undefined,
  });
}

/**
 * `deit finetune ...`: starts a job and prints its id; with --watch follows it to the end. Exit 0 on
 * success, 1 when the trainer refuses the spec or the job fails or is cancelled, 2 for a wrong
 * command line.
 */
export async function runFinetuneCommand(argv: string[], io: CommandIo): Promise<number> {
  let spec: trainerV1Client.FineTuneSpec;
  let values: Values;
  let connection: Connection;
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
    values = parsed.values;
    if (values.help === true) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    spec = specFromFlags(values);
    connection = connectionOf(values, io.env);
  } catch (error) {
    io.stderr.write(`deit finetune: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  const addr = trainerAddr(values.addr, io.env);
  const json = values.json === true;
  const client = trainerClient(addr, connection);
  try {
    const res = await call<trainerV1Client.StartFineTuneResponse>((cb) =>
      client.startFineTune(
        trainerV1Client.StartFineTuneRequest.fromPartial({ spec, requestId: values['request-id'] ?? '' }),
        cb,
      ),
    );
    const job = trainerV1Client.Job.fromPartial(res.job ?? {});
    if (json) io.stdout.write(JSON.stringify({ job: jobJson(job) }) + '\n');
    else if (values.watch) io.stdout.write(`started job ${job.id} (${stateName(job.state)})\n`);
    else io.stdout.write(`${job.id}\n`);
    if (!values.watch) return EXIT_OK;
    return await watchJob(client, job.id, io, json, 'deit finetune');
  } catch (error) {
    const e = error as Partial<ServiceError>;
    // The trainer names spec fields; the user typed flags.
    if (e.code === status.INVALID_ARGUMENT && typeof e.details === 'string')
      Object.assign(e, { details: withFlagNames(e.details) });
    return reportError(io, 'deit finetune', addr, json, error, connection);
  } finally {
    client.close();
  }
}
