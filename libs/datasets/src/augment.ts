import type { Rng } from '@deit-serve/core';
import type { ResolvedAugment } from './augment-options';
import {
  fullBox,
  paddedCropBox,
  randomResizedCropBox,
  resizedCrop,
  type Box,
  type ByteImage,
} from './augment-crop';

/**
 * Training augmentations with timm's semantics (`transforms_imagenet_train`, `RandomErasing`,
 * `Mixup`), drawing every random number from the caller's `Rng`:
 *
 *   per image (8-bit):  crop box (random-resized | padded | whole image) → bilinear resample to S
 *                       → horizontal flip
 *   per image (float):  normalise → random erasing (per-pixel N(0, 1) in normalised space)
 *   per batch (float):  mixup or cutmix with the reversed batch, soft targets with label smoothing
 *
 * One file per concern, all re-exported here: options and defaults (augment-options.ts), crop boxes
 * and PIL's bilinear resampling (augment-crop.ts), erasing and mixup / cutmix (augment-mix.ts).
 */

export * from './augment-options';
export * from './augment-crop';
export * from './augment-mix';

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
