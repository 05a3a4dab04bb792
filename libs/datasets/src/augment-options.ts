/** Options of the training augmentations (./augment.ts): timm's names and defaults, checked once. */
import { InvalidArgumentError } from '@deit-serve/core';

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
