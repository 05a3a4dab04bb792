import { extname, join } from 'node:path';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError } from '@deit-serve/core';
import { decodeImage, preprocess, type DecodedImage, type Interpolation } from '@deit-serve/preprocess';
import { sampleDataset, stratifiedQuotas, type ImageDataset, type ImageSample } from './dataset';
import { FileAccess, type CheckedDirectory } from './file-access';

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
 * - Every folder and file is opened through a {@link FileAccess} (a sandbox's, in the trainer): a
 *   class folder that leads outside its roots is refused (PERMISSION_DENIED); a sub-folder or file
 *   that does, a FIFO or device, or a file above `maxFileBytes`, is reported and skipped, never read.
 *   Symbolic links inside the roots are followed, as torchvision does, each folder listed once.
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

/** Largest image file read by default; a larger one is skipped before reading. */
export const DEFAULT_MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024;

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
  /** Per-file limit: a larger file is reported and skipped, not read; default DEFAULT_MAX_IMAGE_FILE_BYTES. */
  readonly maxFileBytes?: number;
  /** Opens every folder and file (a sandbox passes its own); default: anywhere, regular files only. */
  readonly files?: FileAccess;
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

/** Opens sub-folder `name` of `parent`; undefined when it is not a folder (a file symlink, say). */
async function subfolder(parent: CheckedDirectory, name: string): Promise<CheckedDirectory | undefined> {
  try {
    return await parent.openDirectory(name);
  } catch (err) {
    if (err instanceof InvalidArgumentError && /not a directory/.test(err.message)) return undefined;
    throw err;
  }
}

interface Walk {
  readonly files: string[];
  readonly problems: DatasetProblem[];
  /** Folders already listed (device:inode): a symlink loop is listed once. */
  readonly seen: Set<string>;
}

/** Lists image files under `dir` (relative path `at`), sorted per directory like os.walk + sorted(fnames). */
async function walk(dir: CheckedDirectory, at: string, state: Walk): Promise<void> {
  const { files, problems, seen } = state;
  const identity = await dir.identity();
  if (seen.has(identity)) {
    problems.push({ path: at, reason: 'skipped: a folder already listed (a symbolic link loop?)' });
    return;
  }
  seen.add(identity);
  let entries;
  try {
    entries = await dir.entries();
  } catch (err) {
    problems.push({ path: at, reason: `cannot list folder: ${reasonOf(err)}` });
    return;
  }
  const names = entries.filter((e) => !e.name.startsWith('.')).sort((a, b) => byName(a.name, b.name));
  const subdirs: string[] = [];
  for (const entry of names) {
    const path = join(at, entry.name);
    const linked = entry.isSymbolicLink();
    if (entry.isDirectory() || linked) {
      // Symbolic links are followed, as torchvision does (os.walk(followlinks=True)), within the roots.
      let sub: CheckedDirectory | undefined;
      try {
        sub = await subfolder(dir, entry.name);
      } catch (err) {
        problems.push({ path, reason: `skipped: ${reasonOf(err)}` });
        continue;
      }
      if (sub !== undefined) {
        await sub.close();
        subdirs.push(entry.name);
        continue;
      }
    }
    if (IMAGE_EXTENSIONS.includes(extname(entry.name).toLowerCase())) {
      files.push(path);
    } else {
      problems.push({
        path,
        reason: `skipped: "${extname(entry.name) || '(no extension)'}" is not an image extension (${IMAGE_EXTENSIONS.join(' ')})`,
      });
    }
  }
  for (const name of subdirs) {
    const path = join(at, name);
    let sub: CheckedDirectory | undefined;
    try {
      sub = await subfolder(dir, name);
    } catch (err) {
      problems.push({ path, reason: `skipped: ${reasonOf(err)}` });
      continue;
    }
    if (sub === undefined) continue;
    try {
      await walk(sub, path, state);
    } finally {
      await sub.close();
    }
  }
}

/** Finds the classes and image files without decoding anything. */
export async function listImageFolder(
  root: string,
  access: FileAccess = FileAccess.anywhere,
): Promise<ImageFolderListing> {
  let top: CheckedDirectory;
  try {
    top = await access.openDirectory(root);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new NotFoundError(`image folder ${root} does not exist`, { cause: err });
    }
    if (err instanceof InvalidArgumentError && /not a directory/.test(err.message)) {
      throw new InvalidArgumentError(`image folder ${root} is not a directory`, { cause: err });
    }
    throw err;
  }
  try {
    const entries = await top.entries().catch((err: unknown) => {
      throw new InvalidArgumentError(`image folder ${root} cannot be listed: ${reasonOf(err)}`, {
        cause: err,
      });
    });
    const classes: string[] = [];
    for (const entry of entries) {
      if (entry.name.startsWith('.') || !(entry.isDirectory() || entry.isSymbolicLink())) continue;
      // A class folder leading outside the roots refuses the whole folder: skipping it would
      // silently change the label set.
      const dir = await subfolder(top, entry.name);
      if (dir === undefined) continue;
      await dir.close(); // one folder open at a time: a thousand classes must not use a thousand descriptors
      classes.push(entry.name);
    }
    classes.sort(byName);
    if (classes.length === 0) {
      throw new InvalidArgumentError(
        `image folder ${root} has no classes: expected one sub-folder per class, each holding its images`,
      );
    }
    const files: Array<{ path: string; label: number }> = [];
    const problems: DatasetProblem[] = [];
    const seen = new Set([await top.identity()]);
    const empty: string[] = [];
    for (const [label, name] of classes.entries()) {
      const found: string[] = [];
      const dir = await subfolder(top, name);
      if (dir !== undefined) {
        try {
          await walk(dir, name, { files: found, problems, seen });
        } finally {
          await dir.close();
        }
      }
      if (found.length === 0) empty.push(name);
      for (const path of found) files.push({ path, label });
    }
    if (empty.length > 0) {
      throw new InvalidArgumentError(
        `image folder ${root}: class folder${empty.length > 1 ? 's' : ''} ${empty.map((n) => `"${n}"`).join(', ')} ` +
          `hold${empty.length > 1 ? '' : 's'} no image files (${IMAGE_EXTENSIONS.join(' ')})`,
      );
    }
    return { root, classes, files, problems };
  } finally {
    await top.close();
  }
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
  const { limit, resize, maxPixels, concurrency, maxImages, maxBytes, maxFileBytes } = options;
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
  if (maxFileBytes !== undefined && (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 0)) {
    problems.push(`maxFileBytes must be a non-negative integer, got ${maxFileBytes}`);
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
  const access = options.files ?? FileAccess.anywhere;
  const listing = await listImageFolder(root, access);
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_IMAGE_FILE_BYTES;
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
    let file;
    try {
      file = await access.openFile(join(root, path), { maxBytes: maxFileBytes });
    } catch (err) {
      // Refused before reading: outside the roots, not a regular file, too large.
      problems.push({ path, reason: reasonOf(err) });
      return undefined;
    }
    try {
      if (options.maxBytes !== undefined) {
        if (bytesRead + file.size > options.maxBytes) {
          overBudget ??= new ResourceExhaustedError(
            `image folder ${root}: reading ${path} (${file.size.toLocaleString('en-US')} bytes) would pass the ` +
              `limit of ${options.maxBytes.toLocaleString('en-US')} bytes of dataset files`,
          );
          return undefined;
        }
        bytesRead += file.size; // reserved before the read, so concurrent decoders cannot overshoot together
      }
      const bytes = await file.readAll();
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
    } finally {
      await file.close();
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
