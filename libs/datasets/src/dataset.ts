import { createHash } from 'node:crypto';
import { InvalidArgumentError, Rng } from '@deit-serve/core';
import { STREAMS } from './rng';

/**
 * The in-memory dataset every loader produces and every batcher consumes. Images keep their native
 * size and channel count (Fashion-MNIST stays 28×28 grey); resizing to the model happens per batch.
 */

/** One image, 8-bit HWC (`pixels[(y * width + x) * channels + c]`), and its class index. */
export interface ImageSample {
  /** A view into the dataset's storage: read it, do not write it. */
  readonly pixels: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
  readonly label: number;
}

export interface DatasetSplit {
  readonly train: ImageDataset;
  readonly validation: ImageDataset;
}

export interface ImageDataset {
  readonly size: number;
  readonly numClasses: number;
  /** Class names by label index (`id2label`). */
  readonly labelNames: readonly string[];
  get(index: number): ImageSample;
  /** The label alone, without touching pixels. */
  labelOf(index: number): number;
  /**
   * Stratified, seeded split: within each class, `round(count × validationFraction)` images chosen
   * by a seeded shuffle go to validation, the rest to training. Both parts keep the parent's order,
   * so the same (dataset, fraction, seed) always gives the same two lists.
   */
  split(validationFraction: number, seed: number): DatasetSplit;
  /**
   * At most `n` images, stratified without randomness: each class contributes in proportion to its
   * size (largest remainders), taking its first images in index order; the result keeps index
   * order. A folder dataset sorted class by class therefore still yields every class, not the first.
   */
  limit(n: number): ImageDataset;
  /** The images at the given positions, in that order. */
  subset(indices: ArrayLike<number>): ImageDataset;
}

/** Where pixels live; a dataset is a source plus a list of positions into it. */
interface SampleSource {
  readonly count: number;
  sample(base: number): ImageSample;
  label(base: number): number;
}

/** Many images of one size in one buffer: N × H × W × C (IDX files, resized folders). */
export interface PackedImages {
  readonly pixels: Uint8Array;
  readonly labels: ArrayLike<number>;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
}

class PackedSource implements SampleSource {
  readonly count: number;
  private readonly stride: number;

  constructor(private readonly packed: PackedImages) {
    const { pixels, labels, width, height, channels } = packed;
    this.stride = width * height * channels;
    this.count = labels.length;
    if (!(width > 0 && height > 0) || pixels.length !== this.count * this.stride) {
      throw new InvalidArgumentError(
        `packed images: ${labels.length} labels × ${width}×${height}×${channels} needs ${this.count * this.stride} bytes, got ${pixels.length}`,
      );
    }
  }

  sample(base: number): ImageSample {
    const { pixels, labels, width, height, channels } = this.packed;
    const start = base * this.stride;
    return {
      pixels: pixels.subarray(start, start + this.stride),
      width,
      height,
      channels,
      label: labels[base],
    };
  }

  label(base: number): number {
    return this.packed.labels[base];
  }
}

class ListSource implements SampleSource {
  constructor(private readonly samples: readonly ImageSample[]) {}

  get count(): number {
    return this.samples.length;
  }

  sample(base: number): ImageSample {
    return this.samples[base];
  }

  label(base: number): number {
    return this.samples[base].label;
  }
}

function checkLabelNames(labelNames: readonly string[]): void {
  if (labelNames.length === 0) throw new InvalidArgumentError('a dataset needs at least one class');
  const seen = new Set<string>();
  for (const name of labelNames) {
    if (seen.has(name)) throw new InvalidArgumentError(`class name "${name}" appears twice`);
    seen.add(name);
  }
}

class InMemoryDataset implements ImageDataset {
  readonly numClasses: number;

  constructor(
    private readonly source: SampleSource,
    readonly labelNames: readonly string[],
    private readonly indices: Int32Array,
  ) {
    this.numClasses = labelNames.length;
  }

  get size(): number {
    return this.indices.length;
  }

  private base(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.indices.length) {
      throw new RangeError(`index ${index} is outside the dataset of ${this.indices.length} images`);
    }
    return this.indices[index];
  }

  get(index: number): ImageSample {
    return this.source.sample(this.base(index));
  }

  labelOf(index: number): number {
    return this.source.label(this.base(index));
  }

  private byClass(): number[][] {
    const groups: number[][] = Array.from({ length: this.numClasses }, () => []);
    for (let i = 0; i < this.indices.length; i++) groups[this.source.label(this.indices[i])].push(i);
    return groups;
  }

  split(validationFraction: number, seed: number): DatasetSplit {
    if (!(validationFraction > 0 && validationFraction < 1)) {
      throw new InvalidArgumentError(`validation fraction must be in (0, 1), got ${validationFraction}`);
    }
    const rng = Rng.derive(seed, STREAMS.split);
    const inValidation = new Uint8Array(this.size);
    for (const members of this.byClass()) {
      const take = Math.round(members.length * validationFraction);
      const order = rng.shuffle(Int32Array.from(members));
      for (let k = 0; k < take; k++) inValidation[order[k]] = 1;
    }
    const train: number[] = [];
    const validation: number[] = [];
    inValidation.forEach((v, i) => (v ? validation : train).push(i));
    if (train.length === 0 || validation.length === 0) {
      throw new InvalidArgumentError(
        `splitting ${this.size} images with validation fraction ${validationFraction} leaves ` +
          `${train.length} for training and ${validation.length} for validation; both need at least one`,
      );
    }
    return { train: this.subset(train), validation: this.subset(validation) };
  }

  limit(n: number): ImageDataset {
    if (!Number.isInteger(n) || n < 1)
      throw new InvalidArgumentError(`limit must be a positive integer, got ${n}`);
    if (n >= this.size) return this;
    const labels = new Int32Array(this.size);
    for (let i = 0; i < this.size; i++) labels[i] = this.source.label(this.indices[i]);
    return this.subset(
      stratifiedQuotas(labels, this.numClasses, n)
        .flatMap((q) => q.chosen)
        .sort((a, b) => a - b),
    );
  }

  subset(indices: ArrayLike<number>): ImageDataset {
    const mapped = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) mapped[i] = this.base(indices[i]);
    return new InMemoryDataset(this.source, this.labelNames, mapped);
  }
}

/**
 * The `limit` rule: each class gets a share of `n` proportional to its size (largest remainders,
 * ties to the lower class), filled with its first members in index order. `rest` holds the members
 * not chosen, in order, for callers that must replace a chosen item that turns out unusable.
 */
export function stratifiedQuotas(
  labels: ArrayLike<number>,
  numClasses: number,
  n: number,
): Array<{ chosen: number[]; rest: number[] }> {
  const groups: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) groups[labels[i]].push(i);
  const take = Math.min(n, labels.length);
  // Integer arithmetic: equal remainders must compare equal for the tie rule to hold.
  const counts = groups.map((g) => Math.floor((g.length * take) / labels.length));
  let left = take - counts.reduce((a, b) => a + b, 0);
  const order = groups
    .map((g, c) => [g.length * take - counts[c] * labels.length, c] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, c] of order) {
    if (left === 0) break;
    if (counts[c] < groups[c].length) {
      counts[c]++;
      left--;
    }
  }
  return groups.map((g, c) => ({ chosen: g.slice(0, counts[c]), rest: g.slice(counts[c]) }));
}

function identity(count: number): Int32Array {
  const indices = new Int32Array(count);
  for (let i = 0; i < count; i++) indices[i] = i;
  return indices;
}

function checkLabels(labels: ArrayLike<number>, numClasses: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new InvalidArgumentError(`${what}: label ${label} at index ${i} is outside [0, ${numClasses})`);
    }
  }
}

/** A dataset over one buffer of equally sized images; no pixels are copied. */
export function packedDataset(packed: PackedImages, labelNames: readonly string[]): ImageDataset {
  checkLabelNames(labelNames);
  checkLabels(packed.labels, labelNames.length, 'packed images');
  const source = new PackedSource(packed);
  return new InMemoryDataset(source, [...labelNames], identity(source.count));
}

/** A dataset over individual images, which may differ in size and channel count. */
export function sampleDataset(samples: readonly ImageSample[], labelNames: readonly string[]): ImageDataset {
  checkLabelNames(labelNames);
  checkLabels(
    samples.map((s) => s.label),
    labelNames.length,
    'samples',
  );
  samples.forEach((s, i) => {
    if (s.pixels.length !== s.width * s.height * s.channels || !(s.width > 0 && s.height > 0)) {
      throw new InvalidArgumentError(
        `sample ${i}: ${s.width}×${s.height}×${s.channels} needs ${s.width * s.height * s.channels} bytes, got ${s.pixels.length}`,
      );
    }
  });
  return new InMemoryDataset(new ListSource([...samples]), [...labelNames], identity(samples.length));
}

/**
 * SHA-256 of what a training run actually read: the class names, then each image in dataset order
 * (size, channels, label, pixels). Equal hashes mean equal training data, whatever the files were.
 */
export function datasetHash(dataset: ImageDataset): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(dataset.labelNames));
  const header = new DataView(new ArrayBuffer(16));
  for (let i = 0; i < dataset.size; i++) {
    const s = dataset.get(i);
    header.setUint32(0, s.width, true);
    header.setUint32(4, s.height, true);
    header.setUint32(8, s.channels, true);
    header.setUint32(12, s.label, true);
    hash.update(new Uint8Array(header.buffer));
    hash.update(s.pixels);
  }
  return hash.digest('hex');
}
