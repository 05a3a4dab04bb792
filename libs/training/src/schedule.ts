/**
 * Learning-rate schedule of the DeiT recipe: timm `CosineLRScheduler` with one cycle
 * (cycle_limit 1, t_mul 1, decay_rate 1, k_decay 1, no noise):
 *
 *   t < warmupT : lr = warmupLr + t·(baseLr − warmupLr)/warmupT
 *   t ≥ warmupT : t' = warmupPrefix ? t − warmupT : t
 *                 lr = minLr + ½(baseLr − minLr)(1 + cos(π·t'/tInitial))   while t' < tInitial
 *                 lr = minLr                                              after (cool-down)
 *
 * `t` is in whatever unit the caller counts, as with timm's `t_in_epochs`:
 * - per epoch (DeiT main.py: `lr_scheduler.step(epoch)` after each epoch, so the lr is constant within
 *   an epoch): t = epoch index, warmupT/tInitial in epochs;
 * - per step (timm `step_update(num_updates)` with t_in_epochs=False): t = optimizer steps taken,
 *   warmupT/tInitial in steps; `perStep()` converts an epoch schedule.
 * Like timm's default (warmup_prefix False, which DeiT uses), the cosine is measured from t = 0, so
 * at the end of warm-up the lr is already slightly below baseLr.
 */

export interface CosineScheduleOptions {
  readonly baseLr: number;
  readonly minLr: number;
  readonly warmupLr: number;
  readonly warmupT: number;
  readonly tInitial: number;
  readonly warmupPrefix?: boolean;
}

export function cosineLr(t: number, o: CosineScheduleOptions): number {
  if (t < o.warmupT) return o.warmupLr + (t * (o.baseLr - o.warmupLr)) / o.warmupT;
  const tc = o.warmupPrefix === true ? t - o.warmupT : t;
  if (tc >= o.tInitial) return o.minLr;
  return o.minLr + 0.5 * (o.baseLr - o.minLr) * (1 + Math.cos((Math.PI * tc) / o.tInitial));
}

/** The same schedule counted in optimizer steps (timm `t_in_epochs=False`). */
export function perStep(epochSchedule: CosineScheduleOptions, stepsPerEpoch: number): CosineScheduleOptions {
  if (!(Number.isInteger(stepsPerEpoch) && stepsPerEpoch > 0))
    throw new Error(`stepsPerEpoch must be a positive integer, got ${stepsPerEpoch}`);
  return {
    ...epochSchedule,
    warmupT: epochSchedule.warmupT * stepsPerEpoch,
    tInitial: epochSchedule.tInitial * stepsPerEpoch,
  };
}

/** DeiT main.py: lr 5e-4 scaled linearly with the global batch (`lr × batch / 512`). */
export function deitScaledLr(globalBatch: number, lr = 5e-4): number {
  return (lr * globalBatch) / 512;
}

/** DeiT defaults in epochs: 300 epochs, 5 warm-up epochs from 1e-6, min lr 1e-5. */
export function deitCosineSchedule(
  globalBatch: number,
  overrides: Partial<CosineScheduleOptions> = {},
): CosineScheduleOptions {
  return {
    baseLr: deitScaledLr(globalBatch),
    minLr: 1e-5,
    warmupLr: 1e-6,
    warmupT: 5,
    tInitial: 300,
    warmupPrefix: false,
    ...overrides,
  };
}
