/**
 * The fine-tune training task: the training library's DeiT distillation task, started from given weights
 * and restricted to the trainable scope. Loadable by path in data-parallel workers
 * ({@link FINE_TUNE_TASK_MODULE}), so its options are plain JSON and the starting weights travel as a
 * safetensors file: tfjs variables cannot cross threads, and frozen parameters are not part of the
 * shared weights, so every worker must read them itself.
 */
import { readFileSync } from 'node:fs';
import { readSafetensors, type DeitConfig } from '@deit-serve/model';
import {
  createDeitTrainTask,
  type DeitTrainTask,
  type DistillationLossOptions,
  type TaskContext,
} from '@deit-serve/training';
import type { TrainableScope } from '@deit-serve/trainer-engine';

export interface FineTuneTaskOptions {
  readonly config: DeitConfig;
  /** Safetensors file with every parameter (timm names and layout) the task starts from. */
  readonly weightsPath: string;
  readonly trainable: TrainableScope;
  /** Seeds the drop-path masks (with the worker index). */
  readonly seed: number;
  readonly dropPathRate: number;
  readonly loss: DistillationLossOptions;
}

/** This module's path, for `DataParallelTrainer`'s `taskModule`. */
export const FINE_TUNE_TASK_MODULE = __filename;

/**
 * Whether a parameter trains under `scope`. `last-blocks`: the last N blocks, the final norm and both
 * heads (timm's usual partial fine-tune); the patch embedding, tokens and position embedding stay frozen.
 */
export function isTrainable(name: string, scope: TrainableScope, depth: number): boolean {
  switch (scope.kind) {
    case 'all':
      return true;
    case 'last-blocks': {
      const block = /^blocks\.(\d+)\./.exec(name);
      if (block !== null) return Number(block[1]) >= depth - scope.blocks;
      return name.startsWith('norm.') || name.startsWith('head.') || name.startsWith('head_dist.');
    }
  }
}

export function createTrainTask(options: FineTuneTaskOptions, context?: TaskContext): DeitTrainTask {
  const task = createDeitTrainTask(
    {
      preset: options.config,
      seed: options.seed,
      dropPathRate: options.dropPathRate,
      loss: options.loss,
    },
    context,
  );
  // Read the file here rather than receive arrays: the options are copied into every worker.
  task.model.setWeights(readSafetensors(readFileSync(options.weightsPath), { modelPrefix: 'none' }).weights);
  const params = task.params.filter((p) => isTrainable(p.name, options.trainable, options.config.depth));
  return { model: task.model, params, loss: (batch) => task.loss(batch) };
}
