/**
 * Evaluation: top-1 / top-5 of the CLS, DIST and average heads (`averageHeads`: the mean of logits,
 * as DeiT and timm evaluate), the teacher's top-1 and how often the two student heads agree, on a
 * fixed set in a fixed order with the model's own eval transform.
 */
import * as tf from '@tensorflow/tfjs-core';
import { averageHeads } from '@deit-serve/core';
import { evalBatches, type BatchInputSpec, type ImageDataset } from '@deit-serve/datasets';
import type { DeiT } from '@deit-serve/model';
import type { EvalResult, HeadAccuracy } from '@deit-serve/trainer-engine';

/** Whether `label` is among the `k` largest of `row` (ties count in the label's favour). */
export function inTopK(
  logits: Float32Array,
  offset: number,
  classes: number,
  label: number,
  k: number,
): boolean {
  const target = logits[offset + label];
  let above = 0;
  for (let c = 0; c < classes; c++) if (logits[offset + c] > target) above++;
  return above < k;
}

export function argmax(logits: Float32Array, offset: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (logits[offset + c] > logits[offset + best]) best = c;
  return best;
}

/** Running top-1 / top-k counts of one head. */
export class AccuracyCounter {
  private top1 = 0;
  private topK = 0;
  private count = 0;

  constructor(
    readonly classes: number,
    /** 5, or the class count when there are fewer classes. */
    readonly k = Math.min(5, classes),
  ) {}

  add(logits: Float32Array, labels: ArrayLike<number>): void {
    for (let i = 0; i < labels.length; i++) {
      const offset = i * this.classes;
      if (inTopK(logits, offset, this.classes, labels[i], 1)) this.top1++;
      if (inTopK(logits, offset, this.classes, labels[i], this.k)) this.topK++;
    }
    this.count += labels.length;
  }

  result(): HeadAccuracy {
    return {
      top1: this.count === 0 ? 0 : this.top1 / this.count,
      top5: this.count === 0 ? 0 : this.topK / this.count,
    };
  }
}

export interface EvaluateOptions {
  readonly epoch: number;
  /** `FineTuneData.evalSetName`. */
  readonly evalSetName: string;
  readonly inputSpec: BatchInputSpec;
  readonly batchSize: number;
  /** The teacher's top-1 on the same set (it is frozen: computed once). */
  readonly teacherTop1?: number;
  readonly signal?: AbortSignal;
}

/** Evaluates the student (tfjs, eval mode) on `dataset`. */
export async function evaluateStudent(
  model: DeiT,
  dataset: ImageDataset,
  options: EvaluateOptions,
): Promise<EvalResult> {
  const classes = model.config.numClasses;
  const cls = new AccuracyCounter(classes);
  const dist = new AccuracyCounter(classes);
  const average = new AccuracyCounter(classes);
  let agree = 0;
  let images = 0;
  for (const batch of evalBatches(dataset, { batchSize: options.batchSize, inputSpec: options.inputSpec })) {
    options.signal?.throwIfAborted();
    const { clsLogits, distLogits } = forwardEval(model, batch.pixels, batch.dims);
    cls.add(clsLogits, batch.labels);
    if (distLogits !== undefined) {
      dist.add(distLogits, batch.labels);
      average.add(averageHeads(clsLogits, distLogits), batch.labels);
      for (let i = 0; i < batch.size; i++) {
        if (argmax(clsLogits, i * classes, classes) === argmax(distLogits, i * classes, classes)) agree++;
      }
    }
    images += batch.size;
    // Let abort signals and IPC through between batches.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const distilled = model.config.distilled;
  return {
    epoch: options.epoch,
    dataset: options.evalSetName,
    images,
    cls: cls.result(),
    ...(distilled && {
      dist: dist.result(),
      average: average.result(),
      clsDistAgreement: images === 0 ? 0 : agree / images,
    }),
    ...(options.teacherTop1 !== undefined && { teacherTop1: options.teacherTop1 }),
  };
}

/** Both heads' logits in eval mode (no drop path), as host arrays. */
export function forwardEval(
  model: DeiT,
  pixels: Float32Array,
  dims: readonly [number, number, number, number],
): { clsLogits: Float32Array; distLogits?: Float32Array } {
  const input = tf.tensor4d(pixels, [...dims]);
  const out = model.forward(input, { training: false });
  try {
    // Copies: a backend may hand out its own storage.
    const clsLogits = (out.cls.dataSync() as Float32Array).slice();
    const distLogits = out.dist === null ? undefined : (out.dist.dataSync() as Float32Array).slice();
    return { clsLogits, ...(distLogits !== undefined && { distLogits }) };
  } finally {
    tf.dispose([input, out.cls, ...(out.dist === null ? [] : [out.dist])]);
  }
}

/** A classifier outside tfjs (the teacher, a registry version): logits of a normalised NCHW batch. */
export type LogitsFn = (pixels: Float32Array, dims: readonly number[]) => Promise<Float32Array>;

/** Top-1 of `logits` on `dataset`, batched with `inputSpec` (that model's own preprocessing). */
export async function top1Of(
  logits: LogitsFn,
  dataset: ImageDataset,
  options: { inputSpec: BatchInputSpec; batchSize: number; signal?: AbortSignal },
): Promise<number> {
  const counter = new AccuracyCounter(dataset.numClasses);
  for (const batch of evalBatches(dataset, { batchSize: options.batchSize, inputSpec: options.inputSpec })) {
    options.signal?.throwIfAborted();
    const out = await logits(batch.pixels, batch.dims);
    if (out.length !== batch.size * dataset.numClasses) {
      throw new Error(
        `classifier returned ${out.length / batch.size} logits per image for ${dataset.numClasses} classes`,
      );
    }
    counter.add(out, batch.labels);
  }
  return counter.result().top1;
}
