import { InvalidArgumentError } from '@deit-serve/core';

/** Resampling filters of the timm eval transform, named as timm's `interpolation` field names them. */
export type Interpolation = 'bicubic' | 'bilinear' | 'nearest';

export const INTERPOLATIONS: readonly Interpolation[] = ['bicubic', 'bilinear', 'nearest'];

/**
 * How a model wants its pixels: the fields of a timm pretrained cfg that the eval transform reads
 * (`input_size`, `mean`, `std`, `interpolation`, `crop_pct`). It belongs to a model version and
 * travels with it; nothing in the server supplies defaults for it.
 */
export interface InputSpec {
  /** Side of the square network input (timm `input_size[1]` = `input_size[2]`). */
  imageSize: number;
  /** 3 for RGB models; 1 for single-channel models, which get PIL's `convert('L')` luma. */
  channels: 1 | 3;
  /** Per-channel mean and std on the [0, 1] scale, one entry per channel. */
  mean: number[];
  std: number[];
  interpolation: Interpolation;
  /** Fraction of the resized shorter side kept by the centre crop; the shorter side is resized to floor(imageSize / cropPct). */
  cropPct: number;
}

/** A registry manifest's `input` (the same fields under timm's snake_case names, as the file stores them). */
export interface ManifestInput {
  readonly image_size: number;
  readonly channels: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly interpolation: Interpolation;
  readonly crop_pct: number;
}

/**
 * The spec a model version's manifest describes: what the server preprocesses with and what a
 * fine-tune or a zoo evaluation batches with. Any channel count but 1 is read as RGB (3).
 */
export function inputSpecFromManifest(input: ManifestInput): InputSpec {
  return {
    imageSize: input.image_size,
    channels: input.channels === 1 ? 1 : 3,
    mean: [...input.mean],
    std: [...input.std],
    interpolation: input.interpolation,
    cropPct: input.crop_pct,
  };
}

/** Upper bound on imageSize: far above any ViT input, low enough that a typo cannot allocate gigabytes. */
export const MAX_IMAGE_SIZE = 4096;

/**
 * Checks a spec read from a manifest or a request. Every problem is listed in one error so that a
 * bad manifest is fixed in one pass.
 */
export function validateInputSpec(spec: unknown): InputSpec {
  const problems: string[] = [];
  if (typeof spec !== 'object' || spec === null) {
    throw new InvalidArgumentError('input spec must be an object');
  }
  const s = spec as Record<string, unknown>;

  const { imageSize, channels, mean, std, interpolation, cropPct } = s;
  if (!Number.isInteger(imageSize) || (imageSize as number) < 1 || (imageSize as number) > MAX_IMAGE_SIZE) {
    problems.push(`imageSize must be an integer in [1, ${MAX_IMAGE_SIZE}], got ${String(imageSize)}`);
  }
  if (channels !== 1 && channels !== 3) {
    problems.push(`channels must be 1 or 3, got ${String(channels)}`);
  }
  const checkStats = (name: string, value: unknown, positive: boolean): void => {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      problems.push(`${name} must be an array of finite numbers`);
      return;
    }
    if ((channels === 1 || channels === 3) && value.length !== channels) {
      problems.push(`${name} must have one entry per channel (${channels}), got ${value.length}`);
    }
    if (positive && (value as number[]).some((v) => v <= 0)) {
      problems.push(`${name} entries must be > 0 (they divide), got [${(value as number[]).join(', ')}]`);
    }
  };
  checkStats('mean', mean, false);
  checkStats('std', std, true);
  if (typeof interpolation !== 'string' || !(INTERPOLATIONS as readonly string[]).includes(interpolation)) {
    problems.push(`interpolation must be one of ${INTERPOLATIONS.join(', ')}, got ${String(interpolation)}`);
  }
  // crop_pct > 1 would make the centre crop larger than the resized image, which torchvision pads
  // with black; no timm eval cfg asks for that, so it is refused rather than half-supported.
  if (typeof cropPct !== 'number' || !Number.isFinite(cropPct) || cropPct <= 0 || cropPct > 1) {
    problems.push(`cropPct must be a number in (0, 1], got ${String(cropPct)}`);
  }
  if (problems.length > 0) {
    throw new InvalidArgumentError(`invalid input spec: ${problems.join('; ')}`);
  }
  return {
    imageSize: imageSize as number,
    channels: channels as 1 | 3,
    mean: [...(mean as number[])],
    std: [...(std as number[])],
    interpolation: interpolation as Interpolation,
    cropPct: cropPct as number,
  };
}
