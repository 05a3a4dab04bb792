/**
 * Training of the model library's networks: the DeiT distillation loss, AdamW, the DeiT learning-rate
 * schedule, gradient accumulation, the DeiT and RegNetY training tasks, and one-process or
 * data-parallel (worker_threads) training steps. Inference never imports it (scope:trainer).
 *
 * Gradients: `await registerGradients()` once per process before any training (tfjs-core's CommonJS
 * build has none); the trainers' workers do it themselves.
 */
export {
  ADAMW_DEFAULTS,
  AdamW,
  adamwKernel,
  DEIT_NO_WEIGHT_DECAY_NAMES,
  timmNoWeightDecay,
  type AdamWOptions,
  type NoDecayPredicate,
  type ParamSpec,
} from './adamw';
export {
  DataParallelTrainer,
  type DataParallelOptions,
  type DataParallelStepResult,
} from './data-parallel/trainer';
export {
  createTrainTask as createDeitTrainTask,
  DEIT_TASK_MODULE,
  type DeitTaskOptions,
  type DeitTrainTask,
} from './deit-task';
export { accumulateGradients, type AccumulatedGradients, type AccumulateOptions } from './gradients';
export { assignHost, LocalTrainer, type StepResult, type TrainerOptions } from './local-trainer';
export {
  DISTILLATION_LOSS_DEFAULTS,
  distillationLoss,
  type DistillationLossInput,
  type DistillationLossOptions,
  type DistillationLossValue,
  type DistillationType,
  type SoftNormalization,
} from './losses';
export {
  createTrainTask as createRegNetTrainTask,
  REGNET_TASK_MODULE,
  type RegNetTaskOptions,
  type RegNetTrainTask,
} from './regnet-task';
export { threadCpuMs, wasmHeapBytes } from './resources';
export { gradientsRegistered, registerGradients } from './register-gradients';
export { cosineLr, deitCosineSchedule, deitScaledLr, perStep, type CosineScheduleOptions } from './schedule';
export {
  batchSize,
  sliceBatch,
  splitRows,
  type BatchArray,
  type HostBatch,
  type NamedVariable,
  type TaskContext,
  type TaskLoss,
  type TrainTask,
  type TrainTaskModule,
} from './task';
