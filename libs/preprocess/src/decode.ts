import { InvalidArgumentError } from '@deit-serve/core';
import { createRequire } from 'node:module';
import type Sharp from 'sharp';
import type { DecodeGate } from './decode-admission';

const nodeRequire = createRequire(__filename);
let loadedSharp: typeof Sharp | undefined;

/**
 * sharp (libvips) is loaded with the first image, not with this module: it maps 19 MiB that a
 * service fed only tensors never uses (measured: the process's RSS with and without `require('sharp')`).
 */
function sharp(...args: Parameters<typeof Sharp>): ReturnType<typeof Sharp> {
  if (loadedSharp === undefined) {
    const loaded = nodeRequire('sharp') as typeof Sharp;
    // libvips' operation cache keeps decoded images around for reuse a server never has; without it
    // memory stays flat under load.
    loaded.cache(false);
    loadedSharp = loaded;
  }
  return loadedSharp(...args);
}

/**
 * Image decoding with the pixel semantics of PIL's `Image.open(f).convert('RGB')`, which is what
 * timm's datasets and eval scripts feed the transform. Measured bit-identical to Pillow for PNG
 * (RGB, RGBA, grey, palette, 16-bit RGB), JPEG (colour and grey), lossy and lossless WebP, GIF and
 * TIFF (test/pillow-agreement.spec.ts).
 *
 * Decisions, each matching PIL unless said otherwise:
 * - EXIF orientation is ignored: pixels come out as stored, as PIL does without `exif_transpose`.
 *   A phone photo taken in portrait therefore reaches the model sideways, exactly as in timm eval.
 * - Embedded ICC profiles are ignored (PIL does not colour-manage on open).
 * - Alpha is dropped without compositing, as `convert('RGB')` does: the stored colour of a fully
 *   transparent pixel is what the model sees.
 * - Grey and grey+alpha are replicated to three equal channels; palettes are expanded.
 * - 16-bit samples keep their high byte (v >> 8). PIL does the same for 16-bit RGB(A) and grey+alpha
 *   but *clips* 16-bit grey (mode I;16) to 255, turning most such images white; that is a PIL quirk,
 *   not a choice timm makes, so grey16 is deliberately scaled like every other 16-bit layout.
 * - CMYK JPEGs are converted by libvips with a CMYK profile; PIL's naive inversion differs.
 * - Only the first frame of an animated GIF/WebP or multi-page TIFF is read (PIL opens frame 0).
 * - Corrupt data that libjpeg/libpng only warn about is refused (sharp's `failOn: 'warning'`):
 *   a classification of a half-decoded image is worse than an error the caller can act on.
 */

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif';

/** Raster formats accepted unless the caller narrows them. SVG, PDF and the like are never accepted: they are programs, not pixels. */
export const DEFAULT_IMAGE_FORMATS: readonly ImageFormat[] = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'];

export interface DecodeOptions {
  /** Largest width × height accepted, checked against the header before any pixel is decoded. */
  maxPixels: number;
  /** Formats accepted; defaults to DEFAULT_IMAGE_FORMATS. */
  formats?: readonly ImageFormat[];
  /** Shared by concurrent decodes: each holds its declared pixels while its raster is decoded. */
  budget?: DecodeGate;
  /** Gives up waiting for the budget (with the signal's reason) when aborted. */
  signal?: AbortSignal;
}

/** 8-bit RGB, row-major, channels interleaved (HWC): `data[(y * width + x) * 3 + c]`. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  format: ImageFormat;
}

const FORMAT_NAMES: Record<ImageFormat, string> = {
  jpeg: 'JPEG',
  png: 'PNG',
  webp: 'WebP',
  gif: 'GIF',
  tiff: 'TIFF',
  avif: 'AVIF',
};

function acceptedList(formats: readonly ImageFormat[]): string {
  const names = formats.map((f) => FORMAT_NAMES[f]);
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/**
 * Names the container from its magic bytes, only to word error messages: sharp's own messages do
 * not say which decoder failed.
 */
export function sniffFormat(bytes: Uint8Array): string | undefined {
  const ascii = (from: number, to: number): string => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'JPEG';
  if (bytes[0] === 0x89 && ascii(1, 4) === 'PNG') return 'PNG';
  if (ascii(0, 4) === 'GIF8') return 'GIF';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'WebP';
  if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return 'TIFF';
  if (ascii(4, 8) === 'ftyp') return `ISO-BMFF (${ascii(8, 12)})`;
  if (ascii(0, 2) === 'BM') return 'BMP';
  const head = ascii(0, 256).trimStart().toLowerCase();
  if (head.startsWith('<?xml') || head.startsWith('<svg')) return 'SVG';
  if (head.startsWith('%pdf')) return 'PDF';
  return undefined;
}

function hexPrefix(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function describe(bytes: Uint8Array): string {
  const sniffed = sniffFormat(bytes);
  return sniffed ? `${sniffed} data` : `data starting ${hexPrefix(bytes)}`;
}

function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // libvips appends a multi-line trace; its first line is the useful part, and the codec's own
  // words after sharp's generic prefix are the most specific.
  const first = (message.split('\n')[0] ?? message).replace(/:\s*$/, '');
  return first.replace(/^Input buffer has corrupt header: (?=\S)/, '');
}

/** PNG's IHDR is at a fixed offset; reading it lets a zero-size PNG get its own message. */
function declaredPngSize(bytes: Uint8Array): [number, number] | undefined {
  if (sniffFormat(bytes) !== 'PNG' || bytes.length < 24) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [view.getUint32(16), view.getUint32(20)];
}

/** sharp's format id → ours; undefined for anything not a plain raster we know. */
function formatOf(meta: Sharp.Metadata): ImageFormat | undefined {
  switch (meta.format) {
    case 'jpeg':
    case 'png':
    case 'webp':
    case 'gif':
    case 'tiff':
      return meta.format;
    case 'heif':
      // libvips reports AVIF and HEIC alike as heif; the prebuilt libheif decodes only AV1.
      return meta.compression === 'av1' ? 'avif' : undefined;
    default:
      return undefined;
  }
}

function checkOptions(options: DecodeOptions): readonly ImageFormat[] {
  if (!Number.isSafeInteger(options.maxPixels) || options.maxPixels < 1) {
    // A configuration mistake, not the caller's image: not an InvalidArgumentError.
    throw new RangeError(`maxPixels must be a positive integer, got ${options.maxPixels}`);
  }
  const formats = options.formats ?? DEFAULT_IMAGE_FORMATS;
  if (formats.length === 0) throw new RangeError('formats must name at least one format');
  return formats;
}

/**
 * Decodes an encoded image into 8-bit RGB. Every failure caused by the bytes is an
 * InvalidArgumentError whose message says what was detected, what was wrong and what is accepted.
 * Decoding runs on libvips threads (libuv pool), off the event loop.
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions): Promise<DecodedImage> {
  const formats = checkOptions(options);
  if (bytes.length === 0) {
    throw new InvalidArgumentError(`image is empty (0 bytes); send a ${acceptedList(formats)} file`);
  }
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // Header only: libvips parses dimensions without allocating the raster, so no pixel limit is
  // needed here, and lifting it lets the error below state the declared size.
  let meta: Sharp.Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false, pages: 1 }).metadata();
  } catch (err) {
    const declared = declaredPngSize(bytes);
    if (declared && (declared[0] === 0 || declared[1] === 0)) {
      throw new InvalidArgumentError(`PNG image has zero size (${declared[0]}×${declared[1]})`, {
        cause: err,
      });
    }
    const sniffed = sniffFormat(bytes);
    const what = sniffed
      ? `${sniffed} header is truncated or corrupt (${reason(err)})`
      : `unrecognised image format (${describe(bytes)})`;
    throw new InvalidArgumentError(`cannot read image: ${what}; send a ${acceptedList(formats)} file`, {
      cause: err,
    });
  }

  const format = formatOf(meta);
  if (format === undefined || !formats.includes(format)) {
    const name = format
      ? FORMAT_NAMES[format]
      : meta.format === 'heif'
        ? `HEIF (${meta.compression ?? 'unknown codec'})`
        : String(meta.format).toUpperCase();
    throw new InvalidArgumentError(
      `image format ${name} is not accepted; send a ${acceptedList(formats)} file`,
    );
  }

  const width = meta.width;
  // Multi-frame inputs report the stacked height; only the first frame is decoded.
  const height = meta.pageHeight ?? meta.height;
  if (!(width > 0 && height > 0)) {
    throw new InvalidArgumentError(`${FORMAT_NAMES[format]} image has zero size (${width}×${height})`);
  }
  if (width * height > options.maxPixels) {
    throw new InvalidArgumentError(
      `${FORMAT_NAMES[format]} image is ${width}×${height} = ${(width * height).toLocaleString('en-US')} pixels, ` +
        `above the limit of ${options.maxPixels.toLocaleString('en-US')}; downscale it before sending`,
    );
  }

  const release = await options.budget?.acquire(width * height, options.signal);
  let raw: { data: Buffer; info: Sharp.OutputInfo };
  try {
    raw = await sharp(input, {
      // Second line of defence: the header was checked, but the decoder enforces it again.
      limitInputPixels: options.maxPixels,
      failOn: 'warning',
      pages: 1,
      page: 0,
      ignoreIcc: true,
      autoOrient: false,
    })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new InvalidArgumentError(
      `${FORMAT_NAMES[format]} image (${width}×${height}) is truncated or corrupt: ${reason(err)}`,
      { cause: err },
    );
  } finally {
    release?.();
  }
  return { data: toRgb(raw.data, raw.info), width: raw.info.width, height: raw.info.height, format };
}

/** Brings libvips' band layouts to RGB: grey replicated, alpha dropped (PIL `convert('RGB')`). */
function toRgb(data: Buffer, info: Sharp.OutputInfo): Uint8Array {
  const { width, height } = info;
  // Widened from sharp's 1 | 2 | 3 | 4 so that the defensive default below type-checks.
  const channels: number = info.channels;
  const pixels = width * height;
  if (data.length !== pixels * channels) {
    throw new Error(`decoder returned ${data.length} bytes for ${width}×${height}×${channels}`);
  }
  if (channels === 3) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(pixels * 3);
  switch (channels) {
    case 1:
    case 2:
      for (let i = 0; i < pixels; i++) {
        const v = data[i * channels];
        out[i * 3] = v;
        out[i * 3 + 1] = v;
        out[i * 3 + 2] = v;
      }
      return out;
    case 4:
      for (let i = 0; i < pixels; i++) {
        out[i * 3] = data[i * 4];
        out[i * 3 + 1] = data[i * 4 + 1];
        out[i * 3 + 2] = data[i * 4 + 2];
      }
      return out;
    default:
      // libvips emits at most RGBA after toColourspace('srgb'); anything else is a bug here.
      throw new Error(`decoder returned ${channels} channels; expected 1 to 4`);
  }
}
