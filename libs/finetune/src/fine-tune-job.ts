/**
 * The fine-tune job: distils a DeiT student from a frozen teacher and publishes the result.
 *
 * start  load student, teacher (onnxruntime) and data; every problem in one InvalidSpecError
 * train  tfjs (wasm: data-parallel worker_threads across cores), AdamW, warm-up + cosine per step,
 *        DeiT distillation loss on the teacher's logits for the same augmented batch
 * keep   a checkpoint after every epoch and when asked to stop; resume continues where it stopped
 * judge  top-1/top-5 of each head, teacher top-1, head agreement, every eval interval and at the end
 * ship   ONNX with both heads checked against tfjs, published with metrics, lineage and curves.png,
 *        then the promotion policy
 *
 * The runner loads this module in a worker process and calls {@link fineTuneJob}.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { batchCount, trainBatches, type BatchInputSpec } from '@deit-serve/datasets';
import { deriveSeed, initBackend, writeSafetensors, type BackendName } from '@deit-serve/model';
import { cosineLr, perStep, registerGradients, type BatchArray } from '@deit-serve/training';
import { DirectoryRegistry, type ModelRegistry } from '@deit-serve/registry';
import {
  FINE_TUNE_JOB_KIND,
  JobAbortedError,
  type EvalResult,
  type FineTuneJobSpec,
  type FineTuneResult,
  type JobContext,
  type JobFunction,
  type JobKinds,
  type LossParts,
  PathSandbox,
} from '@deit-serve/trainer-engine';
import {
  pruneCheckpoints,
  readCheckpoint,
  checkpointOptimizer,
  optimizerSnapshot,
  writeCheckpoint,
  writeFileAtomic,
  CHECKPOINT_FORMAT,
  type Checkpoint,
  type CheckpointState,
  type LossPoint,
  type TrainingHistory,
} from './checkpoint';
import { evaluateStudent, top1Of } from './evaluate';
import {
  findPublished,
  promotePublished,
  publishOnce,
  type PublishedMarker,
  type PublishHook,
} from './publish';
import { loadFineTuneSources, type DatasetLimits, type FineTuneSources } from './sources';
import { createStudentTrainer, type Parallelism, type StudentTrainer } from './student-trainer';
import { augmentOptions, specHash } from './run-spec';
import { TeacherRunner } from './teacher';
import { buildVersionRequest } from './version-request';

export interface FineTuneJobOptions {
  /** The registry to read refs from and publish to; default: opened at `registryDir`. */
  readonly registry?: ModelRegistry;
  /** Default: `DEIT_REGISTRY_DIR` (trainer config). */
  readonly registryDir?: string;
  /** Preferred tfjs backend; default: `DEIT_TRAINING_BACKEND` (auto: native if installed, else wasm). */
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

/** This module's path, for the runner's job kinds. */
export const FINE_TUNE_JOB_MODULE = __filename;

/** The runner's registration of this job: `{ 'fine-tune': { module, export: 'fineTuneJob' } }`. */
export function fineTuneJobKinds(): JobKinds {
  return { [FINE_TUNE_JOB_KIND]: { module: FINE_TUNE_JOB_MODULE, export: 'fineTuneJob' } };
}

/** The job as the runner calls it, configured from the trainer's environment (`DEIT_*`). */
export const fineTuneJob: JobFunction<FineTuneJobSpec, FineTuneResult> = (ctx) => {
  const config = loadConfig(trainerConfigSpec);
  return createFineTuneJob({
    registryDir: config.registryDir,
    backend: config.trainingBackend,
    sandbox: new PathSandbox(config.dataRoots),
    serverDataRoots: config.dataRoots,
    datasetLimits: { maxImages: config.maxDatasetImages, maxBytes: config.maxDatasetBytes },
  })(ctx);
};

export function createFineTuneJob(
  options: FineTuneJobOptions = {},
): JobFunction<FineTuneJobSpec, FineTuneResult> {
  return (ctx) => new FineTuneRun(ctx, options).run();
}

const START_WEIGHTS = 'student-start.safetensors';

class FineTuneRun {
  private readonly spec: FineTuneJobSpec;
  private readonly history: TrainingHistory = { losses: [], evals: [] };
  private trainSeconds = 0;
  private globalStep = 0;
  private readonly cleanups: Array<() => Promise<void>> = [];

  constructor(
    private readonly ctx: JobContext<FineTuneJobSpec>,
    private readonly options: FineTuneJobOptions,
  ) {
    this.spec = ctx.spec;
  }

  async run(): Promise<FineTuneResult> {
    try {
      return await this.execute();
    } finally {
      for (const cleanup of this.cleanups.reverse()) await cleanup().catch(() => undefined);
    }
  }

  private log(message: string): void {
    this.ctx.report.log(message);
  }

  private async execute(): Promise<FineTuneResult> {
    const { ctx, spec } = this;
    const signal = ctx.signal;
    await mkdir(ctx.workDir, { recursive: true });
    const preferred = this.options.backend === 'auto' ? undefined : this.options.backend;
    const backend = await initBackend(preferred);
    await registerGradients();
    const backendName = `tfjs-${backend}`;
    ctx.report.backend(backendName);
    const registry =
      this.options.registry ?? (await DirectoryRegistry.open(this.options.registryDir ?? 'registry'));
    signal.throwIfAborted();

    const { sandbox, datasetLimits } = this.options;
    const sources = await loadFineTuneSources(spec, {
      registry,
      signal,
      ...(sandbox !== undefined && { sandbox }),
      ...(datasetLimits !== undefined && { datasetLimits }),
    });
    const { student, data } = sources;
    if (sources.teacher !== undefined) {
      const teacher = sources.teacher;
      this.cleanups.push(() => teacher.session.release());
    }
    this.reportSources(sources);

    const trainInput: BatchInputSpec = {
      imageSize: student.config.imgSize,
      mean: student.input.mean,
      std: student.input.std,
    };
    const evalInput: BatchInputSpec = {
      ...trainInput,
      interpolation: student.input.interpolation,
      cropPct: student.input.crop_pct,
    };
    const evalBatchSize = this.options.evalBatchSize ?? 64;
    const teacher =
      sources.teacher === undefined ? undefined : new TeacherRunner(sources.teacher, student.input);
    const teacherTop1 =
      teacher === undefined
        ? undefined
        : await top1Of((p, d) => teacher.logits(p, d), data.eval, {
            inputSpec: evalInput,
            batchSize: evalBatchSize,
            signal,
          });
    if (teacherTop1 !== undefined)
      this.log(`teacher top-1 on ${data.evalSetName}: ${teacherTop1.toFixed(4)}`);

    const published = await findPublished({
      registry,
      model: spec.outputModel,
      jobId: ctx.jobId,
      workDir: ctx.workDir,
      log: (m) => this.log(m),
    });
    if (published !== undefined) {
      this.log(
        `v${published.version} was already published by an earlier attempt; applying the promotion policy`,
      );
      return this.finish(registry, sources, published);
    }

    const checkpoint = await this.readResumePoint();
    const startWeights = checkpoint?.weights ?? student.weights;
    const weightsPath = join(ctx.workDir, START_WEIGHTS);
    await writeFileAtomic(weightsPath, writeSafetensors(startWeights));
    const epochsDone = checkpoint?.state.epochsCompleted ?? 0;
    const startBatch = checkpoint?.state.nextBatch ?? 0;
    const { optimization: opt, distillation } = spec;
    const microBatchSize = this.options.microBatchSize;
    const trainer = await createStudentTrainer({
      task: {
        config: student.config,
        weightsPath,
        trainable: spec.trainable,
        // Restarted streams must not replay the masks of the first attempt.
        seed:
          checkpoint === undefined ? spec.seed : deriveSeed(spec.seed, `resume/${epochsDone}/${startBatch}`),
        dropPathRate: opt.dropPath,
        loss: {
          type: distillation.type,
          alpha: distillation.alpha,
          tau: distillation.tau,
          softNormalization: distillation.softNormalization,
          labelSmoothing: opt.labelSmoothing,
        },
      },
      optimizer: { lr: opt.lr, weightDecay: opt.weightDecay },
      batchSize: opt.batchSize,
      totalSteps: (opt.epochs - epochsDone) * batchCount(data.train.size, opt.batchSize) - startBatch,
      backend,
      parallelism: this.options.parallelism ?? 'auto',
      ...(microBatchSize !== undefined && { microBatchSize }),
      ...(this.options.taskModule !== undefined && { taskModule: this.options.taskModule }),
      log: (m) => this.log(m),
    });
    this.cleanups.push(() => trainer.close());
    this.log(
      `training ${student.description} on ${backendName}: ` +
        (trainer.kind === 'data-parallel' ? `data-parallel, ${trainer.workers} workers` : 'one thread') +
        `, batch ${opt.batchSize} in passes of ≤ ${trainer.microBatchSize} rows, ${trainer.optimizer.lr.toExponential(2)} peak lr`,
    );
    if (checkpoint !== undefined) {
      trainer.restoreOptimizer(checkpointOptimizer(checkpoint));
      this.history.losses.push(...checkpoint.state.history.losses);
      this.history.evals.push(...checkpoint.state.history.evals);
      this.trainSeconds = checkpoint.state.trainSeconds;
      this.globalStep = checkpoint.state.globalStep;
      this.log(
        `resumed from ${ctx.resumeFrom?.path ?? 'checkpoint'}: epoch ${epochsDone + 1}` +
          (startBatch > 0 ? `, batch ${startBatch + 1}` : ''),
      );
    }

    await this.train(trainer, sources, teacher, {
      epochsDone,
      startBatch,
      evalInput,
      evalBatchSize,
      teacherTop1,
    });

    const finalEval = await this.finalEval(trainer, sources, evalInput, evalBatchSize, teacherTop1);
    signal.throwIfAborted(); // the last checkpoint is current: nothing to save
    const version = await this.publish(registry, sources, trainer, finalEval, {
      backend: backendName,
      evalInput,
    });
    return this.finish(registry, sources, version);
  }

  private async finish(
    registry: ModelRegistry,
    sources: FineTuneSources,
    published: PublishedMarker,
  ): Promise<FineTuneResult> {
    const result = await promotePublished({
      registry,
      spec: this.spec,
      published,
      evalSet: sources.data.evalSetName,
      evalData: sources.data.eval,
      serverDataRoots: this.options.serverDataRoots ?? [],
      signal: this.ctx.signal,
    });
    this.log(`promotion: ${result.promotionReason}`);
    await this.options.publishHook?.('after-promotion');
    return result;
  }

  private reportSources(sources: FineTuneSources): void {
    const { student, teacher, data } = sources;
    for (const change of student.changes) this.log(`student: ${change}`);
    const shown = data.problems.slice(0, 20);
    for (const p of shown) this.log(`dataset: skipped ${p.path}: ${p.reason}`);
    if (data.problems.length > shown.length) {
      this.log(`dataset: … and ${data.problems.length - shown.length} more skipped files`);
    }
    this.log(
      `data: ${data.name}, ${data.train.size} training images, ${data.eval.size} for evaluation (${data.evalSetName}), ` +
        `${data.labelNames.length} classes` +
        (teacher === undefined ? '' : `; teacher ${teacher.description}`),
    );
  }

  private async readResumePoint(): Promise<Checkpoint | undefined> {
    const resume = this.ctx.resumeFrom;
    if (resume === undefined) return undefined;
    const checkpoint = await readCheckpoint(resume.path);
    if (checkpoint.state.specHash !== specHash(this.spec)) {
      throw new Error(`checkpoint ${resume.path} was written for another spec; refusing to resume from it`);
    }
    return checkpoint;
  }

  private async train(
    trainer: StudentTrainer,
    sources: FineTuneSources,
    teacher: TeacherRunner | undefined,
    plan: {
      epochsDone: number;
      startBatch: number;
      evalInput: BatchInputSpec;
      evalBatchSize: number;
      teacherTop1: number | undefined;
    },
  ): Promise<void> {
    const { spec, ctx } = this;
    const { signal } = ctx;
    const opt = spec.optimization;
    const { train, labelNames } = sources.data;
    const classes = labelNames.length;
    const stepsPerEpoch = batchCount(train.size, opt.batchSize);
    const schedule = perStep(
      {
        baseLr: opt.lr,
        minLr: opt.minLr,
        warmupLr: opt.warmupLr,
        warmupT: opt.warmupEpochs,
        tInitial: opt.epochs,
      },
      stepsPerEpoch,
    );
    const augment = augmentOptions(spec);
    const wantTeacher = spec.distillation.type !== 'none';
    const pointsPerEpoch = Math.max(1, Math.min(20, Math.ceil(400 / opt.epochs), stepsPerEpoch));
    const stepsPerPoint = Math.ceil(stepsPerEpoch / pointsPerEpoch);
    const progressInterval = this.options.progressIntervalMs ?? 1000;
    const totalSteps = stepsPerEpoch * opt.epochs;
    let lastProgress = -Infinity;
    let attemptImages = 0;
    let attemptSeconds = 0;
    let attemptSteps = 0;

    const stop = async (epochsCompleted: number, nextBatch: number): Promise<never> => {
      trainer.sync();
      await this.checkpoint(trainer, epochsCompleted, nextBatch);
      // Only a shutdown resumes (the job goes back to the queue); a cancelled or timed-out job ends here.
      const resumes = signal.reason instanceof JobAbortedError && signal.reason.reason === 'shutdown';
      const at = `epoch ${epochsCompleted + 1}, batch ${nextBatch + 1}`;
      this.log(
        `stopped (${describeReason(signal.reason)}); checkpoint written` +
          (resumes
            ? `, resuming at ${at} when the trainer restarts`
            : ` before ${at}; this job does not resume`),
      );
      throw signal.reason;
    };

    for (let epoch = plan.epochsDone; epoch < opt.epochs; epoch++) {
      const point = { rows: 0, total: 0, base: 0, distillation: 0, lr: 0, steps: 0 };
      const batches = trainBatches(train, {
        batchSize: opt.batchSize,
        seed: spec.seed,
        epoch,
        inputSpec: {
          imageSize: plan.evalInput.imageSize,
          mean: plan.evalInput.mean,
          std: plan.evalInput.std,
        },
        augment,
        startBatch: epoch === plan.epochsDone ? plan.startBatch : 0,
      });
      for (const batch of batches) {
        if (signal.aborted) await stop(epoch, batch.index);
        const t0 = performance.now();
        const host: Record<string, BatchArray> = {
          pixel_values: { data: batch.pixels, shape: batch.dims },
          labels:
            batch.targets === undefined
              ? { data: batch.labels, shape: [batch.size] }
              : { data: batch.targets, shape: [batch.size, classes] },
        };
        if (wantTeacher && teacher !== undefined) {
          host['teacher_logits'] = {
            data: await teacher.logits(batch.pixels, batch.dims),
            shape: [batch.size, classes],
          };
        }
        const lr = cosineLr(this.globalStep, schedule);
        const result = await trainer.step(host, lr);
        const seconds = (performance.now() - t0) / 1000;
        this.globalStep++;
        this.trainSeconds += seconds;
        attemptSeconds += seconds;
        attemptImages += batch.size;
        attemptSteps++;
        const loss: LossParts = {
          total: result.losses['total'] ?? NaN,
          base: result.losses['base'] ?? NaN,
          distillation: result.losses['distillation'] ?? 0,
        };
        if (!Number.isFinite(loss.total)) {
          throw new Error(
            `loss is ${loss.total} at epoch ${epoch + 1}, step ${batch.index + 1}; lower the learning rate`,
          );
        }
        point.rows += batch.size;
        point.total += loss.total * batch.size;
        point.base += loss.base * batch.size;
        point.distillation += loss.distillation * batch.size;
        point.lr += lr;
        point.steps++;
        const last = batch.index === stepsPerEpoch - 1;
        if (point.steps >= stepsPerPoint || last) {
          this.history.losses.push(lossPoint(point, epoch + (batch.index + 1) / stepsPerEpoch));
          Object.assign(point, { rows: 0, total: 0, base: 0, distillation: 0, lr: 0, steps: 0 });
        }
        const now = performance.now();
        if (now - lastProgress >= progressInterval || last) {
          lastProgress = now;
          const perStepSeconds = attemptSeconds / attemptSteps;
          ctx.report.progress({
            epoch: epoch + 1,
            epochs: opt.epochs,
            step: batch.index + 1,
            stepsPerEpoch,
            loss,
            learningRate: lr,
            imagesPerSecond: attemptImages / attemptSeconds,
            etaSeconds: Math.max(0, totalSteps - this.globalStep) * perStepSeconds,
          });
        }
      }

      trainer.sync();
      const epochsCompleted = epoch + 1;
      if (epochsCompleted % spec.evalIntervalEpochs === 0 || epochsCompleted === opt.epochs) {
        try {
          const result = await evaluateStudent(trainer.model, sources.data.eval, {
            epoch: epochsCompleted,
            evalSetName: sources.data.evalSetName,
            inputSpec: plan.evalInput,
            batchSize: plan.evalBatchSize,
            signal,
            ...(plan.teacherTop1 !== undefined && { teacherTop1: plan.teacherTop1 }),
          });
          this.history.evals.push(result);
          ctx.report.eval(result);
          this.log(`epoch ${epochsCompleted}: ${describeEval(result)}`);
        } catch (error) {
          if (signal.aborted) await stop(epochsCompleted, 0);
          throw error;
        }
      }
      await this.checkpoint(trainer, epochsCompleted, 0);
    }
    if (attemptSteps > 0) {
      this.log(
        `trained ${attemptSteps} steps in ${attemptSeconds.toFixed(1)} s: ${(attemptImages / attemptSeconds).toFixed(1)} images/s ` +
          `(${trainer.kind}, ${trainer.workers} worker${trainer.workers === 1 ? '' : 's'})`,
      );
    }
  }

  private async checkpoint(
    trainer: StudentTrainer,
    epochsCompleted: number,
    nextBatch: number,
  ): Promise<void> {
    const { moments, steps } = optimizerSnapshot(trainer.optimizer);
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT,
      specHash: specHash(this.spec),
      epochsCompleted,
      nextBatch,
      globalStep: this.globalStep,
      rng: { seed: this.spec.seed, epoch: epochsCompleted, batch: nextBatch },
      optimizerSteps: steps,
      trainSeconds: this.trainSeconds,
      history: this.history,
    };
    const path = await writeCheckpoint(this.ctx.workDir, state, trainer.model.getWeights(), moments);
    await this.ctx.report.checkpoint(path, epochsCompleted);
    await pruneCheckpoints(this.ctx.workDir, 2);
  }

  private async finalEval(
    trainer: StudentTrainer,
    sources: FineTuneSources,
    evalInput: BatchInputSpec,
    evalBatchSize: number,
    teacherTop1: number | undefined,
  ): Promise<EvalResult> {
    const epochs = this.spec.optimization.epochs;
    const last = this.history.evals[this.history.evals.length - 1];
    if (last !== undefined && last.epoch === epochs) return last;
    trainer.sync();
    const result = await evaluateStudent(trainer.model, sources.data.eval, {
      epoch: epochs,
      evalSetName: sources.data.evalSetName,
      inputSpec: evalInput,
      batchSize: evalBatchSize,
      signal: this.ctx.signal,
      ...(teacherTop1 !== undefined && { teacherTop1 }),
    });
    this.history.evals.push(result);
    this.ctx.report.eval(result);
    return result;
  }

  private async publish(
    registry: ModelRegistry,
    sources: FineTuneSources,
    trainer: StudentTrainer,
    finalEval: EvalResult,
    run: { backend: string; evalInput: BatchInputSpec },
  ): Promise<PublishedMarker> {
    const { spec, ctx } = this;
    const marker = await publishOnce({
      registry,
      model: spec.outputModel,
      jobId: ctx.jobId,
      workDir: ctx.workDir,
      finalEval,
      build: () =>
        buildVersionRequest({
          jobId: ctx.jobId,
          spec,
          sources,
          trainer,
          finalEval,
          history: this.history,
          backend: run.backend,
          evalInput: run.evalInput,
          exportCheckSamples: this.options.exportCheckSamples ?? 8,
          attempts: ctx.attempt,
          steps: this.globalStep,
          trainSeconds: this.trainSeconds,
        }),
      signal: ctx.signal,
      log: (m) => this.log(m),
      ...(this.options.publishHook !== undefined && { hook: this.options.publishHook }),
    });
    this.log(`published ${spec.outputModel}:${marker.version} (${describeEval(finalEval)})`);
    return marker;
  }
}

function lossPoint(
  p: { rows: number; total: number; base: number; distillation: number; lr: number; steps: number },
  epoch: number,
): LossPoint {
  return {
    epoch: Number(epoch.toFixed(4)),
    total: p.total / p.rows,
    base: p.base / p.rows,
    distillation: p.distillation / p.rows,
    lr: p.lr / p.steps,
  };
}

function describeEval(e: EvalResult): string {
  const pct = (v: number | undefined): string => (v === undefined ? '–' : `${(v * 100).toFixed(2)}%`);
  return (
    `top-1 cls ${pct(e.cls?.top1)} dist ${pct(e.dist?.top1)} avg ${pct(e.average?.top1)}` +
    (e.teacherTop1 === undefined ? '' : `, teacher ${pct(e.teacherTop1)}`) +
    (e.clsDistAgreement === undefined ? '' : `, heads agree ${pct(e.clsDistAgreement)}`) +
    ` on ${e.images} images`
  );
}

function describeReason(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
