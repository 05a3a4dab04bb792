/**
 * The training phase of a fine-tune job: the student trainer (started fresh or from the checkpoint
 * the runner hands back), the epochs with the DeiT distillation loss on the teacher's logits for the
 * same augmented batch, warm-up + cosine learning rate per step, an evaluation every
 * `evalIntervalEpochs`, and a checkpoint after every epoch and whenever the job is asked to stop.
 */
import { join } from 'node:path';
import { batchCount, trainBatches } from '@deit-serve/datasets';
import { deriveSeed, writeSafetensors } from '@deit-serve/model';
import {
  JobAbortedError,
  type EvalResult,
  type FineTuneJobSpec,
  type JobContext,
  type LossParts,
} from '@deit-serve/trainer-engine';
import { cosineLr, perStep, type BatchArray } from '@deit-serve/training';
import {
  checkpointOptimizer,
  CHECKPOINT_FORMAT,
  optimizerSnapshot,
  pruneCheckpoints,
  readCheckpoint,
  writeCheckpoint,
  writeFileAtomic,
  type Checkpoint,
  type CheckpointState,
  type LossPoint,
  type TrainingHistory,
} from './checkpoint';
import { evaluateStudent } from './evaluate';
import type { FineTuneJobOptions } from './fine-tune-job';
import type { PreparedRun } from './prepare-phase';
import { augmentOptions, specHash } from './run-spec';
import { createStudentTrainer, type StudentTrainer } from './student-trainer';

const START_WEIGHTS = 'student-start.safetensors';
/** Checkpoints kept in the job's folder. */
const KEPT_CHECKPOINTS = 2;

/** What the run has done so far; restored from a checkpoint on resume. */
export interface TrainingState {
  readonly history: TrainingHistory;
  trainSeconds: number;
  globalStep: number;
}

export function freshTrainingState(): TrainingState {
  return { history: { losses: [], evals: [] }, trainSeconds: 0, globalStep: 0 };
}

/** A training run under way: its trainer, what it started from and where it stands. */
export interface TrainingRun {
  readonly ctx: JobContext<FineTuneJobSpec>;
  readonly prepared: PreparedRun;
  readonly trainer: StudentTrainer;
  readonly state: TrainingState;
  /** Epochs completed before this attempt. */
  readonly epochsDone: number;
  /** The batch of epoch `epochsDone` this attempt starts at. */
  readonly startBatch: number;
}

/**
 * Creates the student trainer, from the job's checkpoint when it resumes (refused when the checkpoint
 * was written for another spec). The trainer's close is pushed onto `cleanups`.
 */
export async function startTraining(
  ctx: JobContext<FineTuneJobSpec>,
  options: FineTuneJobOptions,
  prepared: PreparedRun,
  cleanups: Array<() => Promise<void>>,
): Promise<TrainingRun> {
  const { spec } = ctx;
  const log = (message: string): void => ctx.report.log(message);
  const { student, data } = prepared.sources;
  const checkpoint = await readResumePoint(ctx);
  const weightsPath = join(ctx.workDir, START_WEIGHTS);
  await writeFileAtomic(weightsPath, writeSafetensors(checkpoint?.weights ?? student.weights));
  const epochsDone = checkpoint?.state.epochsCompleted ?? 0;
  const startBatch = checkpoint?.state.nextBatch ?? 0;
  const { optimization: opt, distillation } = spec;
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
    backend: prepared.backend,
    parallelism: options.parallelism ?? 'auto',
    ...(options.microBatchSize !== undefined && { microBatchSize: options.microBatchSize }),
    ...(options.taskModule !== undefined && { taskModule: options.taskModule }),
    log,
  });
  cleanups.push(() => trainer.close());
  log(trainingLine(student.description, prepared.backendDescription, trainer, opt.batchSize));
  const state = freshTrainingState();
  if (checkpoint !== undefined) {
    trainer.restoreOptimizer(checkpointOptimizer(checkpoint));
    state.history.losses.push(...checkpoint.state.history.losses);
    state.history.evals.push(...checkpoint.state.history.evals);
    state.trainSeconds = checkpoint.state.trainSeconds;
    state.globalStep = checkpoint.state.globalStep;
    log(
      `resumed from ${ctx.resumeFrom?.path ?? 'checkpoint'}: epoch ${epochsDone + 1}` +
        (startBatch > 0 ? `, batch ${startBatch + 1}` : ''),
    );
  }
  return { ctx, prepared, trainer, state, epochsDone, startBatch };
}

/**
 * The log line that starts training: what trains, on what (the backend's own description, so a
 * native backend is not called "one thread"), how it is split and the peak learning rate.
 */
export function trainingLine(
  student: string,
  backend: string,
  trainer: Pick<StudentTrainer, 'kind' | 'workers' | 'microBatchSize'> & {
    readonly optimizer: { readonly lr: number };
  },
  batchSize: number,
): string {
  return (
    `training ${student} on ${backend}` +
    (trainer.kind === 'data-parallel' ? `, data-parallel across ${trainer.workers} workers` : '') +
    `, batch ${batchSize} in passes of ≤ ${trainer.microBatchSize} rows, ${trainer.optimizer.lr.toExponential(2)} peak lr`
  );
}

async function readResumePoint(ctx: JobContext<FineTuneJobSpec>): Promise<Checkpoint | undefined> {
  const resume = ctx.resumeFrom;
  if (resume === undefined) return undefined;
  const checkpoint = await readCheckpoint(resume.path);
  if (checkpoint.state.specHash !== specHash(ctx.spec)) {
    throw new Error(`checkpoint ${resume.path} was written for another spec; refusing to resume from it`);
  }
  return checkpoint;
}

/**
 * Trains the remaining epochs. Asked to stop, it checkpoints where it is and throws the signal's
 * reason; a loss that is not finite fails the job.
 */
export async function trainEpochs(run: TrainingRun, options: FineTuneJobOptions): Promise<void> {
  const { ctx, trainer, state, prepared } = run;
  const { spec, signal } = ctx;
  const log = (message: string): void => ctx.report.log(message);
  const opt = spec.optimization;
  const { train, labelNames } = prepared.sources.data;
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
  const { teacher, evalInput } = prepared;
  const wantTeacher = spec.distillation.type !== 'none';
  const pointsPerEpoch = Math.max(1, Math.min(20, Math.ceil(400 / opt.epochs), stepsPerEpoch));
  const stepsPerPoint = Math.ceil(stepsPerEpoch / pointsPerEpoch);
  const progressInterval = options.progressIntervalMs ?? 1000;
  const totalSteps = stepsPerEpoch * opt.epochs;
  let lastProgress = -Infinity;
  let attemptImages = 0;
  let attemptSeconds = 0;
  let attemptSteps = 0;

  const stop = async (epochsCompleted: number, nextBatch: number): Promise<never> => {
    trainer.sync();
    await writeTrainingCheckpoint(run, epochsCompleted, nextBatch);
    // Only a shutdown resumes (the job goes back to the queue); a cancelled or timed-out job ends here.
    const resumes = signal.reason instanceof JobAbortedError && signal.reason.reason === 'shutdown';
    const at = `epoch ${epochsCompleted + 1}, batch ${nextBatch + 1}`;
    log(
      `stopped (${describeReason(signal.reason)}); checkpoint written` +
        (resumes
          ? `, resuming at ${at} when the trainer restarts`
          : ` before ${at}; this job does not resume`),
    );
    throw signal.reason;
  };

  for (let epoch = run.epochsDone; epoch < opt.epochs; epoch++) {
    const point = emptyPoint();
    const batches = trainBatches(train, {
      batchSize: opt.batchSize,
      seed: spec.seed,
      epoch,
      inputSpec: { imageSize: evalInput.imageSize, mean: evalInput.mean, std: evalInput.std },
      augment,
      startBatch: epoch === run.epochsDone ? run.startBatch : 0,
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
      const lr = cosineLr(state.globalStep, schedule);
      const result = await trainer.step(host, lr);
      const seconds = (performance.now() - t0) / 1000;
      state.globalStep++;
      state.trainSeconds += seconds;
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
        state.history.losses.push(lossPoint(point, epoch + (batch.index + 1) / stepsPerEpoch));
        Object.assign(point, emptyPoint());
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
          etaSeconds: Math.max(0, totalSteps - state.globalStep) * perStepSeconds,
        });
      }
    }

    trainer.sync();
    const epochsCompleted = epoch + 1;
    if (epochsCompleted % spec.evalIntervalEpochs === 0 || epochsCompleted === opt.epochs) {
      try {
        const result = await evaluate(run, epochsCompleted);
        log(`epoch ${epochsCompleted}: ${describeEval(result)}`);
      } catch (error) {
        if (signal.aborted) await stop(epochsCompleted, 0);
        throw error;
      }
    }
    await writeTrainingCheckpoint(run, epochsCompleted, 0);
  }
  if (attemptSteps > 0) {
    log(
      `trained ${attemptSteps} steps in ${attemptSeconds.toFixed(1)} s: ${(attemptImages / attemptSeconds).toFixed(1)} images/s ` +
        `(${trainer.kind}, ${trainer.workers} worker${trainer.workers === 1 ? '' : 's'})`,
    );
  }
}

/** The evaluation after the last epoch: the one training recorded, or a new one. */
export async function finalEval(run: TrainingRun): Promise<EvalResult> {
  const epochs = run.ctx.spec.optimization.epochs;
  const evals = run.state.history.evals;
  const last = evals[evals.length - 1];
  if (last !== undefined && last.epoch === epochs) return last;
  run.trainer.sync();
  return evaluate(run, epochs);
}

/** Evaluates the (synced) student, records the result in the history and reports it. */
async function evaluate(run: TrainingRun, epoch: number): Promise<EvalResult> {
  const { prepared, ctx } = run;
  const result = await evaluateStudent(run.trainer.model, prepared.sources.data.eval, {
    epoch,
    evalSetName: prepared.sources.data.evalSetName,
    inputSpec: prepared.evalInput,
    batchSize: prepared.evalBatchSize,
    signal: ctx.signal,
    ...(prepared.teacherTop1 !== undefined && { teacherTop1: prepared.teacherTop1 }),
  });
  run.state.history.evals.push(result);
  ctx.report.eval(result);
  return result;
}

async function writeTrainingCheckpoint(
  run: TrainingRun,
  epochsCompleted: number,
  nextBatch: number,
): Promise<void> {
  const { ctx, trainer, state } = run;
  const { moments, steps } = optimizerSnapshot(trainer.optimizer);
  const checkpointState: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    specHash: specHash(ctx.spec),
    epochsCompleted,
    nextBatch,
    globalStep: state.globalStep,
    rng: { seed: ctx.spec.seed, epoch: epochsCompleted, batch: nextBatch },
    optimizerSteps: steps,
    trainSeconds: state.trainSeconds,
    history: state.history,
  };
  const path = await writeCheckpoint(ctx.workDir, checkpointState, trainer.model.getWeights(), moments);
  await ctx.report.checkpoint(path, epochsCompleted);
  await pruneCheckpoints(ctx.workDir, KEPT_CHECKPOINTS);
}

interface PointSums {
  rows: number;
  total: number;
  base: number;
  distillation: number;
  lr: number;
  steps: number;
}

function emptyPoint(): PointSums {
  return { rows: 0, total: 0, base: 0, distillation: 0, lr: 0, steps: 0 };
}

function lossPoint(p: PointSums, epoch: number): LossPoint {
  return {
    epoch: Number(epoch.toFixed(4)),
    total: p.total / p.rows,
    base: p.base / p.rows,
    distillation: p.distillation / p.rows,
    lr: p.lr / p.steps,
  };
}

/** One evaluation for the job's log: top-1 of each head, the teacher's, head agreement. */
export function describeEval(e: EvalResult): string {
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
