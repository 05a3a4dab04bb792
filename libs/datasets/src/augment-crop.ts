import type { Rng } from '@deit-serve/core';
import { RRC_RATIO, RRC_SCALE } from './augment-options';

/**
 * Where a training crop comes from and how it becomes S × S: torchvision's random-resized and padded
 * crop boxes, and a port of PIL's bilinear `resize` (a triangle kernel widened by the scale when
 * shrinking, i.e. antialiased; 22-bit fixed point; bytes between the two passes; Pillow 13's order of
 * the passes), which is what torchvision applies to the PIL images timm trains on; it is bit-identical
 * to Pillow (test/pillow-agreement.spec.ts). A box extending past the image (padded crop) reads zeros
 * there, as torchvision's `RandomCrop(padding, fill=0)` does.
 */

/** Python's round(): ties to even. torchvision and timm round crop sizes with it. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** A rectangle in source pixels; it may extend past the image (padded crop), which reads as zeros. */
export interface Box {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/** torchvision `RandomResizedCrop.get_params`: 10 tries, then the central crop clamped to `ratio`. */
export function randomResizedCropBox(
  rng: Rng,
  width: number,
  height: number,
  scale: readonly [number, number] = RRC_SCALE,
  ratio: readonly [number, number] = RRC_RATIO,
): Box {
  const area = width * height;
  const logLow = Math.log(ratio[0]);
  const logHigh = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLow, logHigh));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(0, height - h + 1);
      const left = rng.int(0, width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = roundHalfEven(w / ratio[0]);
  else if (inRatio > ratio[1]) w = roundHalfEven(h * ratio[1]);
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** torchvision `RandomCrop(size=(height, width), padding)`: an offset in [−padding, +padding] on each axis. */
export function paddedCropBox(rng: Rng, width: number, height: number, padding: number): Box {
  const top = rng.int(0, 2 * padding + 1) - padding;
  const left = rng.int(0, 2 * padding + 1) - padding;
  return { left, top, width, height };
}

// ---------------------------------------------------------------------------------------------
// Resampling

/** Per output position: first source tap (box coordinates), tap count, and weights in PIL's fixed point. */
interface Coefficients {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly weights: Int32Array;
  readonly taps: number;
}

/** PIL's 8-bit resampling precision: 32 − 8 − 2 bits of fraction. */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

const coefficientCache = new Map<number, Coefficients>();

/** PIL `precompute_coeffs` with the bilinear (triangle) filter. */
function coefficients(inSize: number, outSize: number): Coefficients {
  const key = inSize * 65536 + outSize;
  const cached = coefficientCache.get(key);
  if (cached) return cached;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const row = new Float64Array(taps);
  const inverse = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * inverse);
      const w = t < 1 ? 1 - t : 0;
      row[x] = w;
      total += w;
    }
    // normalize_coeffs_8bpc: weights are ≥ 0 for the triangle, so rounding is +0.5 and truncation.
    for (let x = 0; x < xmax; x++) {
      weights[xx * taps + x] = Math.trunc(0.5 + (total !== 0 ? row[x] / total : 0) * ONE);
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  const result = { start, count, weights, taps };
  // Random-resized crops produce many (in, out) pairs; a bounded cache keeps the common ones.
  if (coefficientCache.size > 4096) coefficientCache.clear();
  coefficientCache.set(key, result);
  return result;
}

/** PIL's `clip8`: the accumulator, started at one half, shifted down and clamped to a byte. */
function toByte(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** An 8-bit HWC image; an ImageSample is one. */
export interface ByteImage {
  readonly pixels: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
}

/**
 * The box of `image` resampled to size × size (bilinear, antialiased when shrinking), optionally
 * mirrored left–right, as 8-bit HWC with the image's channel count. A box of exactly size × size
 * is copied without resampling, so crops and flips are exact.
 */
export function resizedCrop(
  image: ByteImage,
  box: Box,
  size: number,
  flip = false,
  out?: Uint8Array,
): Uint8Array {
  const { pixels, width, height } = image;
  const ch = image.channels;
  const rowLength = size * ch;
  const result = out ?? new Uint8Array(size * rowLength);
  if (result.length < size * rowLength) throw new RangeError(`output of ${result.length} bytes is too small`);

  const inside =
    box.left >= 0 && box.top >= 0 && box.left + box.width <= width && box.top + box.height <= height;
  if (box.width === size && box.height === size) {
    for (let y = 0; y < size; y++) {
      const sy = box.top + y;
      for (let x = 0; x < size; x++) {
        const sx = box.left + x;
        const o = y * rowLength + (flip ? size - 1 - x : x) * ch;
        if (inside || (sy >= 0 && sy < height && sx >= 0 && sx < width)) {
          const s = (sy * width + sx) * ch;
          for (let c = 0; c < ch; c++) result[o + c] = pixels[s + c];
        } else {
          for (let c = 0; c < ch; c++) result[o + c] = 0;
        }
      }
    }
    return result;
  }

  // The box as its own raster (padding reads as zeros), as torchvision's PIL `crop` produces it.
  const bw = box.width;
  const bh = box.height;
  let raster: Uint8Array;
  if (inside && bw === width) {
    raster = pixels.subarray(box.top * width * ch, (box.top + bh) * width * ch);
  } else {
    raster = new Uint8Array(bw * bh * ch);
    for (let r = 0; r < bh; r++) {
      const sy = box.top + r;
      if (sy < 0 || sy >= height) continue;
      const x0 = Math.max(box.left, 0);
      const x1 = Math.min(box.left + bw, width);
      if (x1 > x0)
        raster.set(
          pixels.subarray((sy * width + x0) * ch, (sy * width + x1) * ch),
          (r * bw + x0 - box.left) * ch,
        );
    }
  }

  // Pillow 13 runs the vertical pass first when the height shrinks by more than twice what the
  // width does (measured: this rule reproduced its output on 670 random bilinear resizes, and each
  // order alone fails on a third of them). A pass whose size does not change is skipped, as in PIL.
  let current = raster;
  let cw = bw;
  let chh = bh;
  const verticalFirst = size < bh && bh - size > 2 * (bw - size);
  const passes: Array<'h' | 'v'> = verticalFirst ? ['v', 'h'] : ['h', 'v'];
  for (const pass of passes) {
    if (pass === 'h' && cw !== size) {
      current = horizontalPass(current, cw, chh, ch, size);
      cw = size;
    } else if (pass === 'v' && chh !== size) {
      current = verticalPass(current, cw, chh, ch, size);
      chh = size;
    }
  }

  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = y * rowLength + (flip ? size - 1 - x : x) * ch;
      const s = (y * size + x) * ch;
      for (let c = 0; c < ch; c++) result[o + c] = current[s + c];
    }
  }
  return result;
}

/** PIL `ImagingResampleHorizontal_8bpc`: each row of a w × h raster resampled to outWidth. */
function horizontalPass(src: Uint8Array, w: number, h: number, ch: number, outWidth: number): Uint8Array {
  const co = coefficients(w, outWidth);
  const out = new Uint8Array(h * outWidth * ch);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < outWidth; x++) {
      const first = co.start[x];
      const n = co.count[x];
      const wBase = x * co.taps;
      const o = (y * outWidth + x) * ch;
      for (let c = 0; c < ch; c++) {
        let acc = HALF;
        for (let k = 0; k < n; k++) acc += co.weights[wBase + k] * src[(row + first + k) * ch + c];
        out[o + c] = toByte(acc);
      }
    }
  }
  return out;
}

/** PIL `ImagingResampleVertical_8bpc`: each column of a w × h raster resampled to outHeight. */
function verticalPass(src: Uint8Array, w: number, h: number, ch: number, outHeight: number): Uint8Array {
  const co = coefficients(h, outHeight);
  const rowLength = w * ch;
  const out = new Uint8Array(outHeight * rowLength);
  for (let y = 0; y < outHeight; y++) {
    const first = co.start[y];
    const n = co.count[y];
    const wBase = y * co.taps;
    for (let i = 0; i < rowLength; i++) {
      let acc = HALF;
      for (let k = 0; k < n; k++) acc += co.weights[wBase + k] * src[(first + k) * rowLength + i];
      out[y * rowLength + i] = toByte(acc);
    }
  }
  return out;
}

/** The whole image as a box. */
export function fullBox(image: { width: number; height: number }): Box {
  return { left: 0, top: 0, width: image.width, height: image.height };
}
