/**
 * The DeiT distillation loss (official `DistillationLoss`, facebookresearch/deit losses.py).
 *
 *   total = (1 − α)·base + α·distillation
 *   base  = cross-entropy of the CLS logits against the (label-smoothed) targets
 *   soft  = KL(log_softmax(dist/τ) ‖ log_softmax(teacher/τ)), summed, × τ², divided by
 *           batch × classes (`numel`, the official code) or by batch (`batchmean`)
 *   hard  = cross-entropy of the DIST logits against argmax(teacher), never smoothed
 *
 * With `none` the DIST logits take no part in the graph, so the distillation head gets no gradient
 * at all (tfjs reports it as absent, like PyTorch's `grad is None`), and `total = base` whatever α is.
 *
 * The teacher is frozen: pass logits computed outside the gradient scope (or from variables that are
 * not trainable), otherwise `tf.variableGrads` would also differentiate through the teacher.
 */
import * as tf from '@tensorflow/tfjs-core';

export type DistillationType = 'none' | 'soft' | 'hard';

/**
 * `numel` is the official code (`F.kl_div(..., reduction='sum') * τ² / output.numel()`), and the
 * default here; `batchmean` is the normalisation the KL divergence is usually defined with (it makes
 * the soft term C times larger at equal α).
 */
export type SoftNormalization = 'numel' | 'batchmean';

export interface DistillationLossInput {
  /** [batch, classes] logits of the CLS head. */
  readonly clsLogits: tf.Tensor2D;
  /** [batch, classes] logits of the distillation head; unused (and not differentiated) for `none`. */
  readonly distLogits: tf.Tensor2D;
  /** [batch, classes] frozen teacher logits on the same (augmented, mixed) batch; not needed for `none`. */
  readonly teacherLogits?: tf.Tensor2D;
  /**
   * Class indices (int32 [batch]) or target distributions (float32 [batch, classes], e.g. mixup/cutmix
   * targets). Label smoothing is applied to either: `(1 − ε)·target + ε/C`. For one-hot targets this is
   * timm's `LabelSmoothingCrossEntropy`; for mixed targets it equals timm's `mixup_target` with the
   * same smoothing (mixing and smoothing are both linear), so pass mixed targets *unsmoothed*.
   */
  readonly labels: tf.Tensor1D | tf.Tensor2D;
}

export interface DistillationLossOptions {
  readonly type: DistillationType;
  /** Weight of the distillation term, in [0, 1]. Official default 0.5. */
  readonly alpha?: number;
  /** Softmax temperature of the `soft` term, > 0. Official default 1; the paper's soft runs used 3. */
  readonly tau?: number;
  readonly softNormalization?: SoftNormalization;
  /** ε of the base cross-entropy, in [0, 1). The DeiT recipe uses 0.1; default 0. */
  readonly labelSmoothing?: number;
}

export const DISTILLATION_LOSS_DEFAULTS = {
  alpha: 0.5,
  tau: 1.0,
  softNormalization: 'numel',
  labelSmoothing: 0,
} as const satisfies Required<Omit<DistillationLossOptions, 'type'>>;

// A type alias, not an interface, so it is assignable to tfjs's TensorContainer (tf.tidy's result).
export type DistillationLossValue = {
  /** (1 − α)·base + α·distillation (for `none`: base). */
  readonly total: tf.Scalar;
  readonly base: tf.Scalar;
  /** 0 for `none`. */
  readonly distillation: tf.Scalar;
};

/**
 * Computes the loss as means over the batch, so gradients of micro-batches weighted by their share of
 * the batch add up to the full-batch gradient exactly (gradient accumulation relies on this).
 */
export function distillationLoss(
  input: DistillationLossInput,
  options: DistillationLossOptions,
): DistillationLossValue {
  const alpha = options.alpha ?? DISTILLATION_LOSS_DEFAULTS.alpha;
  const tau = options.tau ?? DISTILLATION_LOSS_DEFAULTS.tau;
  const normalization = options.softNormalization ?? DISTILLATION_LOSS_DEFAULTS.softNormalization;
  const smoothing = options.labelSmoothing ?? DISTILLATION_LOSS_DEFAULTS.labelSmoothing;
  validate(input, options.type, alpha, tau, smoothing);

  return tf.tidy(() => {
    const [batch, classes] = input.clsLogits.shape;
    const targets = smoothTargets(toTargetDistribution(input.labels, classes), smoothing, classes);
    const base = softTargetCrossEntropy(input.clsLogits, targets);
    if (options.type === 'none') {
      return { total: base, base, distillation: tf.scalar(0) };
    }
    // validate() has checked the teacher is there for soft/hard.
    const teacher = input.teacherLogits as tf.Tensor2D;
    let distillation: tf.Scalar;
    switch (options.type) {
      case 'soft': {
        const studentLog = tf.logSoftmax(tf.div(input.distLogits, tau));
        const teacherLog = tf.logSoftmax(tf.div(teacher, tau));
        // kl_div(input, target, log_target=True) = Σ exp(target)·(target − input).
        const klSum = tf.sum(tf.mul(tf.exp(teacherLog), tf.sub(teacherLog, studentLog)));
        const denominator = normalization === 'numel' ? batch * classes : batch;
        distillation = tf.mul<tf.Scalar>(klSum, (tau * tau) / denominator);
        break;
      }
      case 'hard': {
        const teacherClass = oneHotFloat(tf.argMax(teacher, 1), classes);
        distillation = softTargetCrossEntropy(input.distLogits, teacherClass);
        break;
      }
    }
    const total = tf.add<tf.Scalar>(tf.mul(base, 1 - alpha), tf.mul(distillation, alpha));
    return { total, base, distillation };
  });
}

/** mean over the batch of −Σ_c target·log_softmax(logits). */
function softTargetCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1))) as tf.Scalar;
}

/**
 * One-hot rows as float32. Cast after the fact: tfjs 4.22's wasm OneHot kernel ignores a float32
 * `dtype` argument and returns int32 bits (zeros when read as floats).
 */
function oneHotFloat(indices: tf.Tensor, classes: number): tf.Tensor2D {
  return tf.cast(tf.oneHot(indices, classes) as tf.Tensor2D, 'float32');
}

function toTargetDistribution(labels: tf.Tensor1D | tf.Tensor2D, classes: number): tf.Tensor2D {
  // Narrowing on `rank` does not narrow the union, hence the casts.
  if (labels.rank === 1) return oneHotFloat(tf.cast(labels, 'int32'), classes);
  return tf.cast(labels as tf.Tensor2D, 'float32');
}

function smoothTargets(targets: tf.Tensor2D, smoothing: number, classes: number): tf.Tensor2D {
  if (smoothing === 0) return targets;
  return tf.add(tf.mul(targets, 1 - smoothing), smoothing / classes);
}

function validate(
  input: DistillationLossInput,
  type: DistillationType,
  alpha: number,
  tau: number,
  smoothing: number,
): void {
  const problems: string[] = [];
  const [batch, classes] = input.clsLogits.shape;
  if (input.clsLogits.rank !== 2)
    problems.push(`clsLogits must be [batch, classes], got [${input.clsLogits.shape.join(', ')}]`);
  if (!sameShape(input.distLogits.shape, input.clsLogits.shape)) {
    problems.push(
      `distLogits [${input.distLogits.shape.join(', ')}] must match clsLogits [${batch}, ${classes}]`,
    );
  }
  if (
    input.labels.rank === 1
      ? input.labels.shape[0] !== batch
      : !sameShape(input.labels.shape, input.clsLogits.shape)
  ) {
    problems.push(
      `labels [${input.labels.shape.join(', ')}] must be [${batch}] indices or [${batch}, ${classes}] targets`,
    );
  }
  if (type !== 'none') {
    if (input.teacherLogits === undefined) problems.push(`distillation type '${type}' needs teacherLogits`);
    else if (!sameShape(input.teacherLogits.shape, input.clsLogits.shape)) {
      problems.push(
        `teacherLogits [${input.teacherLogits.shape.join(', ')}] must match clsLogits [${batch}, ${classes}]`,
      );
    }
  }
  if (!(alpha >= 0 && alpha <= 1)) problems.push(`alpha must be in [0, 1], got ${alpha}`);
  if (!(tau > 0)) problems.push(`tau must be > 0, got ${tau}`);
  if (!(smoothing >= 0 && smoothing < 1)) problems.push(`labelSmoothing must be in [0, 1), got ${smoothing}`);
  if (problems.length > 0) throw new Error(`distillationLoss: ${problems.join('; ')}`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
