import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@deit-serve/core';
import { trainerV1 } from '@deit-serve/proto';
import { PassThrough } from 'node:stream';
import { from, type Observable } from 'rxjs';

const { JobState } = trainerV1;

/** What the fake trainer received and will answer; tests reset and script it. */
export const trainer = {
  started: [] as trainerV1.StartFineTuneRequest[],
  listed: [] as trainerV1.ListJobsRequest[],
  jobs: new Map<string, trainerV1.Job>(),
  /** Events WatchJob streams, per job id. */
  events: new Map<string, trainerV1.JobEvent[]>(),
  reset() {
    this.started.length = 0;
    this.listed.length = 0;
    this.jobs.clear();
    this.events.clear();
  },
};

export function job(partial: Partial<trainerV1.Job> & { id: string }): trainerV1.Job {
  return {
    spec: undefined,
    state: JobState.JOB_STATE_QUEUED,
    createdAt: new Date('2025-01-02T03:04:05Z'),
    startedAt: undefined,
    finishedAt: undefined,
    progress: undefined,
    error: '',
    result: undefined,
    resumes: 0,
    backend: '',
    ...partial,
  };
}

export function progress(p: Partial<trainerV1.Progress>): trainerV1.Progress {
  return {
    epoch: 1,
    epochs: 2,
    step: 0,
    stepsPerEpoch: 10,
    loss: { total: 0.5, base: 0.4, distillation: 0.6 },
    learningRate: 1e-4,
    imagesPerSecond: 100,
    etaSeconds: 65,
    ...p,
  };
}

/** Answers like the trainer from the scripted state. */
@Controller()
@trainerV1.TrainerServiceControllerMethods()
export class FakeTrainerController implements trainerV1.TrainerServiceController {
  startFineTune(request: trainerV1.StartFineTuneRequest): trainerV1.StartFineTuneResponse {
    trainer.started.push(request);
    if (request.spec?.outputModel === 'bad')
      throw new InvalidArgumentError(
        'invalid fine-tune spec: output_model: "bad" is reserved; optimization.epochs: must be ≥ 1',
      );
    const id = `job-${trainer.started.length}`;
    const created = job({ id, spec: request.spec });
    if (!trainer.jobs.has(id)) trainer.jobs.set(id, created);
    return { job: created };
  }

  getJob(request: trainerV1.GetJobRequest): trainerV1.GetJobResponse {
    const found = trainer.jobs.get(request.jobId);
    if (!found) throw new NotFoundError(`no job ${request.jobId}`);
    return { job: found };
  }

  listJobs(request: trainerV1.ListJobsRequest): trainerV1.ListJobsResponse {
    trainer.listed.push(request);
    const jobs = [...trainer.jobs.values()].filter(
      (j) => request.states.length === 0 || request.states.includes(j.state),
    );
    return { jobs, nextPageToken: '' };
  }

  watchJob(request: trainerV1.WatchJobRequest): Observable<trainerV1.WatchJobResponse> {
    const events = trainer.events.get(request.jobId) ?? [];
    return from(events.map((event) => ({ event })));
  }

  cancelJob(request: trainerV1.CancelJobRequest): trainerV1.CancelJobResponse {
    const found = trainer.jobs.get(request.jobId);
    if (!found) throw new NotFoundError(`no job ${request.jobId}`);
    if (found.state === JobState.JOB_STATE_SUCCEEDED)
      throw new FailedPreconditionError(`job ${request.jobId} already ended (succeeded)`);
    const cancelling = { ...found, state: JobState.JOB_STATE_CANCELLING };
    trainer.jobs.set(found.id, cancelling);
    return { job: cancelling };
  }
}

export const fakeTrainerModule = () => ({
  module: class FakeTrainerModule {},
  controllers: [FakeTrainerController],
});

export function io(env: Record<string, string> = {}, tty = false) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (tty) (stdout as PassThrough & { isTTY?: boolean }).isTTY = true;
  const text = (s: PassThrough) => () => (s.read() as Buffer | null)?.toString() ?? '';
  return { io: { stdout, stderr, env }, out: text(stdout), err: text(stderr) };
}
