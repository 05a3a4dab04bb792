/**
 * Runs the zoo's stages in order: the teacher, then the students, each trained by the trainer's own
 * fine-tune job (the function its worker processes run). A stage whose record names a version the
 * registry still holds, with the same sha256 and recipe fingerprint (a student's includes its
 * teacher's version), is skipped; a changed recipe trains a new version. An interrupted stage resumes
 * from its last checkpoint in `<work>/<stage>/<recipe>`, so a run may span several sittings.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { datasetHash, FASHION_MNIST_DIR, loadFashionMnist } from '@deit-serve/datasets';
import { createFineTuneJob, gitCommit, readCheckpoint } from '@deit-serve/finetune';
import type { ModelRegistry } from '@deit-serve/registry';
import {
  validateFineTuneSpec,
  type FineTuneJobSpec,
  type FineTuneResult,
  type JobContext,
} from '@deit-serve/trainer-engine';
import { describeBackend } from '@deit-serve/model';
import { countOnnxParameters } from '@deit-serve/model/onnx-codec';
import {
  recipeFingerprint,
  stageRecipe,
  studentBudget,
  ZOO_MODELS,
  ZOO_PLAN,
  ZOO_SERVING_ALIAS,
  ZOO_STAGES,
  stageKind,
  stageSeed,
  type ZooPlan,
  type ZooStage,
} from './recipes';
import { startStageClock } from './stage-clock';
import { readStageRecord, recordedVersion, verifiedVersion, type StageRecord } from './stage-record';
import { latestCheckpointPath, packageTeacher, trainTeacher } from './teacher-training';

export interface ZooOptions {
  readonly registry: ModelRegistry;
  /** Stage records (committed). */
  readonly recordsDir: string;
  /** Checkpoints and scratch space (not committed). */
  readonly workDir: string;
  readonly datasetDir?: string;
  readonly log?: (message: string) => void;
  readonly signal?: AbortSignal;
  /** Stages to run (default all, in order); finished ones are skipped unless `force`. */
  readonly stages?: readonly ZooStage[];
  readonly machine: string;
  /** Default {@link ZOO_PLAN}; tests train smaller ones. */
  readonly plan?: ZooPlan;
  /** Default `auto` (data-parallel workers on wasm); `local` trains in this thread. */
  readonly parallelism?: 'auto' | 'local';
}

export async function runZoo(options: ZooOptions): Promise<void> {
  const log = options.log ?? (() => undefined);
  const datasetDir = options.datasetDir ?? FASHION_MNIST_DIR;
  const stages = options.stages ?? ZOO_STAGES;
  const plan = options.plan ?? ZOO_PLAN;
  await mkdir(options.recordsDir, { recursive: true });
  for (const stage of ZOO_STAGES) {
    if (!stages.includes(stage)) continue;
    const teacher =
      stage === 'teacher'
        ? undefined
        : await recordedVersion(options.registry, await readStageRecord(options.recordsDir, 'teacher'));
    if (stage !== 'teacher' && teacher === undefined) {
      throw new Error(`${stage}: the teacher stage has not finished; run it first`);
    }
    const teacherRef = teacher === undefined ? '' : `${teacher.model}:${teacher.version}`;
    const recipe = recipeFingerprint(stageRecipe(plan, stage, teacherRef));
    const record = await readStageRecord(options.recordsDir, stage);
    const existing = await recordedVersion(options.registry, record);
    if (existing !== undefined && (record?.recipe === undefined || record.recipe === recipe)) {
      log(`${stage}: done (${existing.model}:${existing.version}), skipped`);
      continue;
    }
    if (existing !== undefined) {
      log(
        `${stage}: the recipe changed since ${existing.model}:${existing.version} ` +
          `(recorded ${record?.recipe}, now ${recipe}); training anew`,
      );
    }
    options.signal?.throwIfAborted();
    log(`${stage}: starting (recipe ${recipe})`);
    // Checkpoints and publish markers live per recipe: a changed recipe never resumes an old run.
    const workDir = join(options.workDir, stage, recipe);
    const clock = await startStageClock(workDir);
    if (clock.earlierSeconds > 0) {
      log(`${stage}: ${(clock.earlierSeconds / 60).toFixed(1)} min spent on this recipe in earlier sittings`);
    }
    let partial: PartialRecord;
    try {
      partial =
        stage === 'teacher'
          ? await runTeacherStage(options, plan, workDir, datasetDir, log)
          : await runStudentStage(options, plan, stage, teacherRef, workDir, datasetDir, log);
    } finally {
      await clock.stop();
    }
    const full: StageRecord = {
      ...partial,
      seed: stage === 'teacher' ? plan.teacher.seed : stageSeed(stage),
      recipe,
      ...(stage !== 'teacher' && { budget: studentBudget(plan, stage, teacherRef) }),
      wallSeconds: Math.round(clock.sittingSeconds()),
      stageWallSeconds: Math.round(clock.totalSeconds()),
    };
    await writeFile(join(options.recordsDir, `${stage}.json`), `${JSON.stringify(full, null, 2)}\n`);
    log(`${stage}: published ${full.model}:${full.version} in ${full.wallSeconds} s`);
    // The production model is the hard student's seed-0 run, named before any seed was trained.
    if (stage === 'hard') {
      await options.registry.setAlias(full.model, ZOO_SERVING_ALIAS, full.version, {
        reason: 'zoo: hard-distilled student (seed 0) is the default model',
      });
      log(`${full.model}@${ZOO_SERVING_ALIAS} → ${full.version}`);
    }
  }
}

type PartialRecord = Omit<StageRecord, 'wallSeconds' | 'stageWallSeconds' | 'recipe' | 'seed'>;

async function runTeacherStage(
  options: ZooOptions,
  plan: ZooPlan,
  workDir: string,
  datasetDir: string,
  log: (m: string) => void,
): Promise<PartialRecord> {
  const train = (await loadFashionMnist(datasetDir, 'train')).dataset;
  const test = (await loadFashionMnist(datasetDir, 'test')).dataset;
  const spec = plan.teacher;
  const result = await trainTeacher({
    ...(options.parallelism === 'local' && { workers: 1 }),
    spec,
    train,
    eval: test,
    evalSetName: 'test',
    workDir,
    log: (m) => log(`teacher: ${m}`),
    ...(options.signal !== undefined && { signal: options.signal }),
  });
  const commit = await gitCommit();
  const { request, onnxTop1 } = await packageTeacher(result, {
    spec,
    eval: test,
    evalSetName: 'test',
    dataset: { name: 'fashion-mnist', sha256: datasetHash(train) },
    gitCommit: commit,
  });
  log(`teacher: exported ONNX top-1 on the test set ${onnxTop1.toFixed(4)} (onnxruntime)`);
  const info = await options.registry.publish(ZOO_MODELS.teacher, request);
  return {
    stage: 'teacher',
    backend: describeBackend(),
    model: info.model,
    version: info.version,
    sha256: info.manifest.files['model.onnx']?.sha256 ?? '',
    trainSeconds: Math.round(result.trainSeconds),
    parameters: result.parameters,
    finishedAt: new Date().toISOString(),
    gitCommit: commit,
    machine: options.machine,
  };
}

async function runStudentStage(
  options: ZooOptions,
  plan: ZooPlan,
  stage: ZooStage,
  teacherRef: string,
  workDir: string,
  datasetDir: string,
  log: (m: string) => void,
): Promise<PartialRecord> {
  const kind = stageKind(stage);
  if (kind === 'teacher') throw new Error('runStudentStage: the teacher is not a student');
  const spec: FineTuneJobSpec = validateFineTuneSpec(
    plan.student(kind, teacherRef, datasetDir, stageSeed(stage)),
  );
  await mkdir(workDir, { recursive: true });
  await dropStalePublishMarker(options.registry, workDir, spec.outputModel, (m) => log(`${stage}: ${m}`));
  const resumePath = await latestCheckpointPath(workDir);
  const resumeFrom =
    resumePath === undefined
      ? undefined
      : { path: resumePath, epoch: (await readCheckpoint(resumePath)).state.epochsCompleted };
  const signal = options.signal ?? new AbortController().signal;
  let lastProgress = 0;
  const ctx: JobContext<FineTuneJobSpec> = {
    // One job per stage and recipe: a retrained stage publishes anew (a resumed one adopts its version).
    jobId: `zoo-${stage}-${basename(workDir)}`,
    spec,
    workDir,
    ...(resumeFrom !== undefined && { resumeFrom }),
    attempt: resumeFrom === undefined ? 1 : 2,
    signal,
    report: {
      progress: (p) => {
        const now = performance.now();
        if (now - lastProgress < 30_000) return;
        lastProgress = now;
        log(
          `${stage}: epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.stepsPerEpoch} loss ${(p.loss?.total ?? NaN).toFixed(4)} ` +
            `${(p.imagesPerSecond ?? 0).toFixed(1)} img/s, ETA ${Math.round((p.etaSeconds ?? 0) / 60)} min`,
        );
      },
      eval: () => undefined,
      checkpoint: () => Promise.resolve(),
      log: (m) => log(`${stage}: ${m}`),
      backend: () => undefined,
    },
  };
  const result: FineTuneResult = await createFineTuneJob({
    registry: options.registry,
    parallelism: options.parallelism ?? 'auto',
  })(ctx);
  const loaded = await options.registry.loadVersion(`${result.model}:${result.version}`);
  const info = loaded;
  const onnx = loaded.files.get('model.onnx');
  const trainSeconds = Number(info.manifest.lineage?.hyperparameters['train_seconds'] ?? NaN);
  return {
    stage,
    model: result.model,
    version: result.version,
    sha256: info.manifest.files['model.onnx']?.sha256 ?? result.sha256,
    trainSeconds: Number.isFinite(trainSeconds) ? trainSeconds : -1,
    parameters: onnx === undefined ? 0 : countOnnxParameters(onnx),
    // The fine-tune job's lineage: `tfjs-tensorflow` or `tfjs-wasm`.
    backend: info.manifest.lineage?.backend ?? 'not recorded',
    finishedAt: new Date().toISOString(),
    gitCommit: await gitCommit(),
    machine: options.machine,
  };
}

/**
 * The fine-tune job records what it published in its work dir and, when rerun, finishes with that
 * version instead of publishing again. If that version is gone or changed, the marker is dropped so
 * the job publishes anew (from its last checkpoint, not from scratch).
 */
async function dropStalePublishMarker(
  registry: ModelRegistry,
  workDir: string,
  model: string,
  log: (m: string) => void,
): Promise<void> {
  const path = join(workDir, 'published.json');
  let marker: { version?: number; sha256?: string };
  try {
    marker = JSON.parse(await readFile(path, 'utf8')) as typeof marker;
  } catch {
    return;
  }
  const { version, sha256 } = marker;
  const still =
    version !== undefined &&
    sha256 !== undefined &&
    (await verifiedVersion(registry, model, version, sha256)) !== undefined;
  if (!still) {
    log(`the version an earlier attempt published is gone or changed; publishing again`);
    await rm(path, { force: true });
  }
}
