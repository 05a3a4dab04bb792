/**
 * Gradient accumulation over micro-batches. The wasm heap is capped at 4 GiB and DeiT-Ti at 32 px does
 * not fit batch 64 in one pass, so a batch is processed in slices; scaling each slice's loss by its
 * share of the *global* batch (rows / globalBatchSize) makes the sum over slices — and over
 * data-parallel workers — the exact full-batch gradient of a batch-mean loss.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gradientsRegistered } from './register-gradients';
import { batchSize, sliceBatch, splitRows, type HostBatch, type TrainTask } from './task';

export interface AccumulateOptions {
  /** Rows per forward/backward pass (bounded by the wasm heap). */
  readonly microBatchSize: number;
  /** Rows of the whole step's batch, across workers. Default: this batch's rows. */
  readonly globalBatchSize?: number;
  /**
   * Destination per parameter (in `task.params` order), e.g. views of a SharedArrayBuffer; gradients
   * are written (not added) there. Default: fresh arrays.
   */
  readonly into?: readonly Float32Array[];
}

export interface AccumulatedGradients {
  /** Per parameter; undefined where the loss does not depend on it (e.g. head_dist for `none`). */
  readonly grads: ReadonlyArray<Float32Array | undefined>;
  /** `total` and the task's parts, each Σ over slices of (rows / globalBatchSize) · slice mean. */
  readonly losses: Readonly<Record<string, number>>;
  readonly rows: number;
}

export function accumulateGradients(
  task: TrainTask,
  batch: HostBatch,
  options: AccumulateOptions,
): AccumulatedGradients {
  const rows = batchSize(batch);
  const globalRows = options.globalBatchSize ?? rows;
  if (!(Number.isInteger(options.microBatchSize) && options.microBatchSize > 0)) {
    throw new Error(`microBatchSize must be a positive integer, got ${options.microBatchSize}`);
  }
  if (options.into !== undefined && options.into.length !== task.params.length) {
    throw new Error(`into has ${options.into.length} arrays for ${task.params.length} parameters`);
  }
  if (!gradientsRegistered())
    throw new Error('tfjs gradients are not registered: await registerGradients() first');
  const variables = task.params.map((p) => p.variable);
  const sums = new Array<tf.Tensor | undefined>(variables.length);
  const losses: Record<string, number> = {};
  const slices = Math.ceil(rows / options.microBatchSize);
  try {
    for (const [start, end] of splitRows(rows, slices)) {
      const weight = (end - start) / globalRows;
      const micro = sliceBatch(batch, start, end);
      let parts: Readonly<Record<string, tf.Scalar>> = {};
      const { value, grads } = tf.variableGrads(() => {
        const loss = task.loss(micro);
        parts = loss.parts ?? {};
        // variableGrads tidies its function; the parts are read after it returns.
        for (const t of Object.values(parts)) tf.keep(t);
        return tf.mul<tf.Scalar>(loss.total, weight);
      }, variables);
      losses['total'] = (losses['total'] ?? 0) + value.dataSync()[0];
      for (const [key, t] of Object.entries(parts))
        losses[key] = (losses[key] ?? 0) + weight * t.dataSync()[0];
      value.dispose();
      tf.dispose(Object.values(parts));
      variables.forEach((v, i) => {
        const g = grads[v.name];
        if (g === undefined) return;
        const previous = sums[i];
        if (previous === undefined) {
          sums[i] = g; // the first slice's gradient becomes the accumulator: no copy
        } else {
          sums[i] = tf.add(previous, g);
          previous.dispose();
          g.dispose();
        }
      });
    }
    const out = sums.map((sum, i) => {
      if (sum === undefined) return undefined;
      const data = sum.dataSync() as Float32Array;
      const target = options.into?.[i];
      if (target === undefined) return data;
      if (target.length !== data.length)
        throw new Error(`into[${i}] holds ${target.length} values, gradient has ${data.length}`);
      target.set(data);
      return target;
    });
    return { grads: out, losses, rows };
  } finally {
    tf.dispose(sums.filter((s): s is tf.Tensor => s !== undefined));
  }
}
