/**
 * What a trainer needs from a model: its trainable variables under their timm names, and a loss on a
 * host batch. The same task object runs in-process (`LocalTrainer`) and inside each data-parallel
 * worker, which builds it from a module path (`TrainTaskModule`), because tfjs variables cannot cross
 * threads.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface NamedVariable {
  /** timm state-dict name; the optimizer's no-decay predicate reads it. */
  readonly name: string;
  /**
   * The tfjs variable. Its layout may differ from timm's (e.g. pre-transposed linear weights): the
   * optimizer is element-wise, so only size and rank must agree with what the predicate expects.
   */
  readonly variable: tf.Variable;
}

/** Host array with its shape; dimension 0 is the batch. */
export interface BatchArray {
  readonly data: Float32Array | Int32Array;
  readonly shape: readonly number[];
}

/** A batch on the host, e.g. `{ pixel_values, labels, teacher_logits }`; every entry shares dimension 0. */
export type HostBatch = Readonly<Record<string, BatchArray>>;

export interface TaskLoss {
  /** Mean over the micro-batch: the gradients of micro-batches weighted by their share then add up exactly. */
  readonly total: tf.Scalar;
  /** Extra scalars to report (e.g. `base`, `distillation`), also batch means. */
  readonly parts?: Readonly<Record<string, tf.Scalar>>;
}

export interface TrainTask {
  readonly params: readonly NamedVariable[];
  /** Builds the loss in training mode; called inside a gradient scope. */
  loss(batch: HostBatch): TaskLoss;
}

/**
 * A module a worker can load by path: `createTrainTask(options)` with JSON-serialisable options. It
 * runs after the worker's backend is initialised.
 */
export interface TrainTaskModule<O = unknown> {
  createTrainTask(options: O, context?: TaskContext): TrainTask | Promise<TrainTask>;
}

/** Where a task runs, so per-worker randomness (e.g. stochastic depth) can differ between workers. */
export interface TaskContext {
  readonly workerIndex: number;
  readonly workers: number;
}

export function batchSize(batch: HostBatch): number {
  const sizes = new Set(Object.values(batch).map((a) => a.shape[0]));
  const [size] = sizes;
  if (sizes.size !== 1 || size === undefined) {
    throw new Error(
      `batch entries must share dimension 0, got ${JSON.stringify(Object.fromEntries(Object.entries(batch).map(([k, a]) => [k, a.shape])))}`,
    );
  }
  return size;
}

/** Rows [start, end) of every entry; the data are views, not copies. */
export function sliceBatch(batch: HostBatch, start: number, end: number): HostBatch {
  const out: Record<string, BatchArray> = {};
  for (const [key, array] of Object.entries(batch)) {
    const row = array.shape.slice(1).reduce((a, b) => a * b, 1);
    out[key] = {
      data: array.data.subarray(start * row, end * row),
      shape: [end - start, ...array.shape.slice(1)],
    };
  }
  return out;
}

/** Splits `total` rows into `parts` contiguous ranges whose sizes differ by at most one. */
export function splitRows(total: number, parts: number): Array<readonly [number, number]> {
  const ranges: Array<readonly [number, number]> = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const size = Math.floor(total / parts) + (i < total % parts ? 1 : 0);
    ranges.push([start, start + size]);
    start += size;
  }
  return ranges;
}

/** `batch[key]`, or an error naming what the batch has. */
export function batchEntry(batch: HostBatch, key: string): BatchArray {
  const value = batch[key];
  if (value === undefined) throw new Error(`batch has no ${key} (has ${Object.keys(batch).join(', ')})`);
  return value;
}

/** Class indices (int32 [B]) or target distributions (float32 [B, classes]) as a tensor. */
export function labelsTensor(labels: BatchArray): tf.Tensor1D | tf.Tensor2D {
  return labels.shape.length === 1
    ? tf.tensor1d(labels.data, 'int32')
    : tf.tensor2d(labels.data, labels.shape as [number, number], 'float32');
}
