/** What a fine-tune spec means for a run: its augmentation, and the fingerprint checkpoints carry. */
import { createHash } from 'node:crypto';
import type { AugmentOptions } from '@deit-serve/datasets';
import type { FineTuneJobSpec } from '@deit-serve/trainer-engine';

/** `AugmentationOptions` of the spec → the datasets library's options. Smoothing is the loss's job. */
export function augmentOptions(spec: FineTuneJobSpec): AugmentOptions {
  const a = spec.augmentation;
  return {
    crop:
      a.crop === 'random-resized'
        ? { kind: 'random-resized' }
        : a.crop === 'padded'
          ? { kind: 'padded', padding: a.padding }
          : { kind: 'none' },
    hflip: a.horizontalFlip ? 0.5 : 0,
    ...(a.randomErasing > 0 && { randomErasing: { probability: a.randomErasing } }),
    ...((a.mixupAlpha > 0 || a.cutmixAlpha > 0) && {
      mixup: { mixupAlpha: a.mixupAlpha, cutmixAlpha: a.cutmixAlpha },
    }),
    // Targets stay unsmoothed: distillationLoss smooths hard and mixed targets alike.
    labelSmoothing: 0,
  };
}

/** Fingerprint of a spec: a checkpoint only resumes the run it was written for. */
export function specHash(spec: FineTuneJobSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}
