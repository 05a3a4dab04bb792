/**
 * The datasets' random streams. Every draw (splits, shuffles, augmentations) comes from the shared
 * `Rng` of `@deit-serve/core`, derived per use: `Rng.derive(seed, epoch, STREAMS.augment, batch)`.
 * A batch's augmentations therefore depend only on (seed, epoch, batch index), not on how many numbers
 * earlier batches consumed, which is what lets a resumed job start at any batch.
 */

/** Numbers that identify independent streams; part of the reproducibility contract, so never renumber. */
export const STREAMS = {
  shuffle: 1,
  augment: 2,
  mix: 3,
  split: 4,
} as const;
