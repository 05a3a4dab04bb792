/**
 * Domain ↔ `deit.trainer.v1` messages, for the gRPC controller and the CLI. The spec goes back out
 * fully explicit (every default filled in), so GetJob shows exactly what a job runs with.
 */
import { InvalidArgumentError } from '@deit-serve/core';
import { trainerV1 } from '@deit-serve/proto';
import type {
  EvalResult,
  FineTuneResult,
  HeadAccuracy,
  JobEvent,
  JobProgress,
  JobRecord,
  JobState,
} from './job';
import type { CropMode, FineTuneJobSpec } from './spec';

const STATE_TO_PROTO: Readonly<Record<JobState, trainerV1.JobState>> = {
  QUEUED: trainerV1.JobState.JOB_STATE_QUEUED,
  RUNNING: trainerV1.JobState.JOB_STATE_RUNNING,
  CANCELLING: trainerV1.JobState.JOB_STATE_CANCELLING,
  SUCCEEDED: trainerV1.JobState.JOB_STATE_SUCCEEDED,
  FAILED: trainerV1.JobState.JOB_STATE_FAILED,
  CANCELLED: trainerV1.JobState.JOB_STATE_CANCELLED,
};

export function toProtoJobState(state: JobState): trainerV1.JobState {
  return STATE_TO_PROTO[state];
}

/** For ListJobs filters; UNSPECIFIED and unknown values are INVALID_ARGUMENT. */
export function fromProtoJobState(state: trainerV1.JobState): JobState {
  const found = (Object.keys(STATE_TO_PROTO) as JobState[]).find((s) => STATE_TO_PROTO[s] === state);
  if (found === undefined)
    throw new InvalidArgumentError(`states: ${String(state)} is not a job state to filter on`);
  return found;
}

export function toProtoProgress(progress: JobProgress): trainerV1.Progress {
  return {
    epoch: progress.epoch,
    epochs: progress.epochs,
    step: progress.step,
    stepsPerEpoch: progress.stepsPerEpoch,
    loss: progress.loss && { ...progress.loss },
    learningRate: progress.learningRate ?? 0,
    imagesPerSecond: progress.imagesPerSecond ?? 0,
    etaSeconds: progress.etaSeconds ?? 0,
  };
}

function head(accuracy: HeadAccuracy | undefined): trainerV1.HeadAccuracy | undefined {
  return accuracy && { top1: accuracy.top1, top5: accuracy.top5 };
}

export function toProtoEval(result: EvalResult): trainerV1.EvalResult {
  return {
    epoch: result.epoch,
    dataset: result.dataset,
    images: result.images,
    cls: head(result.cls),
    dist: head(result.dist),
    average: head(result.average),
    teacherTop1: result.teacherTop1 ?? 0,
    clsDistAgreement: result.clsDistAgreement ?? 0,
  };
}

export function toProtoResult(result: FineTuneResult): trainerV1.JobResult {
  return {
    model: result.model,
    version: result.version,
    sha256: result.sha256,
    finalEval: result.finalEval && toProtoEval(result.finalEval),
    promoted: result.promoted,
    promotionReason: result.promotionReason,
  };
}

export function toProtoJob(job: JobRecord<FineTuneJobSpec, FineTuneResult>): trainerV1.Job {
  return {
    id: job.id,
    spec: toProtoSpec(job.spec),
    state: toProtoJobState(job.state),
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    progress: job.progress && toProtoProgress(job.progress),
    error: job.error ?? '',
    result: job.result && toProtoResult(job.result),
    resumes: job.resumes,
    backend: job.backend ?? '',
  };
}

/**
 * The wire events of one job event. JobEvent.state has no error field, so a state event that carries
 * one (FAILED: why) goes out as a message with the error, then the state: a watcher learns why as
 * GetJob's `error` says it.
 */
export function toProtoEvents(event: JobEvent): trainerV1.JobEvent[] {
  const { body } = event;
  if (body.type !== 'state' || body.error === undefined) return [toProtoEvent(event)];
  return [
    toProtoEvent({
      ...event,
      body: { type: 'message', message: `${body.state.toLowerCase()}: ${body.error}` },
    }),
    toProtoEvent(event),
  ];
}

export function toProtoEvent(event: JobEvent): trainerV1.JobEvent {
  const base = { jobId: event.jobId, time: event.time };
  const body = event.body;
  switch (body.type) {
    case 'state':
      return { ...base, state: toProtoJobState(body.state) };
    case 'progress':
      return { ...base, progress: toProtoProgress(body.progress) };
    case 'eval':
      return { ...base, eval: toProtoEval(body.eval) };
    case 'message':
      return { ...base, message: body.message };
  }
}

const CROP_TO_PROTO: Readonly<Record<CropMode, trainerV1.CropMode>> = {
  none: trainerV1.CropMode.CROP_MODE_NONE,
  'random-resized': trainerV1.CropMode.CROP_MODE_RANDOM_RESIZED,
  padded: trainerV1.CropMode.CROP_MODE_PADDED,
};

/** The inverse of validateFineTuneSpec, explicit: validating the result gives `spec` back. */
export function toProtoSpec(spec: FineTuneJobSpec): trainerV1.FineTuneSpec {
  const { student, teacher, dataset, distillation: d, optimization: o, augmentation: a } = spec;
  return {
    outputModel: spec.outputModel,
    student:
      student.kind === 'registry'
        ? { registryRef: student.ref }
        : student.kind === 'safetensors'
          ? { safetensors: { path: student.path, preset: student.preset } }
          : { preset: student.preset },
    teacher:
      teacher && (teacher.kind === 'registry' ? { registryRef: teacher.ref } : { onnxPath: teacher.path }),
    dataset: {
      ...(dataset.source.kind === 'fashion-mnist'
        ? { fashionMnist: { dir: dataset.source.dir, evalOnTest: dataset.source.evalOnTest } }
        : { imageFolder: { trainDir: dataset.source.trainDir, valDir: dataset.source.valDir ?? '' } }),
      validationFraction: dataset.validationFraction,
      maxTrainImages: dataset.maxTrainImages ?? 0,
      maxEvalImages: dataset.maxEvalImages ?? 0,
    },
    distillation: {
      type:
        d.type === 'none'
          ? trainerV1.DistillationType.DISTILLATION_TYPE_NONE
          : d.type === 'soft'
            ? trainerV1.DistillationType.DISTILLATION_TYPE_SOFT
            : trainerV1.DistillationType.DISTILLATION_TYPE_HARD,
      alpha: d.alpha,
      tau: d.tau,
      softNormalization:
        d.softNormalization === 'numel'
          ? trainerV1.SoftNormalization.SOFT_NORMALIZATION_NUMEL
          : trainerV1.SoftNormalization.SOFT_NORMALIZATION_BATCHMEAN,
    },
    optimization: {
      epochs: o.epochs,
      batchSize: o.batchSize,
      lr: o.baseLr,
      lrFixed: o.lrFixed,
      weightDecay: o.weightDecay,
      warmupEpochs: o.warmupEpochs,
      warmupLr: o.warmupLr,
      minLr: o.minLr,
      labelSmoothing: o.labelSmoothing,
      dropPath: o.dropPath,
    },
    augmentation: {
      crop: CROP_TO_PROTO[a.crop],
      padding: a.padding,
      horizontalFlip: a.horizontalFlip,
      randomErasing: a.randomErasing,
      mixupAlpha: a.mixupAlpha,
      cutmixAlpha: a.cutmixAlpha,
    },
    seed: spec.seed,
    trainable: spec.trainable.kind === 'all' ? { all: true } : { lastBlocks: spec.trainable.blocks },
    evalIntervalEpochs: spec.evalIntervalEpochs,
    promotion: { alias: spec.promotion?.alias ?? '', minImprovement: spec.promotion?.minImprovement ?? 0 },
  };
}
