/**
 * The trainer's fine-tune job: DeiT distillation from a frozen onnxruntime teacher, trained on
 * TensorFlow.js (data-parallel across cores on wasm), checkpointed every epoch, evaluated per head,
 * exported to ONNX, published to the registry with its lineage and curves, and promoted by policy.
 * The checkpoint, evaluation, curve and lineage pieces are exported for the zoo's teacher training
 * (@deit-serve/zoo), which reuses them with a RegNet task.
 */
export {
  createFineTuneJob,
  FINE_TUNE_JOB_MODULE,
  fineTuneJob,
  fineTuneJobConfig,
  fineTuneJobKinds,
  fineTuneJobOptions,
  type FineTuneJobConfig,
  type FineTuneJobOptions,
} from './fine-tune-job';
export { ProtectedAliases, type Caller } from './protected-promotion';
export { parseEvalSetName, reproduceEvalSet } from './server-eval-set';
export { findVersionOfJob, type PublishStep } from './publish';
export {
  CHECKPOINT_FORMAT,
  optimizerSnapshot,
  pruneCheckpoints,
  readCheckpoint,
  restoreOptimizer,
  writeCheckpoint,
  writeFileAtomic,
  type CheckpointState,
  type TrainingHistory,
} from './checkpoint';
export { renderCurvesPng } from './curves';
export { AccuracyCounter, top1Of } from './evaluate';
export { gitCommit } from './lineage';
export { loadFineTuneSources, registryRefsSpecCheck } from './sources';
