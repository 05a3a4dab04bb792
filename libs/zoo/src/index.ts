/**
 * The model zoo: the project's default models trained from Fashion-MNIST with a fixed seed (a RegNetY
 * teacher and DeiT's distillation ablation none / soft / hard), published to the registry and
 * evaluated through onnxruntime. Students are trained by the trainer's own fine-tune job.
 */
export {
  isZooStage,
  recipeFingerprint,
  stageKind,
  stageName,
  stageRecipe,
  stageSeed,
  studentBudget,
  ZOO_GENERATION,
  ZOO_KINDS,
  ZOO_STUDENT_SEEDS,
  ZOO_MODELS,
  ZOO_PLAN,
  ZOO_SEED,
  ZOO_SERVING_ALIAS,
  ZOO_STAGES,
  ZOO_STUDENT_EPOCHS,
  ZOO_STUDENT_PRESET,
  ZOO_TEACHER_SPEC,
  zooStudentSpec,
  type StudentStage,
  type ZooKind,
  type ZooPlan,
  type ZooStage,
} from './recipes';
export { runZoo, type ZooOptions } from './run-zoo';
export { readStageRecord, type StageRecord } from './stage-record';
export { startStageClock, ZOO_STAGE_LIMIT_SECONDS, type StageClock } from './stage-clock';
export { evaluateOnnx, type OnnxEvaluation } from './onnx-evaluation';
export {
  evaluateZoo,
  HAND_WRITTEN_MARKER,
  PREVIOUS_GENERATION_DIR,
  keepHandWritten,
  renderResultsMarkdown,
  zooFindings,
  type ZooResults,
  type ZooRow,
} from './zoo-report';
export {
  latestCheckpointPath,
  packageTeacher,
  teacherSpecHash,
  trainTeacher,
  type PackagedTeacher,
  type TeacherArchitecture,
  type TeacherTrainingOptions,
  type TeacherTrainingResult,
  type TeacherTrainingSpec,
} from './teacher-training';
