import { InvalidArgumentError, Rng } from '@deit-serve/core';
import {
  INTERPOLATIONS,
  MAX_IMAGE_SIZE,
  normalizationTable,
  preprocessInto,
  type InputSpec,
  type Interpolation,
} from '@deit-serve/preprocess';
import {
  augmentImage,
  fullBox,
  mixBatch,
  mixTargets,
  randomErasing,
  resizedCrop,
  resolveAugment,
  type AugmentOptions,
  type MixResult,
  type ResolvedAugment,
} from './augment';
import type { ImageDataset } from './dataset';
import { STREAMS } from './rng';

/**
 * Dataset → model batches: float32 NCHW `pixel_values` with three channels (grey images are
 * replicated, as PIL's `convert('RGB')` does), normalised with torch's float32 arithmetic.
 *
 * Determinism: the order of an epoch is a seeded shuffle of (seed, epoch); the augmentations of
 * batch b come from a stream of (seed, epoch, b) alone. The same (dataset, options, seed, epoch)
 * therefore gives the same batches, and `startBatch` resumes in the middle of an epoch without
 * replaying the batches before it.
 */

/** The parts of a model's input spec the batches need; channels are always 3. */
export interface BatchInputSpec {
  readonly imageSize: number;
  /** One entry per channel (or one for all three), on the [0, 1] scale. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /**
   * With both `interpolation` and `cropPct`, evaluation batches use the model's own eval transform
   * (`@deit-serve/preprocess`: shorter-side resize, centre crop), i.e. exactly what the inference
   * service will feed the model. Without them, and always for training, the image (or its crop) is
   * resampled to S × S bilinearly.
   */
  readonly interpolation?: Interpolation;
  readonly cropPct?: number;
}

export interface TrainBatchOptions {
  readonly batchSize: number;
  readonly seed: number;
  /** 0-based. */
  readonly epoch: number;
  readonly inputSpec: BatchInputSpec;
  readonly augment?: AugmentOptions;
  /** Drop the last partial batch (timm's training loader does); default false. */
  readonly dropLast?: boolean;
  /** First batch to produce, to resume mid-epoch; default 0. */
  readonly startBatch?: number;
}

export interface EvalBatchOptions {
  readonly batchSize: number;
  readonly inputSpec: BatchInputSpec;
}

export interface Batch {
  /** Position of the batch within its epoch. */
  readonly index: number;
  readonly size: number;
  /** [size, 3, S, S], normalised. */
  readonly pixels: Float32Array;
  readonly dims: readonly [number, number, number, number];
  /** Hard labels of the (unmixed) images. */
  readonly labels: Int32Array;
  /** Dataset positions of the images, in batch order. */
  readonly indices: Int32Array;
}

export interface TrainBatch extends Batch {
  /** [size, numClasses] soft targets (rows sum to 1), present when mixup/cutmix or label smoothing is on. */
  readonly targets?: Float32Array;
  readonly mix: MixResult;
}

interface ResolvedSpec {
  readonly size: number;
  /** 3 × 256 normalised values, per channel per byte. */
  readonly table: Float32Array;
  /** Set when the spec carries the model's eval transform. */
  readonly evalSpec?: InputSpec;
}

/** Array.isArray without narrowing `readonly number[]` to `any[]`: specs arrive from JSON. */
const isList = (value: unknown): boolean => Array.isArray(value);

function resolveSpec(spec: BatchInputSpec): ResolvedSpec {
  const problems: string[] = [];
  const { imageSize, interpolation, cropPct } = spec;
  if (!Number.isInteger(imageSize) || imageSize < 1 || imageSize > MAX_IMAGE_SIZE) {
    problems.push(`imageSize must be an integer in [1, ${MAX_IMAGE_SIZE}], got ${imageSize}`);
  }
  const stats = (name: string, values: readonly number[], positive: boolean): number[] => {
    if (!isList(values) || (values.length !== 1 && values.length !== 3)) {
      problems.push(`${name} must have 1 or 3 entries`);
      return [0, 0, 0];
    }
    if (values.some((v) => typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0))) {
      problems.push(
        `${name} entries must be finite${positive ? ' and > 0' : ''}, got [${values.join(', ')}]`,
      );
    }
    return values.length === 1 ? [values[0], values[0], values[0]] : [...values];
  };
  const mean = stats('mean', spec.mean, false);
  const std = stats('std', spec.std, true);
  if ((interpolation === undefined) !== (cropPct === undefined)) {
    problems.push('interpolation and cropPct go together: give both (model eval transform) or neither');
  }
  if (interpolation !== undefined && !INTERPOLATIONS.includes(interpolation)) {
    problems.push(`interpolation must be one of ${INTERPOLATIONS.join(', ')}, got ${String(interpolation)}`);
  }
  if (cropPct !== undefined && !(cropPct > 0 && cropPct <= 1)) {
    problems.push(`cropPct must be in (0, 1], got ${cropPct}`);
  }
  if (problems.length > 0) throw new InvalidArgumentError(`invalid input spec: ${problems.join('; ')}`);
  const evalSpec: InputSpec | undefined =
    interpolation !== undefined && cropPct !== undefined
      ? { imageSize, channels: 3, mean, std, interpolation, cropPct }
      : undefined;
  return { size: imageSize, table: normalizationTable({ channels: 3, mean, std }), evalSpec };
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new InvalidArgumentError(`batchSize must be a positive integer, got ${batchSize}`);
  }
}

function checkDataset(dataset: ImageDataset): void {
  if (dataset.size === 0) throw new InvalidArgumentError('the dataset is empty');
}

/** Number of batches in an epoch. */
export function batchCount(size: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
}

/** The order in which an epoch visits the dataset: a permutation seeded by (seed, epoch). */
export function epochOrder(size: number, seed: number, epoch: number): Int32Array {
  const order = new Int32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  return Rng.derive(seed, epoch, STREAMS.shuffle).shuffle(order);
}

/**
 * 8-bit HWC (1 or 3 channels) → three normalised CHW planes at `offset`, through the per-channel
 * table (torch's float32 chain, bit for bit).
 */
export function normaliseInto(
  bytes: Uint8Array,
  channels: 1 | 3,
  size: number,
  table: Float32Array,
  out: Float32Array,
  offset: number,
): void {
  const plane = size * size;
  const r = offset;
  const g = offset + plane;
  const b = offset + 2 * plane;
  if (channels === 1) {
    for (let i = 0; i < plane; i++) {
      const v = bytes[i];
      out[r + i] = table[v];
      out[g + i] = table[256 + v];
      out[b + i] = table[512 + v];
    }
  } else {
    for (let i = 0, p = 0; i < plane; i++, p += 3) {
      out[r + i] = table[bytes[p]];
      out[g + i] = table[256 + bytes[p + 1]];
      out[b + i] = table[512 + bytes[p + 2]];
    }
  }
}

/** Grey → RGB for the eval transform, which reads three channels. */
function asRgb(pixels: Uint8Array, channels: 1 | 3): Uint8Array {
  if (channels === 3) return pixels;
  const rgb = new Uint8Array(pixels.length * 3);
  for (let i = 0; i < pixels.length; i++) {
    rgb[i * 3] = pixels[i];
    rgb[i * 3 + 1] = pixels[i];
    rgb[i * 3 + 2] = pixels[i];
  }
  return rgb;
}

/**
 * Training batches of one epoch: shuffled, augmented, optionally mixed, with soft targets. Options
 * are checked here, before the first batch is asked for.
 */
export function trainBatches(dataset: ImageDataset, options: TrainBatchOptions): Generator<TrainBatch> {
  checkDataset(dataset);
  checkBatchSize(options.batchSize);
  const spec = resolveSpec(options.inputSpec);
  const augment = resolveAugment(options.augment);
  const { batchSize, seed, epoch } = options;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new InvalidArgumentError(`seed must be a non-negative integer, got ${seed}`);
  }
  if (!Number.isSafeInteger(epoch) || epoch < 0) {
    throw new InvalidArgumentError(`epoch must be a non-negative integer, got ${epoch}`);
  }
  const count = batchCount(dataset.size, batchSize, options.dropLast ?? false);
  const startBatch = options.startBatch ?? 0;
  if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > count) {
    throw new InvalidArgumentError(`startBatch must be an integer in [0, ${count}], got ${startBatch}`);
  }

  return generateTrainBatches(dataset, spec, augment, { batchSize, seed, epoch, count, startBatch });
}

function* generateTrainBatches(
  dataset: ImageDataset,
  spec: ResolvedSpec,
  augment: ResolvedAugment,
  plan: { batchSize: number; seed: number; epoch: number; count: number; startBatch: number },
): Generator<TrainBatch> {
  const { batchSize, seed, epoch, count, startBatch } = plan;
  const size = spec.size;
  const imageLength = 3 * size * size;
  const scratch = new Uint8Array(size * size * 3);
  const order = epochOrder(dataset.size, seed, epoch);
  const wantTargets = augment.mixup !== undefined || augment.labelSmoothing > 0;

  for (let b = startBatch; b < count; b++) {
    const begin = b * batchSize;
    const end = Math.min(begin + batchSize, dataset.size);
    const n = end - begin;
    const pixels = new Float32Array(n * imageLength);
    const labels = new Int32Array(n);
    const indices = order.slice(begin, end);
    const rng = Rng.derive(seed, epoch, STREAMS.augment, b);
    for (let i = 0; i < n; i++) {
      const sample = dataset.get(indices[i]);
      labels[i] = sample.label;
      const bytes = augmentImage(sample, size, augment, rng, scratch);
      normaliseInto(bytes, sample.channels, size, spec.table, pixels, i * imageLength);
      if (augment.randomErasing) {
        randomErasing(rng, pixels, i * imageLength, 3, size, size, augment.randomErasing);
      }
    }
    const dims = [n, 3, size, size] as const;
    const mix: MixResult = augment.mixup
      ? mixBatch(Rng.derive(seed, epoch, STREAMS.mix, b), pixels, dims, augment.mixup)
      : { kind: 'none', lambda: 1 };
    const targets = wantTargets
      ? mixTargets(labels, dataset.numClasses, mix.lambda, augment.labelSmoothing)
      : undefined;
    yield { index: b, size: n, pixels, dims, labels, indices, targets, mix };
  }
}

/** Evaluation batches in dataset order, without augmentation; the last batch may be partial. */
export function evalBatches(dataset: ImageDataset, options: EvalBatchOptions): Generator<Batch> {
  checkDataset(dataset);
  checkBatchSize(options.batchSize);
  return generateEvalBatches(dataset, resolveSpec(options.inputSpec), options.batchSize);
}

function* generateEvalBatches(
  dataset: ImageDataset,
  spec: ResolvedSpec,
  batchSize: number,
): Generator<Batch> {
  const size = spec.size;
  const imageLength = 3 * size * size;
  const scratch = new Uint8Array(size * size * 3);
  const count = batchCount(dataset.size, batchSize);
  for (let b = 0; b < count; b++) {
    const begin = b * batchSize;
    const n = Math.min(batchSize, dataset.size - begin);
    const pixels = new Float32Array(n * imageLength);
    const labels = new Int32Array(n);
    const indices = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const index = begin + i;
      const sample = dataset.get(index);
      indices[i] = index;
      labels[i] = sample.label;
      if (spec.evalSpec) {
        const rgb = {
          data: asRgb(sample.pixels, sample.channels),
          width: sample.width,
          height: sample.height,
        };
        preprocessInto(rgb, spec.evalSpec, pixels, i * imageLength);
      } else {
        const bytes = resizedCrop(sample, fullBox(sample), size, false, scratch);
        normaliseInto(bytes, sample.channels, size, spec.table, pixels, i * imageLength);
      }
    }
    yield { index: b, size: n, pixels, dims: [n, 3, size, size], labels, indices };
  }
}
