/**
 * The first phase of a fine-tune job: everything it reads, loaded and checked before any training.
 * The sources come first (student, data set, teacher in onnxruntime: the checks StartFineTune leaves
 * to the job), so a spec naming a bad data set or model fails the job with an `InvalidSpecError`
 * that names each field and problem, before a training backend is even started.
 */
import type { BatchInputSpec } from '@deit-serve/datasets';
import { inputSpecFromManifest } from '@deit-serve/preprocess';
import { describeBackend, initBackend } from '@deit-serve/model';
import type { ModelRegistry } from '@deit-serve/registry';
import type { FineTuneJobSpec, JobContext } from '@deit-serve/trainer-engine';
import { registerGradients } from '@deit-serve/training';
import { top1Of } from './evaluate';
import type { FineTuneJobOptions } from './fine-tune-job';
import { loadFineTuneSources, type FineTuneSources } from './sources';
import { TeacherRunner } from './teacher';

/** Images per evaluation forward pass unless the job's options say otherwise. */
export const DEFAULT_EVAL_BATCH_SIZE = 64;

export interface PreparedRun {
  readonly registry: ModelRegistry;
  readonly sources: FineTuneSources;
  /** The tfjs backend in use (`tensorflow`, `wasm`, `cpu`). */
  readonly backend: string;
  /** As recorded on the job and in the lineage: `tfjs-<backend>`. */
  readonly backendName: string;
  /** What the backend runs on, for logs: `tensorflow (TensorFlow 2.21.0, CPU)`, `wasm (1 thread)`. */
  readonly backendDescription: string;
  /** The student's evaluation preprocessing (resize, crop, normalisation). */
  readonly evalInput: BatchInputSpec;
  readonly evalBatchSize: number;
  readonly teacher?: TeacherRunner;
  /** The teacher's top-1 on the evaluation set, measured once. */
  readonly teacherTop1?: number;
}

/**
 * Loads and checks the sources, then starts the training backend and measures the teacher. What
 * must be released when the job ends (the teacher's session) is pushed onto `cleanups`.
 */
export async function prepareRun(
  ctx: JobContext<FineTuneJobSpec>,
  options: FineTuneJobOptions,
  registry: ModelRegistry,
  cleanups: Array<() => Promise<void>>,
): Promise<PreparedRun> {
  const { signal } = ctx;
  const log = (message: string): void => ctx.report.log(message);
  const { sandbox, datasetLimits } = options;
  const sources = await loadFineTuneSources(ctx.spec, {
    registry,
    signal,
    ...(sandbox !== undefined && { sandbox }),
    ...(datasetLimits !== undefined && { datasetLimits }),
  });
  const loadedTeacher = sources.teacher;
  if (loadedTeacher !== undefined) cleanups.push(() => loadedTeacher.session.release());
  reportSources(sources, log);
  signal.throwIfAborted();

  const preferred = options.backend === 'auto' ? undefined : options.backend;
  const backend = await initBackend(preferred);
  await registerGradients();
  const backendName = `tfjs-${backend}`;
  ctx.report.backend(backendName);
  signal.throwIfAborted();

  const { student, data } = sources;
  // The manifest's preprocessing at the size the student is built for.
  const evalInput: BatchInputSpec = {
    ...inputSpecFromManifest(student.input),
    imageSize: student.config.imgSize,
  };
  const evalBatchSize = options.evalBatchSize ?? DEFAULT_EVAL_BATCH_SIZE;
  const teacher = loadedTeacher === undefined ? undefined : new TeacherRunner(loadedTeacher, student.input);
  const teacherTop1 =
    teacher === undefined
      ? undefined
      : await top1Of((p, d) => teacher.logits(p, d), data.eval, {
          inputSpec: evalInput,
          batchSize: evalBatchSize,
          signal,
        });
  if (teacherTop1 !== undefined) log(`teacher top-1 on ${data.evalSetName}: ${teacherTop1.toFixed(4)}`);
  return {
    registry,
    sources,
    backend,
    backendName,
    backendDescription: describeBackend(),
    evalInput,
    evalBatchSize,
    ...(teacher !== undefined && { teacher }),
    ...(teacherTop1 !== undefined && { teacherTop1 }),
  };
}

/** What was adapted, what was skipped and what was loaded, for the job's log. */
export function reportSources(sources: FineTuneSources, log: (message: string) => void): void {
  const { student, teacher, data } = sources;
  for (const change of student.changes) log(`student: ${change}`);
  const shown = data.problems.slice(0, 20);
  for (const p of shown) log(`dataset: skipped ${p.path}: ${p.reason}`);
  if (data.problems.length > shown.length) {
    log(`dataset: … and ${data.problems.length - shown.length} more skipped files`);
  }
  log(
    `data: ${data.name}, ${data.train.size} training images, ${data.eval.size} for evaluation (${data.evalSetName}), ` +
      `${data.labelNames.length} classes` +
      (teacher === undefined ? '' : `; teacher ${teacher.description}`),
  );
}
