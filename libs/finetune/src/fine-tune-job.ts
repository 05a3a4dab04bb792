/**
 * The fine-tune job: distils a DeiT student from a frozen teacher and publishes the result. It runs
 * in phases, each in its own module:
 *
 * prepare  load student, data and teacher (onnxruntime); every problem in one InvalidSpecError
 *          (prepare-phase.ts)
 * train    tfjs (wasm: data-parallel worker_threads across cores), AdamW, warm-up + cosine per step,
 *          DeiT distillation loss on the teacher's logits for the same augmented batch; a checkpoint
 *          after every epoch and when asked to stop, resumed where it stopped; top-1/top-5 of each
 *          head, teacher top-1 and head agreement every eval interval and at the end (train-phase.ts)
 * publish  ONNX with both heads checked against tfjs, published once with metrics, lineage and
 *          curves.png, then the promotion policy (publish-phase.ts)
 *
 * The runner loads this module in a worker process and calls {@link fineTuneJob}, with the
 * trainer's settings as the job kind's configuration ({@link fineTuneJobKinds}).
 */
import { mkdir } from 'node:fs/promises';
import { DEFAULT_REGISTRY_DIR, type TrainerConfig } from '@deit-serve/config';
import type { BackendName } from '@deit-serve/model';
import { DirectoryRegistry, type ModelRegistry } from '@deit-serve/registry';
import {
  FINE_TUNE_JOB_KIND,
  PathSandbox,
  type FineTuneJobSpec,
  type FineTuneResult,
  type JobContext,
  type JobFunction,
  type JobKinds,
  type PathSandboxConfig,
} from '@deit-serve/trainer-engine';
import { prepareRun } from './prepare-phase';
import { findPublished, type PublishHook } from './publish';
import { promote, publishTrained } from './publish-phase';
import type { DatasetLimits } from './sources';
import type { Parallelism } from './student-trainer';
import { finalEval, startTraining, trainEpochs } from './train-phase';

export interface FineTuneJobOptions {
  /** The registry to read refs from and publish to; default: opened at `registryDir`. */
  readonly registry?: ModelRegistry;
  /** Default: `registry` (the trainer passes DEIT_REGISTRY_DIR through {@link FineTuneJobConfig}). */
  readonly registryDir?: string;
  /** Preferred tfjs backend; default `auto`: native if installed, else wasm (DEIT_TRAINING_BACKEND). */
  readonly backend?: BackendName | 'auto';
  /** Default `auto`: data-parallel across the cores on wasm, one thread on native backends. */
  readonly parallelism?: Parallelism;
  /** Rows per forward/backward pass; default sized to the wasm heap (`defaultMicroBatch`). */
  readonly microBatchSize?: number;
  /** Module data-parallel workers load the task from (tests on TypeScript sources pass a shim). */
  readonly taskModule?: string;
  /** Least time between progress reports; default 1000 ms. */
  readonly progressIntervalMs?: number;
  /** Images per evaluation forward pass; default 64. */
  readonly evalBatchSize?: number;
  /** Samples the exported ONNX must reproduce (tfjs vs onnxruntime); default 8. */
  readonly exportCheckSamples?: number;
  /** The data roots every path of the spec must lie in; default: none checked. */
  readonly sandbox?: PathSandbox;
  /** How much data the job may load; default: no limit. */
  readonly datasetLimits?: DatasetLimits;
  /** Called at each step of the publish phase (crash tests). */
  readonly publishHook?: PublishHook;
  /**
   * The trainer's own data (DEIT_TRAINER_DATA_ROOTS), where a protected alias's evaluation set is
   * rebuilt for a job without the admin role; default: none, so such a job never moves it.
   */
  readonly serverDataRoots?: readonly string[];
}

/**
 * The trainer's settings a fine-tune job needs, as JSON: registered with the job kind and handed to
 * the worker process, which so runs with the service's own sandbox and limits.
 */
export interface FineTuneJobConfig {
  readonly registryDir: string;
  readonly backend: BackendName | 'auto';
  /** The data roots every path of a spec must lie in; also where protected aliases' sets are rebuilt. */
  readonly sandbox: PathSandboxConfig;
  readonly datasetLimits: DatasetLimits;
}

/** The job's settings from the trainer's configuration and its sandbox (built once, by the service). */
export function fineTuneJobConfig(config: TrainerConfig, sandbox: PathSandbox): FineTuneJobConfig {
  return {
    registryDir: config.registryDir,
    backend: config.trainingBackend,
    sandbox: sandbox.config,
    datasetLimits: { maxImages: config.maxDatasetImages, maxBytes: config.maxDatasetBytes },
  };
}

/** The options of {@link createFineTuneJob} that `config` stands for. */
export function fineTuneJobOptions(config: FineTuneJobConfig): FineTuneJobOptions {
  const sandbox = PathSandbox.fromConfig(config.sandbox);
  return {
    registryDir: config.registryDir,
    backend: config.backend,
    sandbox,
    serverDataRoots: sandbox.roots,
    datasetLimits: config.datasetLimits,
  };
}

/** This module's path, for the runner's job kinds. */
export const FINE_TUNE_JOB_MODULE = __filename;

/** The runner's registration of this job: `{ 'fine-tune': { module, export: 'fineTuneJob', config } }`. */
export function fineTuneJobKinds(config: FineTuneJobConfig): JobKinds {
  return { [FINE_TUNE_JOB_KIND]: { module: FINE_TUNE_JOB_MODULE, export: 'fineTuneJob', config } };
}

/** The job as the runner calls it, configured by its job kind ({@link fineTuneJobKinds}). */
export const fineTuneJob: JobFunction<FineTuneJobSpec, FineTuneResult> = (ctx) => {
  if (ctx.config === undefined) {
    return Promise.reject(
      new Error('the fine-tune job kind was registered without its configuration (fineTuneJobKinds)'),
    );
  }
  return createFineTuneJob(fineTuneJobOptions(ctx.config as FineTuneJobConfig))(ctx);
};

export function createFineTuneJob(
  options: FineTuneJobOptions = {},
): JobFunction<FineTuneJobSpec, FineTuneResult> {
  return async (ctx) => {
    // Released in reverse order, whatever happens: the trainer's workers, the teacher's session.
    const cleanups: Array<() => Promise<void>> = [];
    try {
      return await runFineTune(ctx, options, cleanups);
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    }
  };
}

async function runFineTune(
  ctx: JobContext<FineTuneJobSpec>,
  options: FineTuneJobOptions,
  cleanups: Array<() => Promise<void>>,
): Promise<FineTuneResult> {
  await mkdir(ctx.workDir, { recursive: true });
  const registry: ModelRegistry =
    options.registry ?? (await DirectoryRegistry.open(options.registryDir ?? DEFAULT_REGISTRY_DIR));
  ctx.signal.throwIfAborted();
  const prepared = await prepareRun(ctx, options, registry, cleanups);

  const published = await findPublished({
    registry,
    model: ctx.spec.outputModel,
    jobId: ctx.jobId,
    workDir: ctx.workDir,
    log: (m) => ctx.report.log(m),
  });
  if (published !== undefined) {
    ctx.report.log(
      `v${published.version} was already published by an earlier attempt; applying the promotion policy`,
    );
    return promote(ctx, prepared, published, options);
  }

  const run = await startTraining(ctx, options, prepared, cleanups);
  await trainEpochs(run, options);
  const evaluation = await finalEval(run);
  ctx.signal.throwIfAborted(); // the last checkpoint is current: nothing to save
  const version = await publishTrained(run, evaluation, options);
  return promote(ctx, prepared, version, options);
}
