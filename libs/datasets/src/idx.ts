import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { InvalidArgumentError, NotFoundError } from '@deit-serve/core';
import { packedDataset, type ImageDataset } from './dataset';

/**
 * IDX files (LeCun's MNIST format, also Fashion-MNIST's): a 4-byte magic `00 00 <type> <ndims>`,
 * `ndims` big-endian uint32 dimensions, then the data. Only unsigned bytes (type 0x08) are used by
 * these data sets and only they are accepted. Files may be gzip-compressed; that is detected from
 * the content (1f 8b), not the name.
 */

const gunzipAsync = promisify(gunzip);

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

function hex(magic: number): string {
  return `0x${magic.toString(16).padStart(8, '0')}`;
}

/** Decompresses if gzip, else returns the bytes; `name` words the errors. */
async function inflate(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return new Uint8Array(await gunzipAsync(bytes));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new InvalidArgumentError(`${name}: gzip data is truncated or corrupt (${reason})`, {
        cause: err,
      });
    }
  }
  return bytes;
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
  const magic = view.getUint32(0);
  if (magic !== expectedMagic) {
    const what =
      expectedMagic === IDX_IMAGES_MAGIC ? 'IDX images (ubyte, 3 dims)' : 'IDX labels (ubyte, 1 dim)';
    throw new InvalidArgumentError(
      `${name}: bad magic number ${hex(magic)}; expected ${hex(expectedMagic)} for ${what}`,
    );
  }
  const ndims = magic & 0xff;
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
          `${name}: label ${data[i]} at index ${i} is out of range; expected 0–${numClasses - 1}`,
        );
      }
    }
  }
  return data;
}

async function readBytes(path: string, missingHint?: string): Promise<{ bytes: Uint8Array; sha256: string }> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new NotFoundError(`${path} does not exist${missingHint ? `; ${missingHint}` : ''}`, {
        cause: err,
      });
    }
    const reason = err instanceof Error ? err.message : String(err);
    throw new InvalidArgumentError(`${path}: cannot be read (${reason})`, { cause: err });
  }
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Reads an IDX image file, gzip-compressed or raw. */
export async function readIdxImages(path: string): Promise<IdxFile<IdxImages>> {
  const { bytes, sha256 } = await readBytes(path);
  return { path, sha256, content: parseIdxImages(await inflate(bytes, path), path) };
}

/** Reads an IDX label file, gzip-compressed or raw. */
export async function readIdxLabels(path: string, numClasses?: number): Promise<IdxFile<Uint8Array>> {
  const { bytes, sha256 } = await readBytes(path);
  return { path, sha256, content: parseIdxLabels(await inflate(bytes, path), path, numClasses) };
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
  /** The same pixels as an ImageDataset (no copy). */
  readonly dataset: ImageDataset;
}

/** Reads a pair of IDX files (images, labels) into a grey dataset with the given class names. */
export async function loadIdxDataset(
  imagesPath: string,
  labelsPath: string,
  labelNames: readonly string[],
  missingHint?: string,
): Promise<IdxDataset> {
  // Both reads run at once, but a failure is reported in a fixed order (images first), not
  // whichever happened to settle first.
  const [imageRead, labelRead] = await Promise.allSettled([
    readBytes(imagesPath, missingHint),
    readBytes(labelsPath, missingHint),
  ]);
  if (imageRead.status === 'rejected') throw imageRead.reason;
  if (labelRead.status === 'rejected') throw labelRead.reason;
  const imageFile = imageRead.value;
  const labelFile = labelRead.value;
  const images = parseIdxImages(await inflate(imageFile.bytes, imagesPath), imagesPath);
  const labels = parseIdxLabels(await inflate(labelFile.bytes, labelsPath), labelsPath, labelNames.length);
  if (images.count !== labels.length) {
    throw new InvalidArgumentError(
      `${imagesPath} holds ${images.count} images but ${labelsPath} holds ${labels.length} labels; they must match`,
    );
  }
  if (images.count === 0) throw new InvalidArgumentError(`${imagesPath} holds no images`);
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
    files: { images: imagesPath, labels: labelsPath },
    sha256: { images: imageFile.sha256, labels: labelFile.sha256 },
    dataset,
  };
}

/**
 * Fashion-MNIST from its four IDX files (by default the Debian package's copy): 60,000 training or
 * 10,000 test images of 28×28 grey, labels 0–9.
 */
export async function loadFashionMnist(
  dir: string = FASHION_MNIST_DIR,
  split: FashionMnistSplit = 'train',
): Promise<IdxDataset> {
  const files = FASHION_MNIST_FILES[split];
  if (files === undefined) {
    throw new InvalidArgumentError(`Fashion-MNIST split must be "train" or "test", got ${String(split)}`);
  }
  const exists = await stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists) throw new NotFoundError(`Fashion-MNIST directory ${dir} does not exist; ${INSTALL_HINT}`);
  return loadIdxDataset(
    join(dir, files.images),
    join(dir, files.labels),
    FASHION_MNIST_LABELS,
    `Fashion-MNIST is incomplete; ${INSTALL_HINT}`,
  );
}
