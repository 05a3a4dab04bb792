/**
 * The model zoo: the project's default models trained from Fashion-MNIST with a fixed seed (a RegNetY
 * teacher and DeiT's distillation ablation none / soft / hard), published to the registry and
 * evaluated through onnxruntime. Students are trained by the trainer's own fine-tune job.
 */
export {
  latestCheckpointPath,
  packageTeacher,
  teacherSpecHash,
  trainTeacher,
  type PackagedTeacher,
  type TeacherTrainingOptions,
  type TeacherTrainingResult,
  type TeacherTrainingSpec,
} from './teacher-training';
export {
  countOnnxParameters,
  evaluateOnnx,
  readStageRecord,
  runZoo,
  ZOO_MODELS,
  ZOO_PLAN,
  ZOO_SEED,
  ZOO_SERVING_ALIAS,
  ZOO_STAGES,
  ZOO_STUDENT_EPOCHS,
  ZOO_STUDENT_PRESET,
  ZOO_TEACHER_SPEC,
  recipeFingerprint,
  startStageClock,
  studentBudget,
  stageRecipe,
  ZOO_STAGE_LIMIT_SECONDS,
  zooStudentSpec,
  type OnnxEvaluation,
  type StageClock,
  type StageRecord,
  type StudentStage,
  type ZooOptions,
  type ZooPlan,
  type ZooStage,
} from './zoo';
export { evaluateZoo, renderResultsMarkdown, zooFindings, type ZooResults, type ZooRow } from './zoo-report';
