/**
 * One training step in this process: gradients accumulated over micro-batches, then host AdamW on a
 * float32 master copy of the weights, written back into the tfjs variables. Uses one core (the wasm
 * backend is single-threaded in Node); `DataParallelTrainer` runs the same step across workers.
 */
import * as tf from '@tensorflow/tfjs-core';
import { AdamW, type AdamWOptions } from './adamw';
import { accumulateGradients } from './gradients';
import type { HostBatch, TrainTask } from './task';

export interface StepResult {
  /** Batch means: `total` and the task's parts. */
  readonly losses: Readonly<Record<string, number>>;
  readonly rows: number;
  /** Leader-side time to apply the optimizer (and, in-process, upload the weights), ms. */
  readonly optimizerMs: number;
}

export interface TrainerOptions {
  readonly optimizer: AdamWOptions;
  /**
   * Rows per forward/backward pass; the 4 GiB wasm heap bounds it (measured for DeiT-Ti at 32 px:
   * 16 rows grow the heap to 1.4 GiB, 32 rows to 2.5 GiB).
   */
  readonly microBatchSize: number;
}

export class LocalTrainer {
  readonly optimizer: AdamW;
  private readonly weights: Float32Array[];

  constructor(
    private readonly task: TrainTask,
    private readonly options: TrainerOptions,
  ) {
    this.optimizer = new AdamW(
      task.params.map((p) => ({ name: p.name, shape: p.variable.shape })),
      options.optimizer,
    );
    // The master copy lives on the host because the optimizer does; reading it once keeps a step to
    // one upload per variable. Copied, because the cpu backend's dataSync returns its own storage.
    this.weights = task.params.map((p) => (p.variable.dataSync() as Float32Array).slice());
  }

  /** One optimizer step on `batch`; `lr` overrides the optimizer's current learning rate. */
  step(batch: HostBatch, lr?: number): StepResult {
    const { grads, losses, rows } = accumulateGradients(this.task, batch, {
      microBatchSize: this.options.microBatchSize,
    });
    const t0 = performance.now();
    const names = this.task.params.map((p) => p.name);
    this.optimizer.step(
      new Map(names.map((n, i) => [n, this.weights[i]])),
      new Map(names.map((n, i) => [n, grads[i]])),
      lr,
    );
    this.task.params.forEach((p, i) => {
      if (grads[i] === undefined) return; // untouched by the optimizer
      assignHost(p.variable, this.weights[i]);
    });
    return { losses, rows, optimizerMs: performance.now() - t0 };
  }
}

/**
 * Replaces a variable's value with host data of the same size. The wasm backend copies the data into
 * its heap at once; other backends (cpu) may keep a reference to the array, which the optimizer keeps
 * mutating, so they get a copy.
 */
export function assignHost(variable: tf.Variable, data: Float32Array): void {
  const value = tf.tensor(tf.getBackend() === 'wasm' ? data : data.slice(), variable.shape, 'float32');
  variable.assign(value);
  value.dispose();
}
