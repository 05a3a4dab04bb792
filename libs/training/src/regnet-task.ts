/**
 * The classifier training task of a RegNetY (the teacher family): cross-entropy with label smoothing
 * on `pixel_values`, BatchNorm in training mode. Loadable by path in data-parallel workers
 * (`REGNET_TASK_MODULE`).
 *
 * Batch entries: `pixel_values` float32 [B, 3, H, W]; `labels` int32 [B] or float32 [B, classes]
 * (mixup targets, unsmoothed).
 *
 * BatchNorm running statistics are buffers, not parameters: each data-parallel worker updates its own
 * copy, and none of them is the leader's. Recompute them for the final weights with
 * `RegNet.recomputeBatchNormStatistics` before evaluating or exporting.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import {
  createRegNet,
  readSafetensors,
  type RegNet,
  type RegNetConfig,
  type RegNetPresetName,
} from '@deit-serve/model';
import { distillationLoss } from './losses';
import { batchEntry, labelsTensor, type HostBatch, type TaskContext, type TrainTask } from './task';

export interface RegNetTaskOptions {
  readonly preset: RegNetPresetName;
  /** Overrides of the preset (e.g. `numClasses`). */
  readonly config?: Partial<RegNetConfig>;
  /** Seeds initialisation (identical in every worker). */
  readonly seed?: number;
  /** Safetensors file (timm names) to start from instead of the seeded initialisation. */
  readonly weightsPath?: string;
  /** ε of the cross-entropy; default 0. */
  readonly labelSmoothing?: number;
}

/** This module's path, for `DataParallelTrainer`'s `taskModule`. */
export const REGNET_TASK_MODULE = __filename;

export interface RegNetTrainTask extends TrainTask {
  readonly model: RegNet;
}

export function createTrainTask(options: RegNetTaskOptions, _context?: TaskContext): RegNetTrainTask {
  const model = createRegNet({
    preset: options.preset,
    ...(options.config !== undefined && { config: options.config }),
    seed: options.seed ?? 0,
  });
  if (options.weightsPath !== undefined) {
    model.setWeights(readSafetensors(readFileSync(options.weightsPath), { modelPrefix: 'none' }).weights);
  }
  const params = [...model.namedVariables()].map(([name, variable]) => ({ name, variable }));
  return {
    model,
    params,
    loss(batch: HostBatch) {
      const pixels = batchEntry(batch, 'pixel_values');
      const labels = batchEntry(batch, 'labels');
      const logits = model.forward(
        tf.tensor4d(pixels.data as Float32Array, pixels.shape as [number, number, number, number]),
        { training: true },
      );
      // The base term of the distillation loss with type `none` is exactly the (smoothed) CE.
      const value = distillationLoss(
        {
          clsLogits: logits,
          distLogits: logits,
          labels: labelsTensor(labels),
        },
        { type: 'none', labelSmoothing: options.labelSmoothing ?? 0 },
      );
      return { total: value.total, parts: { base: value.base } };
    },
  };
}
