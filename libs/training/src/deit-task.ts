/**
 * The DeiT distillation training task: a distilled DeiT student, trained in `training` mode on
 * `pixel_values` with the DeiT distillation loss against precomputed `teacher_logits` (the teacher
 * is frozen and sees the same batch, so its logits are data here; computing them is the caller's
 * job). Loadable by path in data-parallel workers (`DEIT_TASK_MODULE`).
 *
 * Batch entries: `pixel_values` float32 [B, 3, H, W]; `labels` int32 [B] or float32 [B, classes]
 * (mixup targets); `teacher_logits` float32 [B, classes] (not needed for `none`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed, Rng } from '@deit-serve/core';
import { createDeit, type DeiT, type DeitConfig, type DeitPresetName } from '@deit-serve/model';
import { distillationLoss, type DistillationLossOptions } from './losses';
import { batchEntry, labelsTensor, type HostBatch, type TaskContext, type TrainTask } from './task';

export interface DeitTaskOptions {
  /** A preset name or a full (JSON-serialisable) config. */
  readonly preset: DeitPresetName | DeitConfig;
  readonly numClasses?: number;
  readonly imgSize?: number;
  /** Seeds initialisation (identical in every worker) and, with the worker index, stochastic depth. */
  readonly seed?: number;
  /** Stochastic depth of the last block (DeiT recipe: 0.1). Default 0. */
  readonly dropPathRate?: number;
  readonly loss: DistillationLossOptions;
}

/** This module's path, for `DataParallelTrainer`'s `taskModule`. */
export const DEIT_TASK_MODULE = __filename;

export interface DeitTrainTask extends TrainTask {
  readonly model: DeiT;
}

export function createTrainTask(
  options: DeitTaskOptions,
  context: TaskContext = { workerIndex: 0, workers: 1 },
): DeitTrainTask {
  const seed = options.seed ?? 0;
  const model = createDeit({
    preset: options.preset,
    seed,
    ...(options.numClasses === undefined ? {} : { numClasses: options.numClasses }),
    ...(options.imgSize === undefined ? {} : { imgSize: options.imgSize }),
  });
  if (!model.config.distilled && options.loss.type !== 'none')
    throw new Error(`this DeiT has no distillation head; use loss type 'none'`);
  // Workers draw different drop-path masks; the model's own stream would repeat across workers.
  const dropPathRandom = Rng.fromUint32(deriveSeed(seed, `drop_path/worker${context.workerIndex}`));
  const params = [...model.namedVariables()].map(([name, variable]) => ({ name, variable }));
  return {
    model,
    params,
    loss(batch: HostBatch) {
      const pixels = batchEntry(batch, 'pixel_values');
      const labels = batchEntry(batch, 'labels');
      const teacher = batch['teacher_logits'];
      const out = model.forward(
        tf.tensor4d(pixels.data as Float32Array, pixels.shape as [number, number, number, number]),
        {
          training: true,
          dropPathRate: options.dropPathRate ?? 0,
          dropPathSeed: dropPathRandom.uint32(),
        },
      );
      const value = distillationLoss(
        {
          clsLogits: out.cls,
          distLogits: out.dist ?? out.cls,
          labels: labelsTensor(labels),
          ...(teacher === undefined
            ? {}
            : { teacherLogits: tf.tensor2d(teacher.data, teacher.shape as [number, number], 'float32') }),
        },
        options.loss,
      );
      return { total: value.total, parts: { base: value.base, distillation: value.distillation } };
    },
  };
}
