/**
 * What the zoo trains: its stages, the registry names they publish to, the teacher's and the students'
 * recipes, and the fingerprints that tell a stage whether its recipe changed since it last ran.
 * How each recipe was chosen (pilots on a hold-out of the training set): RESULTS.md.
 */
import { createHash } from 'node:crypto';
import { trainerV1 } from '@deit-serve/proto';
import type { TeacherTrainingSpec } from './teacher-training';

/**
 * Which generation of default models the recipes below train. Generation 1 (wasm training, one seed
 * each) is kept for comparison: its records in `zoo/generation-1/`, its versions in the registry.
 */
export const ZOO_GENERATION = 2;

/** A RegNetY teacher from scratch, then DeiT's distillation ablation (paper Table 3). */
export const ZOO_KINDS = ['teacher', 'none', 'soft', 'hard'] as const;
export type ZooKind = (typeof ZOO_KINDS)[number];
/** Students with labels only, soft and hard distillation from the teacher. */
export type StudentStage = Exclude<ZooKind, 'teacher'>;

/** The seed of the teacher and of every student's first run; the production student is its hard run. */
export const ZOO_SEED = 0;

/**
 * Seeds per student kind: three for none and hard, so that "hard beats none" is a statement about
 * more than seed noise, one for soft (the paper's Table 3 has it level with none).
 */
export const ZOO_STUDENT_SEEDS: Readonly<Record<StudentStage, readonly number[]>> = {
  none: [0, 1, 2],
  soft: [0],
  hard: [0, 1, 2],
};

/** One training run of the zoo: the teacher, or a student kind at a seed (`hard`, `hard-seed1`, …). */
export type ZooStage = 'teacher' | StudentStage | `${StudentStage}-seed${number}`;

/** The run's name: the kind alone at seed 0 (so first runs keep their names), else `KIND-seedN`. */
export function stageName(kind: StudentStage, seed: number): ZooStage {
  return seed === ZOO_SEED ? kind : `${kind}-seed${seed}`;
}

export function stageKind(stage: ZooStage): ZooKind {
  return stage === 'teacher' ? stage : (stage.split('-')[0] as StudentStage);
}

export function stageSeed(stage: ZooStage): number {
  const match = /-seed(\d+)$/.exec(stage);
  return match === null ? ZOO_SEED : Number(match[1]);
}

/**
 * Every run, in the order `npm run zoo` trains them: the teacher, then the seed-0 students (hard
 * first: it becomes the production model), then the further seeds.
 */
export const ZOO_STAGES: readonly ZooStage[] = (() => {
  const order: StudentStage[] = ['hard', 'none', 'soft'];
  const maxSeeds = Math.max(...order.map((k) => ZOO_STUDENT_SEEDS[k].length));
  const runs: ZooStage[] = ['teacher'];
  for (let i = 0; i < maxSeeds; i++) {
    for (const kind of order) {
      const seed = ZOO_STUDENT_SEEDS[kind][i];
      if (seed !== undefined) runs.push(stageName(kind, seed));
    }
  }
  return runs;
})();

/** A command-line name: a run (`hard-seed1`) or a kind, which means every run of it. */
export function isZooStage(name: string): name is ZooStage {
  return (ZOO_STAGES as readonly string[]).includes(name);
}

/** Registry names of the zoo's models (every seed of a kind publishes versions of one model). */
export const ZOO_MODELS: Readonly<Record<ZooKind, string>> = {
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
  seed: number = ZOO_SEED,
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
    seed,
    trainable: { all: true },
    evalIntervalEpochs: 3,
    promotion: undefined,
  };
}

/** What the zoo trains: the teacher's spec and each student's fine-tune request. */
export interface ZooPlan {
  readonly teacher: TeacherTrainingSpec;
  readonly student: (
    stage: StudentStage,
    teacherRef: string,
    datasetDir: string,
    seed?: number,
  ) => trainerV1.FineTuneSpec;
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
  const kind = stageKind(stage);
  return kind === 'teacher'
    ? plan.teacher
    : plan.student(kind, teacherRef, DATASET_IN_RECIPE, stageSeed(stage));
}

/**
 * A student's recipe with what differs between none / soft / hard and between seeds taken out (the
 * distillation type, the seed and the output model's name), fingerprinted: equal for students trained
 * at the same budget.
 */
export function studentBudget(plan: ZooPlan, stage: ZooStage, teacherRef: string): string {
  const kind = stageKind(stage);
  if (kind === 'teacher') throw new Error('studentBudget: the teacher is not a student');
  const spec = plan.student(kind, teacherRef, DATASET_IN_RECIPE, stageSeed(stage));
  return recipeFingerprint({
    ...spec,
    outputModel: undefined,
    seed: undefined,
    distillation: { ...spec.distillation, type: undefined },
  });
}
