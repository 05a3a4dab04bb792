import { InvalidArgumentError } from '@deit-serve/core';
import { validateInputSpec, type InputSpec } from './input-spec';
import { resizeWindow, type Raster } from './resample';

/**
 * timm's eval transform (`transforms_imagenet_eval`, centre-crop mode) on 8-bit RGB pixels:
 *
 *   Resize(floor(S / crop_pct), interpolation)   shorter side, aspect kept (torchvision int-size rule)
 *   CenterCrop(S)                                 torchvision's offsets (Python round, half to even)
 *   ToTensor()                                    float32 x / 255
 *   Normalize(mean, std)                          float32 (x − mean) / std
 *
 * The resize is a bit-exact port of Pillow's, and the arithmetic of the last two steps is done in
 * float32 in torch's order, so the tensor equals timm's on the same decoded pixels (see the README
 * for the measured agreement).
 *
 * An image that is already S×S is still resized when floor(S / crop_pct) ≠ S, exactly as timm does;
 * the fast path (no resampling) applies whenever the resize is the identity, e.g. S×S with
 * crop_pct 1, or any image whose shorter side already equals floor(S / crop_pct).
 */

/** 8-bit RGB, HWC; a DecodedImage satisfies it, so does any raw buffer with its size. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface EvalGeometry {
  /** Size after the shorter-side resize. */
  resizeWidth: number;
  resizeHeight: number;
  /** Top-left corner of the S×S crop within the resized image. */
  cropLeft: number;
  cropTop: number;
  size: number;
}

/** Python's round(): ties go to the even neighbour. torchvision's CenterCrop relies on it. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** The shorter side timm's eval transform resizes an image to before its centre crop. */
export function evalResizeSize(spec: Pick<InputSpec, 'imageSize' | 'cropPct'>): number {
  return Math.floor(spec.imageSize / spec.cropPct);
}

/** Where timm's eval transform resizes and crops an image of the given size. */
export function evalGeometry(
  width: number,
  height: number,
  spec: Pick<InputSpec, 'imageSize' | 'cropPct'>,
): EvalGeometry {
  const size = spec.imageSize;
  const scaleSize = evalResizeSize(spec);
  // torchvision `_compute_resized_output_size`: long = int(new_short * long / short). The product
  // is an exact integer and the quotient correctly rounded in both Python and JS, so truncating
  // it gives the same integer.
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.trunc((scaleSize * long) / short);
  const [resizeWidth, resizeHeight] = width <= height ? [scaleSize, newLong] : [newLong, scaleSize];
  return {
    resizeWidth,
    resizeHeight,
    cropLeft: roundHalfEven((resizeWidth - size) / 2),
    cropTop: roundHalfEven((resizeHeight - size) / 2),
    size,
  };
}

/**
 * Per channel, the normalised float32 value of each byte: torch computes `x.float().div(255)`,
 * then `.sub_(mean).div_(std)` with mean and std as float32 tensors; each step is rounded to
 * float32 here in the same order, so every entry equals torch's bit for bit.
 */
export function normalizationTable(spec: Pick<InputSpec, 'channels' | 'mean' | 'std'>): Float32Array {
  const table = new Float32Array(spec.channels * 256);
  for (let c = 0; c < spec.channels; c++) {
    const mean = Math.fround(spec.mean[c]);
    const std = Math.fround(spec.std[c]);
    for (let v = 0; v < 256; v++) {
      const x = Math.fround(v / 255);
      table[c * 256 + v] = Math.fround(Math.fround(x - mean) / std);
    }
  }
  return table;
}

/** Tables are built once per spec object; a spec is checked on first use so a bad one fails loudly. */
const tables = new WeakMap<InputSpec, Float32Array>();

function tableFor(spec: InputSpec): Float32Array {
  let table = tables.get(spec);
  if (!table) {
    validateInputSpec(spec);
    table = normalizationTable(spec);
    tables.set(spec, table);
  }
  return table;
}

function checkImage(image: RgbImage): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new InvalidArgumentError(`image size must be positive integers, got ${width}×${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new InvalidArgumentError(
      `RGB image of ${width}×${height} needs ${width * height * 3} bytes, got ${data.length}`,
    );
  }
}

/** PIL `convert('L')`: ITU-R 601-2 luma in 16-bit fixed point, rounded. */
function toLuma(image: RgbImage): Uint8Array {
  const { data } = image;
  const n = image.width * image.height;
  const out = new Uint8Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    out[i] = (data[p] * 19595 + data[p + 1] * 38470 + data[p + 2] * 7471 + 0x8000) >> 16;
  }
  return out;
}

/** Number of float32 values one image occupies: channels × S × S. */
export function tensorLength(spec: Pick<InputSpec, 'channels' | 'imageSize'>): number {
  return spec.channels * spec.imageSize * spec.imageSize;
}

/** Writes one image's CHW tensor into `out` at `offset` (for filling a batch without copies). */
export function preprocessInto(image: RgbImage, spec: InputSpec, out: Float32Array, offset = 0): void {
  const table = tableFor(spec);
  checkImage(image);
  const length = tensorLength(spec);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > out.length) {
    throw new RangeError(`output of ${out.length} floats has no room for ${length} at offset ${offset}`);
  }
  const channels = spec.channels;
  const src: Raster =
    channels === 3
      ? { data: image.data, width: image.width, height: image.height, channels: 3 }
      : { data: toLuma(image), width: image.width, height: image.height, channels: 1 };
  const g = evalGeometry(image.width, image.height, spec);
  const pixels = resizeWindow(src, g.resizeWidth, g.resizeHeight, spec.interpolation, {
    left: g.cropLeft,
    top: g.cropTop,
    width: g.size,
    height: g.size,
  });

  // HWC bytes → CHW floats through the table.
  const plane = g.size * g.size;
  for (let c = 0; c < channels; c++) {
    const base = offset + c * plane;
    const t = c * 256;
    for (let i = 0, p = c; i < plane; i++, p += channels) out[base + i] = table[t + pixels[p]];
  }
}

/** One image → float32 CHW tensor of `[channels, S, S]`. */
export function preprocess(image: RgbImage, spec: InputSpec): Float32Array {
  const out = new Float32Array(tensorLength(spec));
  preprocessInto(image, spec, out, 0);
  return out;
}

/** A batch in NCHW order with its dims, ready for an ONNX tensor named `pixel_values`. */
export interface PixelBatch {
  data: Float32Array;
  dims: [number, number, number, number];
}

/** Several images → one NCHW float32 tensor `[N, channels, S, S]`. */
export function tensorFromImageBatch(images: readonly RgbImage[], spec: InputSpec): PixelBatch {
  const length = tensorLength(spec);
  const data = new Float32Array(images.length * length);
  images.forEach((image, i) => preprocessInto(image, spec, data, i * length));
  return { data, dims: [images.length, spec.channels, spec.imageSize, spec.imageSize] };
}
