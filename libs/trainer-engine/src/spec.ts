/**
 * A fine-tune request (`trainerV1.FineTuneSpec`) checked and turned into the typed, fully defaulted
 * spec a job runs with. Validation is pure and structural; cheap checks that need the registry (a ref
 * resolves) run at request time through {@link SpecCheck}s, and what needs the data or a model (files
 * are readable, label sets agree, preset depth) is checked by the job itself when it starts.
 */
import { InvalidArgumentError } from '@deit-serve/core';
import { trainerV1 } from '@deit-serve/proto';
import { assertAliasName, assertModelName, formatModelRef, parseModelRef } from '@deit-serve/registry';
import { pathSyntaxProblem } from './paths';

export type DistillationType = 'none' | 'soft' | 'hard';
/** `numel`: the official DeiT code (summed KL / (batch × classes)); `batchmean`: summed KL / batch. */
export type SoftNormalization = 'numel' | 'batchmean';
export type CropMode = 'none' | 'random-resized' | 'padded';

export type StudentSource =
  /** Canonical `name`, `name@alias` or `name:version`. */
  | { readonly kind: 'registry'; readonly ref: string }
  | { readonly kind: 'safetensors'; readonly path: string; readonly preset: string }
  | { readonly kind: 'preset'; readonly preset: string };

export type TeacherSource =
  { readonly kind: 'registry'; readonly ref: string } | { readonly kind: 'onnx'; readonly path: string };

export type DatasetSource =
  | { readonly kind: 'fashion-mnist'; readonly dir: string; readonly evalOnTest: boolean }
  | { readonly kind: 'image-folder'; readonly trainDir: string; readonly valDir?: string };

export interface DatasetOptions {
  readonly source: DatasetSource;
  readonly validationFraction: number;
  /** Absent: every image. */
  readonly maxTrainImages?: number;
  readonly maxEvalImages?: number;
}

export interface DistillationOptions {
  readonly type: DistillationType;
  readonly alpha: number;
  readonly tau: number;
  readonly softNormalization: SoftNormalization;
}

export interface OptimizationOptions {
  readonly epochs: number;
  readonly batchSize: number;
  /** As requested (or the default), before batch scaling. */
  readonly baseLr: number;
  readonly lrFixed: boolean;
  /** The peak learning rate the schedule uses: `baseLr × batchSize / 512` unless `lrFixed`. */
  readonly lr: number;
  readonly weightDecay: number;
  readonly warmupEpochs: number;
  readonly warmupLr: number;
  readonly minLr: number;
  readonly labelSmoothing: number;
  readonly dropPath: number;
}

export interface AugmentationOptions {
  readonly crop: CropMode;
  readonly padding: number;
  readonly horizontalFlip: boolean;
  readonly randomErasing: number;
  readonly mixupAlpha: number;
  readonly cutmixAlpha: number;
}

export type TrainableScope =
  { readonly kind: 'all' } | { readonly kind: 'last-blocks'; readonly blocks: number };

export interface PromotionPolicy {
  readonly alias: string;
  readonly minImprovement: number;
  /**
   * Set by the trainer when it accepts the job, never from the request: the alias is protected
   * (DEIT_PROTECTED_ALIASES) and the caller held `admin` (the policy alone decides), or did not
   * (`server-evaluated`: the new version must beat the incumbent on the incumbent's recorded
   * evaluation set, rebuilt by the trainer from its own data). Absent: an unprotected alias.
   */
  readonly guard?: PromotionGuard;
}

export type PromotionGuard = 'admin' | 'server-evaluated';

/** Plain JSON: it is stored with the job and handed to the worker process as is. */
export interface FineTuneJobSpec {
  readonly outputModel: string;
  readonly student: StudentSource;
  /** Required for soft and hard distillation; optional with `none` (then only its top-1 is reported). */
  readonly teacher?: TeacherSource;
  readonly dataset: DatasetOptions;
  readonly distillation: DistillationOptions;
  readonly optimization: OptimizationOptions;
  readonly augmentation: AugmentationOptions;
  readonly seed: number;
  readonly trainable: TrainableScope;
  readonly evalIntervalEpochs: number;
  /** Absent: never promote. */
  readonly promotion?: PromotionPolicy;
}

/** Every default of a fine-tune, from the proto's comments and the DeiT recipe (../shared/reference/deit.md). */
export const FINE_TUNE_DEFAULTS = {
  /** Used when `distillation.type` is unspecified and a teacher is given; without one: `none`. */
  distillationWithTeacher: 'hard',
  alpha: 0.5,
  tau: 1.0,
  softNormalization: 'numel',
  lr: 5e-4,
  /** `lr` is given for this batch size and scaled linearly to the actual one. */
  lrReferenceBatchSize: 512,
  weightDecay: 0.05,
  warmupLr: 1e-6,
  minLr: 1e-5,
  labelSmoothing: 0.1,
  dropPath: 0.1,
  validationFraction: 0.1,
  evalIntervalEpochs: 1,
  fashionMnistDir: '/usr/share/datasets/fashion-mnist',
  /** Like every other augmentation, cropping is off unless asked for. */
  crop: 'none',
} as const satisfies {
  distillationWithTeacher: DistillationType;
  softNormalization: SoftNormalization;
  crop: CropMode;
  [key: string]: unknown;
};

/** Guards against typos that would queue a job for months. */
export const MAX_EPOCHS = 10_000;
export const MAX_BATCH_SIZE = 65_536;

/** One bad field: `field` is the proto field path in snake_case, as API users write it. */
export interface SpecProblem {
  readonly field: string;
  readonly problem: string;
}

/** INVALID_ARGUMENT listing every problem as `field.path: problem`, joined by "; ". */
export class InvalidSpecError extends InvalidArgumentError {
  constructor(readonly problems: readonly SpecProblem[]) {
    super(
      `invalid fine-tune spec (${problems.length} problem${problems.length === 1 ? '' : 's'}): ` +
        problems.map((p) => `${p.field}: ${p.problem}`).join('; '),
    );
  }
}

/**
 * A check that needs more than the spec itself and is cheap enough to run before a job is queued (a
 * registry ref resolves). Returns problems rather than throwing so that all of them reach the user at
 * once.
 */
export type SpecCheck = (
  spec: FineTuneJobSpec,
  options: { readonly signal?: AbortSignal },
) => readonly SpecProblem[] | Promise<readonly SpecProblem[]>;

export interface ValidateSpecOptions {
  /** Known student presets (e.g. `DEIT_PRESET_NAMES`); when absent any well-formed name is accepted. */
  readonly presets?: readonly string[];
}

type Nullable<T> = T | null | undefined;

const PRESET_PATTERN = /^[a-z0-9][a-z0-9_]*$/;

/**
 * Checks `input` and returns the job spec with every default applied; throws {@link InvalidSpecError}
 * naming every bad field at once.
 */
export function validateFineTuneSpec(
  input: Nullable<trainerV1.FineTuneSpec>,
  options: ValidateSpecOptions = {},
): FineTuneJobSpec {
  const problems: SpecProblem[] = [];
  const bad = (field: string, problem: string): void => void problems.push({ field, problem });
  if (input == null) throw new InvalidSpecError([{ field: 'spec', problem: 'is required' }]);

  const outputModel = checked('output_model', bad, () => assertModelName(input.outputModel ?? ''));
  const student = studentSource(input.student, bad, options);
  const teacher = teacherSource(input.teacher, bad);
  const dataset = datasetOptions(input.dataset, bad);
  const distillation = distillationOptions(input.distillation, input.teacher != null, bad);
  if (teacher === undefined && distillation.type !== 'none' && input.teacher == null) {
    bad(
      'teacher',
      `is required for ${distillation.type} distillation (set distillation.type NONE to train without one)`,
    );
  }
  const optimization = optimizationOptions(input.optimization, bad);
  const augmentation = augmentationOptions(input.augmentation, bad);
  const seed = input.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0)
    bad('seed', `must be a non-negative integer, got ${String(seed)}`);
  const trainable = trainableScope(input.trainable, bad);
  const evalInterval = input.evalIntervalEpochs ?? 0;
  if (!isCount(evalInterval))
    bad('eval_interval_epochs', `must be a non-negative integer, got ${String(evalInterval)}`);
  const promotion = promotionPolicy(input.promotion, bad);

  if (problems.length > 0) throw new InvalidSpecError(problems);
  return {
    outputModel: outputModel as string,
    student: student as StudentSource,
    ...(teacher !== undefined && { teacher }),
    dataset: dataset as DatasetOptions,
    distillation,
    optimization: optimization as OptimizationOptions,
    augmentation,
    seed,
    trainable,
    evalIntervalEpochs: evalInterval === 0 ? FINE_TUNE_DEFAULTS.evalIntervalEpochs : evalInterval,
    ...(promotion !== undefined && { promotion }),
  };
}

/**
 * Runs the start-time checks and throws one {@link InvalidSpecError} with every problem they found.
 * Checks run one after another: they tend to share expensive resources (the registry, big files).
 */
export async function runSpecChecks(
  spec: FineTuneJobSpec,
  checks: readonly SpecCheck[],
  options: { readonly signal?: AbortSignal } = {},
): Promise<void> {
  const problems: SpecProblem[] = [];
  for (const check of checks) {
    options.signal?.throwIfAborted();
    problems.push(...(await check(spec, options)));
  }
  if (problems.length > 0) throw new InvalidSpecError(problems);
}

/** The problem text of an InvalidArgumentError thrown by `fn`, reported under `field`. */
function checked<T>(field: string, bad: (f: string, p: string) => void, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    if (error instanceof InvalidArgumentError) {
      bad(field, error.message);
      return undefined;
    }
    throw error;
  }
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

type Bad = (field: string, problem: string) => void;

/** The members of a oneof that are set; ts-proto leaves unset ones undefined, proto-loader may use null. */
function setMembers<T extends object>(value: T): (keyof T & string)[] {
  return (Object.keys(value) as (keyof T & string)[]).filter((k) => value[k] != null);
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function exactlyOne<T extends object>(
  field: string,
  value: T,
  members: readonly (keyof T & string)[],
  bad: Bad,
): boolean {
  const present = setMembers(value);
  const set = members.filter((k) => present.includes(k));
  if (set.length === 1) return true;
  const names = members.map(snake).join(', ');
  bad(
    field,
    set.length === 0
      ? `set one of ${names}`
      : `set only one of ${names}, got ${set.map(snake).join(' and ')}`,
  );
  return false;
}

function presetName(
  field: string,
  preset: string,
  bad: Bad,
  options: ValidateSpecOptions,
): string | undefined {
  if (preset === '') return void bad(field, 'is required');
  if (options.presets !== undefined ? !options.presets.includes(preset) : !PRESET_PATTERN.test(preset)) {
    const known = options.presets !== undefined ? `; known presets: ${options.presets.join(', ')}` : '';
    return void bad(field, `unknown preset ${JSON.stringify(preset)}${known}`);
  }
  return preset;
}

function registryRef(field: string, ref: string, bad: Bad): string | undefined {
  return checked(field, bad, () => formatModelRef(parseModelRef(ref)));
}

/** A file or folder the job will read: well-formed here; inside the data roots is checked at start. */
function checkedPath(field: string, path: Nullable<string>, bad: Bad): string | undefined {
  const problem = pathSyntaxProblem(path ?? '');
  if (problem !== undefined) return void bad(field, problem);
  return path ?? undefined;
}

function studentSource(
  input: Nullable<trainerV1.StudentSource>,
  bad: Bad,
  options: ValidateSpecOptions,
): StudentSource | undefined {
  if (input == null) return void bad('student', 'is required: set registry_ref, safetensors or preset');
  if (!exactlyOne('student', input, ['registryRef', 'safetensors', 'preset'], bad)) return undefined;
  if (input.registryRef != null) {
    const ref = registryRef('student.registry_ref', input.registryRef, bad);
    return ref === undefined ? undefined : { kind: 'registry', ref };
  }
  if (input.safetensors != null) {
    const path = checkedPath('student.safetensors.path', input.safetensors.path, bad);
    const preset = presetName('student.safetensors.preset', input.safetensors.preset ?? '', bad, options);
    return path === undefined || preset === undefined ? undefined : { kind: 'safetensors', path, preset };
  }
  const preset = presetName('student.preset', input.preset ?? '', bad, options);
  return preset === undefined ? undefined : { kind: 'preset', preset };
}

function teacherSource(input: Nullable<trainerV1.TeacherSource>, bad: Bad): TeacherSource | undefined {
  if (input == null) return undefined;
  if (!exactlyOne('teacher', input, ['registryRef', 'onnxPath'], bad)) return undefined;
  if (input.registryRef != null) {
    const ref = registryRef('teacher.registry_ref', input.registryRef, bad);
    return ref === undefined ? undefined : { kind: 'registry', ref };
  }
  const path = checkedPath('teacher.onnx_path', input.onnxPath, bad);
  return path === undefined ? undefined : { kind: 'onnx', path };
}

/** A finite number within [min, max] (each bound inclusive unless `exclusive` says otherwise). */
function inRange(
  field: string,
  value: number,
  bad: Bad,
  min: number,
  max: number,
  exclusive: { min?: boolean; max?: boolean } = {},
): number {
  const low = exclusive.min ? value > min : value >= min;
  const high = exclusive.max ? value < max : value <= max;
  if (!Number.isFinite(value) || !low || !high) {
    const range = `${exclusive.min ? '(' : '['}${min}, ${max === Infinity ? '∞' : max}${exclusive.max || max === Infinity ? ')' : ']'}`;
    bad(field, `must be in ${range}, got ${String(value)}`);
  }
  return value;
}

function datasetOptions(input: Nullable<trainerV1.DatasetSpec>, bad: Bad): DatasetOptions | undefined {
  if (input == null) return void bad('dataset', 'is required: set fashion_mnist or image_folder');
  let source: DatasetSource | undefined;
  if (exactlyOne('dataset', input, ['fashionMnist', 'imageFolder'], bad)) {
    if (input.fashionMnist != null) {
      const dir = input.fashionMnist.dir ?? '';
      if (dir !== '') checkedPath('dataset.fashion_mnist.dir', dir, bad);
      source = {
        kind: 'fashion-mnist',
        dir: dir === '' ? FINE_TUNE_DEFAULTS.fashionMnistDir : dir,
        evalOnTest: input.fashionMnist.evalOnTest ?? false,
      };
    } else if (input.imageFolder != null) {
      const trainDir = checkedPath('dataset.image_folder.train_dir', input.imageFolder.trainDir, bad);
      const valDir = input.imageFolder.valDir ?? '';
      if (valDir !== '') checkedPath('dataset.image_folder.val_dir', valDir, bad);
      if (trainDir !== undefined && trainDir === valDir) {
        bad(
          'dataset.image_folder.val_dir',
          'must differ from train_dir (leave it empty for a validation split)',
        );
      }
      if (trainDir !== undefined)
        source = { kind: 'image-folder', trainDir, ...(valDir !== '' && { valDir }) };
    }
  }
  const fraction = input.validationFraction ?? 0;
  inRange('dataset.validation_fraction', fraction, bad, 0, 1, { max: true });
  const maxTrain = input.maxTrainImages ?? 0;
  const maxEval = input.maxEvalImages ?? 0;
  if (!isCount(maxTrain))
    bad('dataset.max_train_images', `must be a non-negative integer, got ${String(maxTrain)}`);
  if (!isCount(maxEval))
    bad('dataset.max_eval_images', `must be a non-negative integer, got ${String(maxEval)}`);
  if (source === undefined) return undefined;
  return {
    source,
    validationFraction: fraction === 0 ? FINE_TUNE_DEFAULTS.validationFraction : fraction,
    ...(maxTrain > 0 && { maxTrainImages: maxTrain }),
    ...(maxEval > 0 && { maxEvalImages: maxEval }),
  };
}

function distillationOptions(
  input: Nullable<trainerV1.DistillationSpec>,
  hasTeacher: boolean,
  bad: Bad,
): DistillationOptions {
  const D = trainerV1.DistillationType;
  const N = trainerV1.SoftNormalization;
  let type: DistillationType = hasTeacher ? FINE_TUNE_DEFAULTS.distillationWithTeacher : 'none';
  switch (input?.type ?? D.DISTILLATION_TYPE_UNSPECIFIED) {
    case D.DISTILLATION_TYPE_UNSPECIFIED:
      break;
    case D.DISTILLATION_TYPE_NONE:
      type = 'none';
      break;
    case D.DISTILLATION_TYPE_SOFT:
      type = 'soft';
      break;
    case D.DISTILLATION_TYPE_HARD:
      type = 'hard';
      break;
    default:
      bad('distillation.type', `unknown distillation type ${String(input?.type)}`);
  }
  let softNormalization: SoftNormalization = FINE_TUNE_DEFAULTS.softNormalization;
  switch (input?.softNormalization ?? N.SOFT_NORMALIZATION_UNSPECIFIED) {
    case N.SOFT_NORMALIZATION_UNSPECIFIED:
    case N.SOFT_NORMALIZATION_NUMEL:
      break;
    case N.SOFT_NORMALIZATION_BATCHMEAN:
      softNormalization = 'batchmean';
      break;
    default:
      bad('distillation.soft_normalization', `unknown normalisation ${String(input?.softNormalization)}`);
  }
  const alpha = inRange('distillation.alpha', input?.alpha ?? FINE_TUNE_DEFAULTS.alpha, bad, 0, 1);
  const tau = inRange('distillation.tau', input?.tau ?? FINE_TUNE_DEFAULTS.tau, bad, 0, Infinity, {
    min: true,
  });
  return { type, alpha, tau, softNormalization };
}

function optimizationOptions(
  input: Nullable<trainerV1.OptimizationSpec>,
  bad: Bad,
): OptimizationOptions | undefined {
  if (input == null) return void bad('optimization', 'is required: set at least epochs and batch_size');
  const epochs = input.epochs ?? 0;
  const batchSize = input.batchSize ?? 0;
  if (!Number.isSafeInteger(epochs) || epochs < 1 || epochs > MAX_EPOCHS) {
    bad('optimization.epochs', `must be an integer in [1, ${MAX_EPOCHS}], got ${String(epochs)}`);
  }
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    bad('optimization.batch_size', `must be an integer in [1, ${MAX_BATCH_SIZE}], got ${String(batchSize)}`);
  }
  const baseLr = inRange('optimization.lr', input.lr ?? FINE_TUNE_DEFAULTS.lr, bad, 0, Infinity, {
    min: true,
  });
  const lrFixed = input.lrFixed ?? false;
  const weightDecay = inRange(
    'optimization.weight_decay',
    input.weightDecay ?? FINE_TUNE_DEFAULTS.weightDecay,
    bad,
    0,
    Infinity,
  );
  const warmupEpochs = input.warmupEpochs ?? 0;
  inRange(
    'optimization.warmup_epochs',
    warmupEpochs,
    bad,
    0,
    Number.isSafeInteger(epochs) && epochs >= 1 ? epochs : Infinity,
  );
  const warmupLr = inRange(
    'optimization.warmup_lr',
    input.warmupLr ?? FINE_TUNE_DEFAULTS.warmupLr,
    bad,
    0,
    Infinity,
  );
  const minLr = inRange('optimization.min_lr', input.minLr ?? FINE_TUNE_DEFAULTS.minLr, bad, 0, Infinity);
  const labelSmoothing = inRange(
    'optimization.label_smoothing',
    input.labelSmoothing ?? FINE_TUNE_DEFAULTS.labelSmoothing,
    bad,
    0,
    1,
    { max: true },
  );
  const dropPath = inRange(
    'optimization.drop_path',
    input.dropPath ?? FINE_TUNE_DEFAULTS.dropPath,
    bad,
    0,
    1,
    {
      max: true,
    },
  );
  return {
    epochs,
    batchSize,
    baseLr,
    lrFixed,
    lr: lrFixed ? baseLr : (baseLr * batchSize) / FINE_TUNE_DEFAULTS.lrReferenceBatchSize,
    weightDecay,
    warmupEpochs,
    warmupLr,
    minLr,
    labelSmoothing,
    dropPath,
  };
}

function augmentationOptions(input: Nullable<trainerV1.AugmentationSpec>, bad: Bad): AugmentationOptions {
  const C = trainerV1.CropMode;
  let crop: CropMode = FINE_TUNE_DEFAULTS.crop;
  switch (input?.crop ?? C.CROP_MODE_UNSPECIFIED) {
    case C.CROP_MODE_UNSPECIFIED:
      break;
    case C.CROP_MODE_NONE:
      crop = 'none';
      break;
    case C.CROP_MODE_RANDOM_RESIZED:
      crop = 'random-resized';
      break;
    case C.CROP_MODE_PADDED:
      crop = 'padded';
      break;
    default:
      bad('augmentation.crop', `unknown crop mode ${String(input?.crop)}`);
  }
  const padding = input?.padding ?? 0;
  if (!isCount(padding))
    bad('augmentation.padding', `must be a non-negative integer, got ${String(padding)}`);
  else if (crop === 'padded' && padding === 0)
    bad('augmentation.padding', 'must be at least 1 with CROP_MODE_PADDED');
  else if (crop !== 'padded' && padding !== 0)
    bad('augmentation.padding', 'only applies to CROP_MODE_PADDED');
  return {
    crop,
    padding,
    horizontalFlip: input?.horizontalFlip ?? false,
    randomErasing: inRange('augmentation.random_erasing', input?.randomErasing ?? 0, bad, 0, 1),
    mixupAlpha: inRange('augmentation.mixup_alpha', input?.mixupAlpha ?? 0, bad, 0, Infinity),
    cutmixAlpha: inRange('augmentation.cutmix_alpha', input?.cutmixAlpha ?? 0, bad, 0, Infinity),
  };
}

function trainableScope(input: Nullable<trainerV1.TrainableScope>, bad: Bad): TrainableScope {
  if (input == null || setMembers(input).length === 0) return { kind: 'all' };
  if (!exactlyOne('trainable', input, ['all', 'lastBlocks'], bad)) return { kind: 'all' };
  if (input.all != null) {
    if (!input.all) bad('trainable.all', 'must be true when set (use last_blocks to freeze blocks)');
    return { kind: 'all' };
  }
  const blocks = input.lastBlocks ?? 0;
  if (!Number.isSafeInteger(blocks) || blocks < 1) {
    bad('trainable.last_blocks', `must be a positive integer, got ${String(blocks)}`);
  }
  return { kind: 'last-blocks', blocks };
}

function promotionPolicy(input: Nullable<trainerV1.PromotionPolicy>, bad: Bad): PromotionPolicy | undefined {
  const alias = input?.alias ?? '';
  const minImprovement = input?.minImprovement ?? 0;
  inRange('promotion.min_improvement', minImprovement, bad, 0, 1);
  if (alias === '') {
    if (minImprovement !== 0) bad('promotion.min_improvement', 'is set but promotion.alias is empty');
    return undefined;
  }
  checked('promotion.alias', bad, () => assertAliasName(alias));
  return { alias, minImprovement };
}
