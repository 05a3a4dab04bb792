/**
 * What the zoo trains: its stages, the registry names they publish to, the teacher's and the students'
 * recipes, and the fingerprints that tell a stage whether its recipe changed since it last ran.
 * How each recipe was chosen (pilots on a hold-out of the training set): RESULTS.md.
 */
import { createHash } from 'node:crypto';
import { trainerV1 } from '@deit-serve/proto';
import type { TeacherTrainingSpec } from './teacher-training';

/**
 * In this order: a RegNetY teacher trained from scratch, then DeiT's distillation ablation (paper
 * Table 3): students with labels only, soft and hard distillation from that teacher.
 */
export const ZOO_STAGES = ['teacher', 'none', 'soft', 'hard'] as const;
export type ZooStage = (typeof ZOO_STAGES)[number];
export type StudentStage = Exclude<ZooStage, 'teacher'>;

export const ZOO_SEED = 0;

/** Registry names of the zoo's models. */
export const ZOO_MODELS: Readonly<Record<ZooStage, string>> = {
  teacher: 'fmnist-teacher',
  none: 'fmnist-deit-nodistill',
  soft: 'fmnist-deit-soft',
  hard: 'fmnist-deit',
};

/** The alias `npm start` serves, moved to the hard-distilled student. */
export const ZOO_SERVING_ALIAS = 'production';

/** The teacher's recipe: RegNetY from scratch on the 60k training images. */
export const ZOO_TEACHER_SPEC: TeacherTrainingSpec = {
  preset: 'regnety_fmnist_28',
  seed: ZOO_SEED,
  epochs: 8,
  batchSize: 128,
  lr: 2e-3,
  weightDecay: 0.05,
  warmupEpochs: 1,
  warmupLr: 1e-5,
  minLr: 1e-5,
  labelSmoothing: 0.1,
  augment: { crop: { kind: 'padded', padding: 2 }, hflip: 0.5 },
  bnStatImages: 8192,
  evalIntervalEpochs: 4,
};

/** 18 tokens of 7×7 patches: a third of patch 4's cost per image, so an hour buys ~3× the epochs. */
export const ZOO_STUDENT_PRESET = 'deit_pico_distilled_patch7_28';
export const ZOO_STUDENT_EPOCHS = 16;

/**
 * The student recipe, identical for none / soft / hard apart from the distillation type: the DeiT
 * recipe (AdamW, warm-up + cosine, label smoothing 0.1, stochastic depth) at a budget this machine
 * trains in under an hour per student. The learning rate is above DeiT's 5e-4·B/512 because the
 * students start from scratch and train for 16 epochs, not hundreds. No random crop: for a 4×4 grid
 * of 7-px patches a shift moves content across patch borders, and Fashion-MNIST's images are centred.
 */
export function zooStudentSpec(
  stage: StudentStage,
  teacherRef: string,
  datasetDir: string,
): trainerV1.FineTuneSpec {
  const type = {
    none: trainerV1.DistillationType.DISTILLATION_TYPE_NONE,
    soft: trainerV1.DistillationType.DISTILLATION_TYPE_SOFT,
    hard: trainerV1.DistillationType.DISTILLATION_TYPE_HARD,
  }[stage];
  return {
    outputModel: ZOO_MODELS[stage],
    student: { preset: ZOO_STUDENT_PRESET },
    // The baseline gets the teacher too (only its top-1 is reported): same data path, same cost.
    teacher: { registryRef: teacherRef },
    dataset: {
      fashionMnist: { dir: datasetDir, evalOnTest: true },
      validationFraction: 0,
      maxTrainImages: 0,
      maxEvalImages: 0,
    },
    distillation: {
      type,
      alpha: 0.5,
      tau: 1,
      softNormalization: trainerV1.SoftNormalization.SOFT_NORMALIZATION_NUMEL,
    },
    optimization: {
      epochs: ZOO_STUDENT_EPOCHS,
      batchSize: 64,
      lr: 1.4e-3,
      lrFixed: true,
      weightDecay: 0.05,
      warmupEpochs: 1,
      warmupLr: 1e-5,
      minLr: 1e-5,
      labelSmoothing: 0.1,
      dropPath: 0.05,
    },
    augmentation: {
      crop: trainerV1.CropMode.CROP_MODE_NONE,
      padding: 0,
      horizontalFlip: true,
      randomErasing: 0,
      mixupAlpha: 0,
      cutmixAlpha: 0,
    },
    seed: ZOO_SEED,
    trainable: { all: true },
    evalIntervalEpochs: 3,
    promotion: undefined,
  };
}

/** What the zoo trains: the teacher's spec and each student's fine-tune request. */
export interface ZooPlan {
  readonly teacher: TeacherTrainingSpec;
  readonly student: (stage: StudentStage, teacherRef: string, datasetDir: string) => trainerV1.FineTuneSpec;
}

export const ZOO_PLAN: ZooPlan = { teacher: ZOO_TEACHER_SPEC, student: zooStudentSpec };

/** Stands in for the dataset's location in a student's recipe: where the files lie is not the recipe. */
const DATASET_IN_RECIPE = '<fashion-mnist>';

/** A recipe's identity: sha256 (first 16 hex digits) of its JSON with keys sorted. */
export function recipeFingerprint(recipe: unknown): string {
  const canonical = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(canonical)
      : value !== null && typeof value === 'object'
        ? Object.fromEntries(
            Object.entries(value)
              .filter(([, v]) => v !== undefined)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, v]) => [k, canonical(v)]),
          )
        : value;
  return createHash('sha256')
    .update(JSON.stringify(canonical(recipe)))
    .digest('hex')
    .slice(0, 16);
}

/** The recipe a stage trains with now: the teacher's spec, or the student's request from `teacherRef`. */
export function stageRecipe(plan: ZooPlan, stage: ZooStage, teacherRef: string): unknown {
  return stage === 'teacher' ? plan.teacher : plan.student(stage, teacherRef, DATASET_IN_RECIPE);
}

/**
 * A student's recipe with what differs between none / soft / hard taken out (the distillation type and
 * the output model's name), fingerprinted: equal for students trained at the same budget and seed.
 */
export function studentBudget(plan: ZooPlan, stage: StudentStage, teacherRef: string): string {
  const spec = plan.student(stage, teacherRef, DATASET_IN_RECIPE);
  return recipeFingerprint({
    ...spec,
    outputModel: undefined,
    distillation: { ...spec.distillation, type: undefined },
  });
}
