import { join } from 'node:path';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError } from '@deit-serve/core';
import { packedDataset, type ImageDataset } from './dataset';
import { FileAccess, type CheckedFile } from './file-access';
import { hex, readIdxBytes, type IdxReadLimits } from './idx-read';

/**
 * IDX files (LeCun's MNIST format, also Fashion-MNIST's): a 4-byte magic `00 00 <type> <ndims>`,
 * `ndims` big-endian uint32 dimensions, then the data. Only unsigned bytes (type 0x08) are used by
 * these data sets and only they are accepted. Files may be gzip-compressed; that is detected from
 * the content (1f 8b), not the name.
 */

/** `00 00 08 03`: unsigned bytes, three dimensions (count, rows, columns). */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** `00 00 08 01`: unsigned bytes, one dimension (count). */
export const IDX_LABELS_MAGIC = 0x00000801;

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Fashion-MNIST's classes by label index, as published by Zalando Research. */
export const FASHION_MNIST_LABELS: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export type FashionMnistSplit = 'train' | 'test';

/** The file names of each split inside a Fashion-MNIST folder. */
export const FASHION_MNIST_FILES: Readonly<
  Record<FashionMnistSplit, { readonly images: string; readonly labels: string }>
> = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
};

const INSTALL_HINT = 'install it with `apt-get install dataset-fashion-mnist`';

const IMAGES_WHAT = 'IDX images (ubyte, 3 dims)';
const LABELS_WHAT = 'IDX labels (ubyte, 1 dim)';

export interface IdxImages {
  /** N × rows × cols bytes, row-major. */
  readonly pixels: Uint8Array;
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
}

export interface IdxFile<T> {
  readonly path: string;
  /** SHA-256 of the file as stored (compressed if it is), for lineage. */
  readonly sha256: string;
  readonly content: T;
}

/** How IDX files are opened and how much they may hold. */
export interface IdxReadOptions extends IdxReadLimits {
  /** Opens every file (a sandbox passes its own); default: anywhere, still regular files only. */
  readonly files?: FileAccess;
}

/** Validates the header and returns the dimensions and the data view that follows it. */
function parseHeader(
  bytes: Uint8Array,
  name: string,
  expectedMagic: number,
): { dims: number[]; data: Uint8Array } {
  if (bytes.length < 4) {
    throw new InvalidArgumentError(
      `${name}: ${bytes.length} bytes is too short for an IDX header (truncated)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== expectedMagic) {
    // The value read is not shown: the file may be anything.
    const what = expectedMagic === IDX_IMAGES_MAGIC ? IMAGES_WHAT : LABELS_WHAT;
    throw new InvalidArgumentError(
      `${name}: not an ${what} file (bad magic number; expected ${hex(expectedMagic)})`,
    );
  }
  const ndims = expectedMagic & 0xff;
  const headerLength = 4 + 4 * ndims;
  if (bytes.length < headerLength) {
    throw new InvalidArgumentError(
      `${name}: truncated header (${bytes.length} bytes, ${ndims} dimensions need ${headerLength})`,
    );
  }
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const actual = bytes.length - headerLength;
  if (actual < expected) {
    throw new InvalidArgumentError(
      `${name}: truncated: the header declares ${dims.join('×')} = ${expected} bytes of data, the file has ${actual}`,
    );
  }
  if (actual > expected) {
    throw new InvalidArgumentError(
      `${name}: ${actual - expected} unexpected bytes after the ${dims.join('×')} data declared by the header`,
    );
  }
  return { dims, data: bytes.subarray(headerLength) };
}

/** Parses an (uncompressed) IDX image file. */
export function parseIdxImages(bytes: Uint8Array, name = 'IDX images'): IdxImages {
  const { dims, data } = parseHeader(bytes, name, IDX_IMAGES_MAGIC);
  const [count, rows, cols] = dims as [number, number, number];
  if (rows === 0 || cols === 0) throw new InvalidArgumentError(`${name}: images are ${rows}×${cols}`);
  return { pixels: data, count, rows, cols };
}

/** Parses an (uncompressed) IDX label file; with `numClasses`, every label must be below it. */
export function parseIdxLabels(bytes: Uint8Array, name = 'IDX labels', numClasses?: number): Uint8Array {
  const { data } = parseHeader(bytes, name, IDX_LABELS_MAGIC);
  if (numClasses !== undefined) {
    for (let i = 0; i < data.length; i++) {
      if (data[i] >= numClasses) {
        throw new InvalidArgumentError(
          `${name}: the label at index ${i} is out of range; expected 0–${numClasses - 1}`,
        );
      }
    }
  }
  return data;
}

/** Opens `path`, a missing file reported with `missingHint`. */
async function openIdx(
  files: FileAccess,
  path: string,
  missingHint?: string,
  maxBytes?: number,
): Promise<CheckedFile> {
  try {
    return await files.openFile(path, maxBytes === undefined ? {} : { maxBytes });
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new NotFoundError(`${path} does not exist${missingHint ? `; ${missingHint}` : ''}`, {
        cause: err,
      });
    }
    throw err;
  }
}

async function readOne<T>(
  path: string,
  options: IdxReadOptions,
  read: (file: CheckedFile) => Promise<{ sha256: string; content: T }>,
): Promise<IdxFile<T>> {
  const file = await openIdx(options.files ?? FileAccess.anywhere, path, undefined, options.maxBytes);
  try {
    return { path, ...(await read(file)) };
  } finally {
    await file.close();
  }
}

/** Reads an IDX image file, gzip-compressed or raw. */
export async function readIdxImages(path: string, options: IdxReadOptions = {}): Promise<IdxFile<IdxImages>> {
  return readOne(path, options, async (file) => {
    const { bytes, sha256 } = await readIdxBytes(file, IDX_IMAGES_MAGIC, IMAGES_WHAT, options);
    return { sha256, content: parseIdxImages(bytes, path) };
  });
}

/** Reads an IDX label file, gzip-compressed or raw. */
export async function readIdxLabels(
  path: string,
  numClasses?: number,
  options: IdxReadOptions = {},
): Promise<IdxFile<Uint8Array>> {
  return readOne(path, options, async (file) => {
    const { bytes, sha256 } = await readIdxBytes(file, IDX_LABELS_MAGIC, LABELS_WHAT, options);
    return { sha256, content: parseIdxLabels(bytes, path, numClasses) };
  });
}

export interface IdxDataset {
  /** N × rows × cols grey bytes. */
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly labelNames: readonly string[];
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  readonly files: { readonly images: string; readonly labels: string };
  /** SHA-256 of each file as stored. */
  readonly sha256: { readonly images: string; readonly labels: string };
  /** Bytes of both files as stored, and decompressed. */
  readonly bytes: { readonly stored: number; readonly inflated: number };
  /** The same pixels as an ImageDataset (no copy). */
  readonly dataset: ImageDataset;
}

/**
 * Reads a pair of IDX files (images, labels) into a grey dataset with the given class names. With
 * `maxBytes`, the two files together may hold that many bytes as stored (checked before reading) and
 * again decompressed (checked while inflating); `maxImages` bounds each file's declared count.
 */
export async function loadIdxDataset(
  imagesPath: string,
  labelsPath: string,
  labelNames: readonly string[],
  missingHint?: string,
  options: IdxReadOptions = {},
): Promise<IdxDataset> {
  const files = options.files ?? FileAccess.anywhere;
  return readPair(
    () => openIdx(files, imagesPath, missingHint, options.maxBytes),
    () => openIdx(files, labelsPath, missingHint, options.maxBytes),
    labelNames,
    options,
  );
}

async function readPair(
  openImages: () => Promise<CheckedFile>,
  openLabels: () => Promise<CheckedFile>,
  labelNames: readonly string[],
  limits: IdxReadLimits,
): Promise<IdxDataset> {
  // Both are opened before either is read; a failure is reported in a fixed order (images first).
  const [imageOpen, labelOpen] = await Promise.allSettled([openImages(), openLabels()]);
  try {
    if (imageOpen.status === 'rejected') throw imageOpen.reason;
    if (labelOpen.status === 'rejected') throw labelOpen.reason;
    const imageFile = imageOpen.value;
    const labelFile = labelOpen.value;
    const stored = imageFile.size + labelFile.size;
    if (limits.maxBytes !== undefined && stored > limits.maxBytes) {
      throw new ResourceExhaustedError(
        `reading ${imageFile.path}, ${labelFile.path} (${stored.toLocaleString('en-US')} bytes) would pass ` +
          `the limit of ${limits.maxBytes.toLocaleString('en-US')} bytes`,
      );
    }
    const imageRead = await readIdxBytes(imageFile, IDX_IMAGES_MAGIC, IMAGES_WHAT, limits);
    const images = parseIdxImages(imageRead.bytes, imageFile.path);
    const labelRead = await readIdxBytes(labelFile, IDX_LABELS_MAGIC, LABELS_WHAT, {
      ...(limits.maxImages !== undefined && { maxImages: limits.maxImages }),
      ...(limits.maxBytes !== undefined && { maxBytes: limits.maxBytes - imageRead.bytes.length }),
    });
    const labels = parseIdxLabels(labelRead.bytes, labelFile.path, labelNames.length);
    if (images.count !== labels.length) {
      throw new InvalidArgumentError(
        `${imageFile.path} holds ${images.count} images but ${labelFile.path} holds ${labels.length} labels; they must match`,
      );
    }
    if (images.count === 0) throw new InvalidArgumentError(`${imageFile.path} holds no images`);
    const dataset = packedDataset(
      { pixels: images.pixels, labels, width: images.cols, height: images.rows, channels: 1 },
      labelNames,
    );
    return {
      images: images.pixels,
      labels,
      labelNames,
      count: images.count,
      rows: images.rows,
      cols: images.cols,
      files: { images: imageFile.path, labels: labelFile.path },
      sha256: { images: imageRead.sha256, labels: labelRead.sha256 },
      bytes: { stored, inflated: imageRead.bytes.length + labelRead.bytes.length },
      dataset,
    };
  } finally {
    for (const opened of [imageOpen, labelOpen]) {
      if (opened.status === 'fulfilled') await opened.value.close();
    }
  }
}

/**
 * Fashion-MNIST from its four IDX files (by default the Debian package's copy): 60,000 training or
 * 10,000 test images of 28×28 grey, labels 0–9. Both files are opened through the folder's own
 * descriptor, so they come from the folder that was checked.
 */
export async function loadFashionMnist(
  dir: string = FASHION_MNIST_DIR,
  split: FashionMnistSplit = 'train',
  options: IdxReadOptions = {},
): Promise<IdxDataset> {
  const names = FASHION_MNIST_FILES[split];
  if (names === undefined) {
    throw new InvalidArgumentError(`Fashion-MNIST split must be "train" or "test", got ${String(split)}`);
  }
  const files = options.files ?? FileAccess.anywhere;
  const folder = await files.openDirectory(dir).catch((err: unknown) => {
    if (
      err instanceof NotFoundError ||
      (err instanceof InvalidArgumentError && /not a directory/.test(err.message))
    ) {
      throw new NotFoundError(`Fashion-MNIST directory ${dir} does not exist; ${INSTALL_HINT}`, {
        cause: err,
      });
    }
    throw err;
  });
  const hint = `Fashion-MNIST is incomplete; ${INSTALL_HINT}`;
  const openIn = async (name: string): Promise<CheckedFile> => {
    try {
      return await folder.openFile(
        name,
        options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes },
      );
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(`${join(dir, name)} does not exist; ${hint}`, { cause: err });
      }
      throw err;
    }
  };
  try {
    return await readPair(
      () => openIn(names.images),
      () => openIn(names.labels),
      FASHION_MNIST_LABELS,
      options,
    );
  } finally {
    await folder.close();
  }
}
