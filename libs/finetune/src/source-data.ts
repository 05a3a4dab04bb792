/**
 * The data a fine-tune trains and evaluates on, loaded at start (and at request time by the sources
 * check) within the trainer's per-job limits. Every file is opened through the job's
 * {@link FileAccess} (the sandbox's, in the trainer), sizes are checked before reading and gzip is
 * inflated only as far as the limits allow.
 */
import { basename, join } from 'node:path';
import { ResourceExhaustedError } from '@deit-serve/core';
import {
  datasetHash,
  FASHION_MNIST_FILES,
  loadFashionMnist,
  loadImageFolder,
  type DatasetProblem,
  type FileAccess,
  type ImageDataset,
} from '@deit-serve/datasets';
import type { InputSpec } from '@deit-serve/registry';
import { InvalidSpecError, type FineTuneJobSpec } from '@deit-serve/trainer-engine';
import { labelMismatch } from './label-sets';
import { evalResizeSize, inputSpecFromManifest } from '@deit-serve/preprocess';

/** A model version's preprocessing as the manifest stores it (without the input name). */
export type ModelInput = Omit<InputSpec, 'name'>;

export interface FineTuneData {
  readonly train: ImageDataset;
  readonly eval: ImageDataset;
  readonly labelNames: readonly string[];
  /** The data set, for lineage (`fashion-mnist`, `image-folder:<dir name>`). */
  readonly name: string;
  /** Names the exact evaluation images, so metrics of different versions are compared like for like. */
  readonly evalSetName: string;
  /** sha256 of the training images and labels actually used (`datasetHash`). */
  readonly sha256: string;
  /** Images skipped while loading (corrupt, unreadable, not images). */
  readonly problems: readonly DatasetProblem[];
}

/**
 * The most a job's data set may hold: images (training and evaluation together), and bytes of its
 * files, counted as stored and again decompressed (each total must stay within `maxBytes`).
 */
export interface DatasetLimits {
  readonly maxImages: number;
  readonly maxBytes: number;
}

export async function loadData(
  spec: FineTuneJobSpec,
  input: ModelInput | undefined,
  files: FileAccess,
  limits: DatasetLimits | undefined,
): Promise<FineTuneData> {
  try {
    return await readData(spec, input, files, limits);
  } catch (error) {
    if (!(error instanceof ResourceExhaustedError)) throw error;
    throw new InvalidSpecError([
      {
        field: 'dataset',
        problem: `${error.message} (the trainer's limit per job); set dataset.max_train_images and max_eval_images, or use a smaller data set`,
      },
    ]);
  }
}

/** Refuses a load that would take the job past its data set limits. */
class DataBudget {
  private images = 0;
  private stored = 0;
  private inflated = 0;

  constructor(private readonly limits: DatasetLimits | undefined) {}

  /** What the next load may still take; its loader refuses more before reading or inflating it. */
  get remaining(): { maxImages?: number; maxBytes?: number } {
    if (this.limits === undefined) return {};
    return {
      maxImages: this.limits.maxImages - this.images,
      maxBytes: this.limits.maxBytes - Math.max(this.stored, this.inflated),
    };
  }

  addBytes(stored: number, inflated: number, what: string): void {
    this.stored += stored;
    this.inflated += inflated;
    const most = Math.max(this.stored, this.inflated);
    if (this.limits !== undefined && most > this.limits.maxBytes) {
      throw new ResourceExhaustedError(
        `reading ${what} takes the data set to ${most.toLocaleString('en-US')} bytes, above the limit of ` +
          `${this.limits.maxBytes.toLocaleString('en-US')}`,
      );
    }
  }

  addImages(count: number, what: string): void {
    this.images += count;
    if (this.limits !== undefined && this.images > this.limits.maxImages) {
      throw new ResourceExhaustedError(
        `${what} takes the data set to ${this.images.toLocaleString('en-US')} images, above the limit of ` +
          `${this.limits.maxImages.toLocaleString('en-US')}`,
      );
    }
  }
}

async function readData(
  spec: FineTuneJobSpec,
  input: ModelInput | undefined,
  files: FileAccess,
  limits: DatasetLimits | undefined,
): Promise<FineTuneData> {
  const { source, validationFraction, maxTrainImages, maxEvalImages } = spec.dataset;
  const budget = new DataBudget(limits);
  const limit = (dataset: ImageDataset, max: number | undefined): ImageDataset =>
    max === undefined ? dataset : dataset.limit(max);
  const problems: DatasetProblem[] = [];
  let name: string;
  let train: ImageDataset;
  let evalSet: ImageDataset;
  let evalPart: string;
  if (source.kind === 'fashion-mnist') {
    name = 'fashion-mnist';
    const loadSplit = async (split: 'train' | 'test'): Promise<ImageDataset> => {
      const loaded = await loadFashionMnist(source.dir, split, { files, ...budget.remaining });
      const names = FASHION_MNIST_FILES[split];
      budget.addBytes(
        loaded.bytes.stored,
        loaded.bytes.inflated,
        [names.images, names.labels].map((f) => join(source.dir, f)).join(', '),
      );
      budget.addImages(
        loaded.count,
        `the Fashion-MNIST ${split === 'train' ? 'training' : 'test'} split of ${source.dir}`,
      );
      return loaded.dataset;
    };
    const full = await loadSplit('train');
    if (source.evalOnTest) {
      train = full;
      evalSet = await loadSplit('test');
      evalPart = 'test';
    } else {
      ({ train, validation: evalSet } = full.split(validationFraction, spec.seed));
      evalPart = `train-holdout(${validationFraction},seed=${spec.seed})`;
    }
  } else {
    name = `image-folder:${basename(source.trainDir)}`;
    // Images are stored at the size the eval transform starts from, which bounds memory for large photos.
    const resize =
      input === undefined
        ? undefined
        : { size: Math.max(input.image_size, evalResizeSize(inputSpecFromManifest(input))) };
    const loadFolder = async (dir: string, max: number | undefined) => {
      const folder = await loadImageFolder(dir, {
        ...(max !== undefined && { limit: max }),
        ...(resize !== undefined && { resize }),
        ...budget.remaining,
        files,
      });
      problems.push(...folder.problems.map((p) => ({ ...p, path: `${dir}/${p.path}` })));
      budget.addBytes(folder.bytesRead, 0, dir);
      budget.addImages(folder.dataset.size, dir);
      return folder.dataset;
    };
    if (source.valDir !== undefined) {
      train = await loadFolder(source.trainDir, maxTrainImages);
      evalSet = await loadFolder(source.valDir, maxEvalImages);
      evalPart = `val:${basename(source.valDir)}`;
      const mismatch = labelMismatch(train.labelNames, evalSet.labelNames);
      if (mismatch !== undefined) {
        throw new InvalidSpecError([
          { field: 'dataset.image_folder.val_dir', problem: `has other classes than train_dir: ${mismatch}` },
        ]);
      }
    } else {
      const both =
        maxTrainImages !== undefined && maxEvalImages !== undefined
          ? maxTrainImages + maxEvalImages
          : undefined;
      ({ train, validation: evalSet } = (await loadFolder(source.trainDir, both)).split(
        validationFraction,
        spec.seed,
      ));
      evalPart = `holdout(${validationFraction},seed=${spec.seed})`;
    }
  }
  train = limit(train, maxTrainImages);
  evalSet = limit(evalSet, maxEvalImages);
  const evalHash = datasetHash(evalSet);
  return {
    train,
    eval: evalSet,
    labelNames: train.labelNames,
    name,
    // The hash makes equal names mean equal images, whatever options produced them.
    evalSetName: `${name}/${evalPart}/${evalSet.size}@${evalHash.slice(0, 12)}`,
    sha256: datasetHash(train),
    problems,
  };
}
