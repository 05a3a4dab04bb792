import type { Rng } from '@deit-serve/core';
import type { MixupOptions, RandomErasingOptions } from './augment-options';
import { roundHalfEven } from './augment-crop';

/**
 * The float augmentations, after normalisation: timm's `RandomErasing` per image and `Mixup` /
 * CutMix per batch, with their soft targets.
 */

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
