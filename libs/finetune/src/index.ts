/**
 * The trainer's fine-tune job: DeiT distillation from a frozen onnxruntime teacher, trained on
 * TensorFlow.js (data-parallel across cores on wasm), checkpointed every epoch, evaluated per head,
 * exported to ONNX, published to the registry with its lineage and curves, and promoted by policy.
 */
export {
  createFineTuneJob,
  FINE_TUNE_JOB_MODULE,
  fineTuneJob,
  fineTuneJobKinds,
  type FineTuneJobOptions,
} from './fine-tune-job';
export { augmentOptions, specHash } from './run-spec';
export { applyGuardedPromotion, ProtectedAliases, type Caller } from './protected-promotion';
export { parseEvalSetName, reproduceEvalSet, type ReproducibleEvalSet } from './server-eval-set';
export {
  findPublished,
  findVersionOfJob,
  publishOnce,
  promotePublished,
  PUBLISHED_MARKER,
  type PublishedMarker,
  type PublishHook,
  type PublishOnceOptions,
  type PublishStep,
} from './publish';
export { buildVersionRequest, EXPORT_CHECK_TOLERANCE, type VersionRequestInput } from './version-request';
export {
  CHECKPOINT_FORMAT,
  checkpointFileName,
  decodeCheckpoint,
  encodeCheckpoint,
  optimizerSnapshot,
  pruneCheckpoints,
  readCheckpoint,
  restoreOptimizer,
  writeCheckpoint,
  writeFileAtomic,
  type Checkpoint,
  type CheckpointState,
  type LossPoint,
  type TrainingHistory,
} from './checkpoint';
export { curvesSvg, renderCurvesPng } from './curves';
export { AccuracyCounter, evaluateStudent, inTopK, top1Of, type EvaluateOptions } from './evaluate';
export { buildLineage, gitCommit } from './lineage';
export {
  applyPromotion,
  decidePromotion,
  policyTop1,
  type Incumbent,
  type PromotionOutcome,
} from './promotion';
export {
  deitConfigFromOnnx,
  labelMismatch,
  loadFineTuneSources,
  sourcesSpecCheck,
  teacherOutputs,
  type DatasetLimits,
  type FineTuneData,
  type FineTuneSources,
  type LoadSourcesOptions,
  type StudentSourceModel,
  type TeacherModel,
} from './sources';
export { defaultMicroBatch, plannedWorkers, type Parallelism } from './student-trainer';
export { FINE_TUNE_TASK_MODULE, isTrainable, type FineTuneTaskOptions } from './train-task';
