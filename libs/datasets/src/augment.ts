import { InvalidArgumentError, type Rng } from '@deit-serve/core';

/**
 * Training augmentations with timm's semantics (`transforms_imagenet_train`, `RandomErasing`,
 * `Mixup`), drawing every random number from the caller's `Rng`:
 *
 *   per image (8-bit):  crop box (random-resized | padded | whole image) → bilinear resample to S
 *                       → horizontal flip
 *   per image (float):  normalise → random erasing (per-pixel N(0, 1) in normalised space)
 *   per batch (float):  mixup or cutmix with the reversed batch, soft targets with label smoothing
 *
 * Resampling is a port of PIL's bilinear `resize` (a triangle kernel widened by the scale when
 * shrinking, i.e. antialiased; 22-bit fixed point; bytes between the two passes; Pillow 13's order
 * of the passes), which is what torchvision applies to the PIL images timm trains on; it is
 * bit-identical to Pillow (test/pillow-agreement.spec.ts). A box extending past the image
 * (padded crop) reads zeros there, as torchvision's `RandomCrop(padding, fill=0)` does.
 */

// ---------------------------------------------------------------------------------------------
// Options

export const RRC_SCALE: readonly [number, number] = [0.08, 1];
export const RRC_RATIO: readonly [number, number] = [3 / 4, 4 / 3];

export type CropOptions =
  /** Resize the whole image to S × S (no random crop). */
  | { readonly kind: 'none' }
  /** timm/torchvision RandomResizedCrop: area fraction in `scale`, aspect in `ratio` (log-uniform). */
  | {
      readonly kind: 'random-resized';
      readonly scale?: readonly [number, number];
      readonly ratio?: readonly [number, number];
    }
  /** torchvision RandomCrop(native size, padding): zero-pad by `padding` source pixels, crop back. */
  | { readonly kind: 'padded'; readonly padding: number };

/** timm RandomErasing (mode 'pixel'); defaults are timm's. */
export interface RandomErasingOptions {
  readonly probability: number;
  /** Fraction of the image area erased, drawn uniformly; default 0.02. */
  readonly minArea?: number;
  /** Default 1/3. */
  readonly maxArea?: number;
  /** Aspect ratio h/w, log-uniform; default 0.3. */
  readonly minAspect?: number;
  /** Default 1 / minAspect (3.33…). */
  readonly maxAspect?: number;
  /** Number of rectangles, each with 1/count of the area; default 1. */
  readonly count?: number;
}

/** timm Mixup in 'batch' mode. Alphas default to 0 (off); at least one must be positive. */
export interface MixupOptions {
  readonly mixupAlpha?: number;
  readonly cutmixAlpha?: number;
  /** Probability that a batch is mixed at all; default 1. */
  readonly prob?: number;
  /** With both alphas on, probability of cutmix rather than mixup; default 0.5. */
  readonly switchProb?: number;
  /** Recompute λ from the clipped cutmix box (timm `correct_lam`); default true. */
  readonly correctLam?: boolean;
}

export interface AugmentOptions {
  /** Default `{ kind: 'none' }`. */
  readonly crop?: CropOptions;
  /** Probability of a horizontal flip; default 0. */
  readonly hflip?: number;
  /** Default off. */
  readonly randomErasing?: RandomErasingOptions;
  /** Default off. */
  readonly mixup?: MixupOptions;
  /** Label smoothing ε of the soft targets; default 0. */
  readonly labelSmoothing?: number;
}

/** Every option with its default filled in. */
export interface ResolvedAugment {
  readonly crop:
    | { readonly kind: 'none' }
    | {
        readonly kind: 'random-resized';
        readonly scale: readonly [number, number];
        readonly ratio: readonly [number, number];
      }
    | { readonly kind: 'padded'; readonly padding: number };
  readonly hflip: number;
  readonly randomErasing?: Required<RandomErasingOptions>;
  readonly mixup?: Required<MixupOptions>;
  readonly labelSmoothing: number;
}

const isProbability = (p: unknown): p is number => typeof p === 'number' && p >= 0 && p <= 1;
const isPositive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isNonNegative = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function checkRange(
  problems: string[],
  name: string,
  range: readonly [number, number] | undefined,
  fallback: readonly [number, number],
): readonly [number, number] {
  const r = range ?? fallback;
  if (!Array.isArray(r) || r.length !== 2 || !isPositive(r[0]) || !isPositive(r[1]) || r[0] > r[1]) {
    problems.push(`${name} must be [low, high] with 0 < low ≤ high, got ${JSON.stringify(range)}`);
  }
  return [r[0], r[1]];
}

/** Fills in defaults; every bad field is listed in one InvalidArgumentError. */
export function resolveAugment(options: AugmentOptions = {}): ResolvedAugment {
  const problems: string[] = [];
  let crop: ResolvedAugment['crop'] = { kind: 'none' };
  const c = options.crop;
  if (c !== undefined) {
    switch (c.kind) {
      case 'none':
        break;
      case 'random-resized': {
        const scale = checkRange(problems, 'crop.scale', c.scale, RRC_SCALE);
        if (scale[1] > 1) problems.push(`crop.scale must not exceed 1, got ${scale[1]}`);
        crop = {
          kind: 'random-resized',
          scale,
          ratio: checkRange(problems, 'crop.ratio', c.ratio, RRC_RATIO),
        };
        break;
      }
      case 'padded':
        if (!Number.isInteger(c.padding) || c.padding < 0) {
          problems.push(`crop.padding must be a non-negative integer, got ${c.padding}`);
        }
        crop = { kind: 'padded', padding: c.padding };
        break;
      default:
        problems.push(
          `crop.kind must be none, random-resized or padded, got ${String((c as { kind: unknown }).kind)}`,
        );
    }
  }
  const hflip = options.hflip ?? 0;
  if (!isProbability(hflip)) problems.push(`hflip must be a probability in [0, 1], got ${String(hflip)}`);

  let randomErasing: Required<RandomErasingOptions> | undefined;
  const e = options.randomErasing;
  if (e !== undefined) {
    const minAspect = e.minAspect ?? 0.3;
    randomErasing = {
      probability: e.probability,
      minArea: e.minArea ?? 0.02,
      maxArea: e.maxArea ?? 1 / 3,
      minAspect,
      maxAspect: e.maxAspect ?? 1 / minAspect,
      count: e.count ?? 1,
    };
    const r = randomErasing;
    if (!isProbability(r.probability)) {
      problems.push(`randomErasing.probability must be in [0, 1], got ${String(r.probability)}`);
    }
    if (!isPositive(r.minArea) || !isPositive(r.maxArea) || r.minArea > r.maxArea || r.maxArea > 1) {
      problems.push(
        `randomErasing area must satisfy 0 < minArea ≤ maxArea ≤ 1, got ${r.minArea}, ${r.maxArea}`,
      );
    }
    if (!isPositive(r.minAspect) || !isPositive(r.maxAspect) || r.minAspect > r.maxAspect) {
      problems.push(
        `randomErasing aspect must satisfy 0 < minAspect ≤ maxAspect, got ${r.minAspect}, ${r.maxAspect}`,
      );
    }
    if (!Number.isInteger(r.count) || r.count < 1) {
      problems.push(`randomErasing.count must be a positive integer, got ${r.count}`);
    }
  }

  let mixup: Required<MixupOptions> | undefined;
  const m = options.mixup;
  if (m !== undefined) {
    mixup = {
      mixupAlpha: m.mixupAlpha ?? 0,
      cutmixAlpha: m.cutmixAlpha ?? 0,
      prob: m.prob ?? 1,
      switchProb: m.switchProb ?? 0.5,
      correctLam: m.correctLam ?? true,
    };
    if (!isNonNegative(mixup.mixupAlpha) || !isNonNegative(mixup.cutmixAlpha)) {
      problems.push(`mixup alphas must be ≥ 0, got ${mixup.mixupAlpha}, ${mixup.cutmixAlpha}`);
    } else if (mixup.mixupAlpha === 0 && mixup.cutmixAlpha === 0) {
      problems.push('mixup needs mixupAlpha > 0 or cutmixAlpha > 0 (omit mixup to disable it)');
    }
    if (!isProbability(mixup.prob)) problems.push(`mixup.prob must be in [0, 1], got ${String(mixup.prob)}`);
    if (!isProbability(mixup.switchProb))
      problems.push(`mixup.switchProb must be in [0, 1], got ${String(mixup.switchProb)}`);
  }

  const labelSmoothing = options.labelSmoothing ?? 0;
  if (typeof labelSmoothing !== 'number' || !(labelSmoothing >= 0 && labelSmoothing < 1)) {
    problems.push(`labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  }
  if (problems.length > 0) throw new InvalidArgumentError(`invalid augmentation: ${problems.join('; ')}`);
  return { crop, hflip, randomErasing, mixup, labelSmoothing };
}

// ---------------------------------------------------------------------------------------------
// Geometry

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

/**
 * One image's 8-bit augmentations in timm's draw order: crop box, then flip. Returns size × size
 * HWC bytes with the image's channel count.
 */
export function augmentImage(
  image: ByteImage,
  size: number,
  options: ResolvedAugment,
  rng: Rng,
  out?: Uint8Array,
): Uint8Array {
  let box: Box;
  const crop = options.crop;
  switch (crop.kind) {
    case 'random-resized':
      box = randomResizedCropBox(rng, image.width, image.height, crop.scale, crop.ratio);
      break;
    case 'padded':
      box = paddedCropBox(rng, image.width, image.height, crop.padding);
      break;
    case 'none':
      box = fullBox(image);
      break;
  }
  const flip = options.hflip > 0 && rng.float() < options.hflip;
  return resizedCrop(image, box, size, flip, out);
}

// ---------------------------------------------------------------------------------------------
// Float augmentations

/** A rectangle of one image, in output pixels. */
export interface Rect {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

/**
 * timm `RandomErasing._erase` (mode 'pixel') on one CHW image at `offset` in `data`: with
 * `probability`, up to `count` rectangles of area fraction U(minArea, maxArea)/count and log-uniform
 * aspect are filled with N(0, 1) noise per value (the data are normalised, so that is "noise in the
 * data's own scale"). Returns the rectangles erased.
 */
export function randomErasing(
  rng: Rng,
  data: Float32Array,
  offset: number,
  channels: number,
  height: number,
  width: number,
  options: Required<RandomErasingOptions>,
): Rect[] {
  if (rng.float() > options.probability) return [];
  const area = height * width;
  const count = options.count;
  const logLow = Math.log(options.minAspect);
  const logHigh = Math.log(options.maxAspect);
  const plane = height * width;
  const erased: Rect[] = [];
  for (let n = 0; n < count; n++) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const targetArea = (rng.uniform(options.minArea, options.maxArea) * area) / count;
      const aspect = Math.exp(rng.uniform(logLow, logHigh));
      const h = roundHalfEven(Math.sqrt(targetArea * aspect));
      const w = roundHalfEven(Math.sqrt(targetArea / aspect));
      if (w < width && h < height) {
        const top = rng.int(0, height - h + 1);
        const left = rng.int(0, width - w + 1);
        // torch fills (chan, h, w) in C order: channel, then row, then column.
        for (let c = 0; c < channels; c++) {
          for (let y = top; y < top + h; y++) {
            const row = offset + c * plane + y * width;
            for (let x = left; x < left + w; x++) data[row + x] = rng.normal();
          }
        }
        erased.push({ top, left, height: h, width: w });
        break;
      }
    }
  }
  return erased;
}

export type MixKind = 'none' | 'mixup' | 'cutmix';

export interface MixResult {
  readonly kind: MixKind;
  /** Weight of each image's own label in its target (after cutmix's area correction). */
  readonly lambda: number;
  /** The pasted region, for cutmix. */
  readonly box?: Rect;
}

/**
 * timm `rand_bbox` + `cutmix_bbox_and_lam`: a box of side √(1 − λ) of the image, centred uniformly,
 * clipped to the image; with `correctLam`, λ becomes 1 − (clipped area / image area).
 */
export function cutmixBox(
  rng: Rng,
  height: number,
  width: number,
  lambda: number,
  correctLam = true,
): { box: Rect; lambda: number } {
  const ratio = Math.sqrt(1 - lambda);
  const cutH = Math.trunc(height * ratio);
  const cutW = Math.trunc(width * ratio);
  const cy = rng.int(0, height);
  const cx = rng.int(0, width);
  const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);
  const yl = clip(cy - Math.floor(cutH / 2), height);
  const yh = clip(cy + Math.floor(cutH / 2), height);
  const xl = clip(cx - Math.floor(cutW / 2), width);
  const xh = clip(cx + Math.floor(cutW / 2), width);
  const box = { top: yl, left: xl, height: yh - yl, width: xh - xl };
  return { box, lambda: correctLam ? 1 - (box.height * box.width) / (height * width) : lambda };
}

/**
 * timm `Mixup` in 'batch' mode, in place on an NCHW batch: one λ for the batch; image i is mixed
 * with image B−1−i (the batch reversed, `x.flip(0)`). Mixup: x ← λ·x + (1 − λ)·flip(x). Cutmix: the
 * box of flip(x) is pasted into x. An odd batch's middle image is mixed with itself (a no-op).
 */
export function mixBatch(
  rng: Rng,
  pixels: Float32Array,
  dims: readonly [number, number, number, number],
  options: Required<MixupOptions>,
): MixResult {
  const [batch, channels, height, width] = dims;
  // timm `_params_per_batch`, same draw order.
  let lambda = 1;
  let useCutmix = false;
  if (rng.float() < options.prob) {
    if (options.mixupAlpha > 0 && options.cutmixAlpha > 0) {
      useCutmix = rng.float() < options.switchProb;
      const alpha = useCutmix ? options.cutmixAlpha : options.mixupAlpha;
      lambda = rng.beta(alpha, alpha);
    } else if (options.mixupAlpha > 0) {
      lambda = rng.beta(options.mixupAlpha, options.mixupAlpha);
    } else {
      useCutmix = true;
      lambda = rng.beta(options.cutmixAlpha, options.cutmixAlpha);
    }
  }
  if (lambda === 1) return { kind: 'none', lambda: 1 };

  const imageLength = channels * height * width;
  const plane = height * width;
  if (useCutmix) {
    const { box, lambda: corrected } = cutmixBox(rng, height, width, lambda, options.correctLam);
    for (let i = 0; i < Math.floor(batch / 2); i++) {
      const a = i * imageLength;
      const b = (batch - 1 - i) * imageLength;
      for (let c = 0; c < channels; c++) {
        for (let y = box.top; y < box.top + box.height; y++) {
          const row = c * plane + y * width;
          for (let x = box.left; x < box.left + box.width; x++) {
            const t = pixels[a + row + x];
            pixels[a + row + x] = pixels[b + row + x];
            pixels[b + row + x] = t;
          }
        }
      }
    }
    return { kind: 'cutmix', lambda: corrected, box };
  }
  // torch computes flip(x)·(1 − λ) and x·λ in float32, then adds; each product is rounded the same way here.
  const keep = Math.fround(lambda);
  const other = Math.fround(1 - lambda);
  for (let i = 0; i < Math.floor(batch / 2); i++) {
    const a = i * imageLength;
    const b = (batch - 1 - i) * imageLength;
    for (let k = 0; k < imageLength; k++) {
      const va = pixels[a + k];
      const vb = pixels[b + k];
      pixels[a + k] = Math.fround(va * keep) + Math.fround(vb * other);
      pixels[b + k] = Math.fround(vb * keep) + Math.fround(va * other);
    }
  }
  return { kind: 'mixup', lambda };
}

/**
 * timm `mixup_target`: one-hot with `smoothing` spread as off = ε / C, on = 1 − ε + off, mixed with
 * the reversed batch's targets: λ·y + (1 − λ)·flip(y). Rows sum to 1. Returns [B, C] float32.
 */
export function mixTargets(
  labels: ArrayLike<number>,
  numClasses: number,
  lambda = 1,
  smoothing = 0,
): Float32Array {
  const batch = labels.length;
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const targets = new Float32Array(batch * numClasses);
  for (let i = 0; i < batch; i++) {
    const own = labels[i];
    const partner = labels[batch - 1 - i];
    for (let c = 0; c < numClasses; c++) {
      const y1 = c === own ? on : off;
      const y2 = c === partner ? on : off;
      targets[i * numClasses + c] = y1 * lambda + y2 * (1 - lambda);
    }
  }
  return targets;
}
