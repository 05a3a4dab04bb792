import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError } from '@deit-serve/core';
import { decodeImage, preprocess, type DecodedImage, type Interpolation } from '@deit-serve/preprocess';
import { sampleDataset, stratifiedQuotas, type ImageDataset, type ImageSample } from './dataset';

/**
 * torchvision's ImageFolder layout: `root/<class>/**\/<image>`, classes in sorted order of their
 * folder names (label = position), files in sorted order within each class, searched recursively.
 *
 * Differences from torchvision, on purpose:
 * - Hidden entries (names starting with '.') are ignored, so `.DS_Store` or `.ipynb_checkpoints`
 *   never become a class or an image.
 * - A file with a non-image extension, or one that cannot be read or decoded, is not fatal: it is
 *   reported in `problems` (path and reason) and skipped. A dataset with corrupt images still trains
 *   on the others, and the job can show what it left out.
 * - A class folder with no image files at all is an error (torchvision raises too): the label set
 *   would silently disagree with the teacher's.
 */

/** Extensions tried as images, lower-case; the formats `@deit-serve/preprocess` decodes. */
export const IMAGE_EXTENSIONS: readonly string[] = [
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
];

/** Largest decoded image accepted by default (width × height). */
export const DEFAULT_MAX_PIXELS = 50_000_000;

export interface DatasetProblem {
  /** Path relative to the dataset root. */
  readonly path: string;
  readonly reason: string;
}

export interface ImageFolderListing {
  readonly root: string;
  /** Class folder names, sorted; a label is an index into it. */
  readonly classes: readonly string[];
  /** Image files (relative paths), class by class, each class's files sorted. */
  readonly files: ReadonlyArray<{ readonly path: string; readonly label: number }>;
  /** Files skipped while listing. */
  readonly problems: readonly DatasetProblem[];
}

export interface ImageFolderOptions {
  /**
   * Decode at most this many images, chosen by the rule of `ImageDataset.limit` (each class in
   * proportion, its first files); an image that fails is replaced by the next file of its class.
   */
  readonly limit?: number;
  /**
   * Store every image as size × size via the timm eval transform (shorter side resized to
   * floor(size / cropPct), centre crop), so memory is bounded and batching needs no resampling.
   * Without it images keep their native size. `cropPct` defaults to 1 (the largest centred square,
   * nothing of the shorter side lost, which suits random crops later); `interpolation` to bicubic.
   */
  readonly resize?: {
    readonly size: number;
    readonly cropPct?: number;
    readonly interpolation?: Interpolation;
  };
  /** Per-image pixel limit passed to the decoder; default DEFAULT_MAX_PIXELS. */
  readonly maxPixels?: number;
  /** Images decoded at once; default 4. */
  readonly concurrency?: number;
  /**
   * Most images the load may take: a folder that would yield more (after `limit`) is refused before
   * anything is decoded, with a ResourceExhaustedError. Default: no limit.
   */
  readonly maxImages?: number;
  /**
   * Most bytes of image files the load may read (sizes on disk, failed files included); the file that
   * would pass it is not read and the load fails with a ResourceExhaustedError. Default: no limit.
   */
  readonly maxBytes?: number;
  /**
   * Asked for each image file before it is read (with its path as found, symlinks unresolved); a file
   * it refuses is reported in `problems` and skipped. A sandbox uses it to refuse files that a
   * symlink inside the folder leads out of the allowed roots.
   */
  readonly isAllowed?: (path: string) => boolean | Promise<boolean>;
}

export interface ImageFolderDataset {
  readonly root: string;
  readonly dataset: ImageDataset;
  /** Relative path of each dataset image, by index. */
  readonly paths: readonly string[];
  /** Everything skipped, while listing or decoding. */
  readonly problems: readonly DatasetProblem[];
  /** Bytes of image files read, failed ones included. */
  readonly bytesRead: number;
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Lists image files under `dir`, sorted per directory like os.walk + sorted(fnames). */
async function walk(root: string, dir: string, files: string[], problems: DatasetProblem[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    problems.push({ path: relative(root, dir), reason: `cannot list folder: ${reasonOf(err)}` });
    return;
  }
  const names = entries.filter((e) => !e.name.startsWith('.')).sort((a, b) => byName(a.name, b.name));
  const subdirs: string[] = [];
  for (const entry of names) {
    const path = join(dir, entry.name);
    // Follow symbolic links, as torchvision does (os.walk(followlinks=True)).
    const directory = entry.isDirectory() || (entry.isSymbolicLink() && (await isDirectory(path)));
    if (directory) {
      subdirs.push(path);
    } else if (IMAGE_EXTENSIONS.includes(extname(entry.name).toLowerCase())) {
      files.push(path);
    } else {
      problems.push({
        path: relative(root, path),
        reason: `skipped: "${extname(entry.name) || '(no extension)'}" is not an image extension (${IMAGE_EXTENSIONS.join(' ')})`,
      });
    }
  }
  for (const sub of subdirs) await walk(root, sub, files, problems);
}

/** Finds the classes and image files without decoding anything. */
export async function listImageFolder(root: string): Promise<ImageFolderListing> {
  let info;
  try {
    info = await stat(root);
  } catch (err) {
    throw new NotFoundError(`image folder ${root} does not exist`, { cause: err });
  }
  if (!info.isDirectory()) throw new InvalidArgumentError(`image folder ${root} is not a directory`);

  const entries = await readdir(root, { withFileTypes: true }).catch((err: unknown) => {
    throw new InvalidArgumentError(`image folder ${root} cannot be listed: ${reasonOf(err)}`, { cause: err });
  });
  const classes: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory() || (entry.isSymbolicLink() && (await isDirectory(join(root, entry.name))))) {
      classes.push(entry.name);
    }
  }
  classes.sort(byName);
  if (classes.length === 0) {
    throw new InvalidArgumentError(
      `image folder ${root} has no classes: expected one sub-folder per class, each holding its images`,
    );
  }

  const files: Array<{ path: string; label: number }> = [];
  const problems: DatasetProblem[] = [];
  const empty: string[] = [];
  for (const [label, name] of classes.entries()) {
    const found: string[] = [];
    await walk(root, join(root, name), found, problems);
    if (found.length === 0) empty.push(name);
    for (const path of found) files.push({ path: relative(root, path), label });
  }
  if (empty.length > 0) {
    throw new InvalidArgumentError(
      `image folder ${root}: class folder${empty.length > 1 ? 's' : ''} ${empty.map((n) => `"${n}"`).join(', ')} ` +
        `hold${empty.length > 1 ? '' : 's'} no image files (${IMAGE_EXTENSIONS.join(' ')})`,
    );
  }
  return { root, classes, files, problems };
}

/** 8-bit RGB → the stored sample: grey when every pixel has r = g = b (a third of the memory). */
function toSample(data: Uint8Array, width: number, height: number, label: number): ImageSample {
  const pixels = width * height;
  let grey = true;
  for (let i = 0, p = 0; i < pixels; i++, p += 3) {
    if (data[p] !== data[p + 1] || data[p] !== data[p + 2]) {
      grey = false;
      break;
    }
  }
  if (!grey) return { pixels: data, width, height, channels: 3, label };
  const single = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) single[i] = data[i * 3];
  return { pixels: single, width, height, channels: 1, label };
}

/** The eval transform with identity normalisation, brought back to bytes (x / 255 × 255 rounds exactly). */
function resizeStored(
  image: DecodedImage,
  resize: NonNullable<ImageFolderOptions['resize']>,
): { data: Uint8Array; size: number } {
  const size = resize.size;
  const planes = preprocess(image, {
    imageSize: size,
    channels: 3,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    interpolation: resize.interpolation ?? 'bicubic',
    cropPct: resize.cropPct ?? 1,
  });
  const plane = size * size;
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) data[i * 3 + c] = Math.round(planes[c * plane + i] * 255);
  }
  return { data, size };
}

function checkOptions(options: ImageFolderOptions): void {
  const problems: string[] = [];
  const { limit, resize, maxPixels, concurrency, maxImages, maxBytes } = options;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    problems.push(`limit must be a positive integer, got ${limit}`);
  }
  if (resize !== undefined) {
    if (!Number.isInteger(resize.size) || resize.size < 1) {
      problems.push(`resize.size must be a positive integer, got ${resize.size}`);
    }
    if (resize.cropPct !== undefined && !(resize.cropPct > 0 && resize.cropPct <= 1)) {
      problems.push(`resize.cropPct must be in (0, 1], got ${resize.cropPct}`);
    }
  }
  if (maxPixels !== undefined && (!Number.isSafeInteger(maxPixels) || maxPixels < 1)) {
    problems.push(`maxPixels must be a positive integer, got ${maxPixels}`);
  }
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    problems.push(`concurrency must be a positive integer, got ${concurrency}`);
  }
  if (maxImages !== undefined && (!Number.isSafeInteger(maxImages) || maxImages < 0)) {
    problems.push(`maxImages must be a non-negative integer, got ${maxImages}`);
  }
  if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 0)) {
    problems.push(`maxBytes must be a non-negative integer, got ${maxBytes}`);
  }
  if (problems.length > 0)
    throw new InvalidArgumentError(`invalid image folder options: ${problems.join('; ')}`);
}

/**
 * Lists and decodes an ImageFolder into memory. Corrupt or unreadable images are reported in
 * `problems` and skipped; if nothing decodes, an InvalidArgumentError quotes the first problems.
 */
export async function loadImageFolder(
  root: string,
  options: ImageFolderOptions = {},
): Promise<ImageFolderDataset> {
  checkOptions(options);
  const listing = await listImageFolder(root);
  const problems: DatasetProblem[] = [...listing.problems];
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const concurrency = options.concurrency ?? 4;
  const { files, classes } = listing;
  const planned = Math.min(options.limit ?? files.length, files.length);
  if (options.maxImages !== undefined && planned > options.maxImages) {
    throw new ResourceExhaustedError(
      `image folder ${root}: would load ${planned.toLocaleString('en-US')} images, more than the ` +
        `${options.maxImages.toLocaleString('en-US')} allowed`,
    );
  }
  let bytesRead = 0;
  /** Set once the byte budget is spent: every decoder stops taking files. */
  let overBudget: ResourceExhaustedError | undefined;

  const load = async (index: number): Promise<ImageSample | undefined> => {
    const { path, label } = files[index];
    const absolute = join(root, path);
    try {
      if (options.isAllowed && !(await options.isAllowed(absolute))) {
        throw new Error('leads outside the allowed data roots (a symbolic link?); not read');
      }
      if (options.maxBytes !== undefined) {
        const size = (await stat(absolute)).size;
        if (bytesRead + size > options.maxBytes) {
          overBudget ??= new ResourceExhaustedError(
            `image folder ${root}: reading ${path} (${size.toLocaleString('en-US')} bytes) would pass the ` +
              `limit of ${options.maxBytes.toLocaleString('en-US')} bytes of dataset files`,
          );
          return undefined;
        }
        bytesRead += size; // reserved before the read, so concurrent decoders cannot overshoot together
      }
      const bytes = await readFile(absolute);
      if (options.maxBytes === undefined) bytesRead += bytes.length;
      const image = await decodeImage(bytes, { maxPixels });
      if (options.resize) {
        const { data, size } = resizeStored(image, options.resize);
        return toSample(data, size, size, label);
      }
      return toSample(image.data, image.width, image.height, label);
    } catch (err) {
      problems.push({ path, reason: reasonOf(err) });
      return undefined;
    }
  };

  /** Decodes the given file indices with bounded concurrency; results by position. */
  const loadAll = async (indices: readonly number[]): Promise<Array<ImageSample | undefined>> => {
    const results: Array<ImageSample | undefined> = new Array<ImageSample | undefined>(indices.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < indices.length && overBudget === undefined) {
        const k = next++;
        results[k] = await load(indices[k]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, indices.length) }, worker));
    if (overBudget !== undefined) throw overBudget;
    return results;
  };

  const loaded = new Map<number, ImageSample>();
  const labels = files.map((f) => f.label);
  const plan = stratifiedQuotas(labels, classes.length, options.limit ?? files.length);
  // Each round decodes what is still missing; a class's failures are replaced by its next files.
  let pending = plan.flatMap((q) => q.chosen);
  while (pending.length > 0) {
    const results = await loadAll(pending);
    const missing = new Array<number>(classes.length).fill(0);
    results.forEach((sample, k) => {
      if (sample) loaded.set(pending[k], sample);
      else missing[files[pending[k]].label]++;
    });
    pending = plan.flatMap((q, c) => q.rest.splice(0, missing[c]));
  }

  const order = [...loaded.keys()].sort((a, b) => a - b);
  if (order.length === 0) {
    const shown = problems.slice(0, 5).map((p) => `${p.path}: ${p.reason}`);
    throw new InvalidArgumentError(
      `image folder ${root}: none of its ${files.length} image files could be decoded (${shown.join('; ')}` +
        `${problems.length > shown.length ? `; and ${problems.length - shown.length} more` : ''})`,
    );
  }
  // Decoding finishes out of order; report problems in path order so runs compare equal.
  problems.sort((a, b) => byName(a.path, b.path));
  const samples = order.map((i) => loaded.get(i) as ImageSample);
  return {
    root,
    dataset: sampleDataset(samples, classes),
    paths: order.map((i) => files[i].path),
    problems,
    bytesRead,
  };
}
