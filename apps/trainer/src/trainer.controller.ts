import type { Metadata } from '@grpc/grpc-js';
import { Controller, Inject, Logger } from '@nestjs/common';
import { PermissionDeniedError } from '@deit-serve/core';
import type { ProtectedAliases } from '@deit-serve/finetune';
import { callerOf } from '@deit-serve/grpc-server';
import { trainerV1 } from '@deit-serve/proto';
import {
  FINE_TUNE_JOB_KIND,
  type FineTuneJobSpec,
  type FineTuneResult,
  fromProtoJobState,
  type JobExecutor,
  JobStore,
  InvalidSpecError,
  PathNotAllowedError,
  PathSandbox,
  toProtoEvents,
  toProtoJob,
  runSpecChecks,
  type SpecCheck,
  validateFineTuneSpec,
  watchJob$,
  type JobRecord,
} from '@deit-serve/trainer-engine';
import { concatMap, type Observable } from 'rxjs';
import { JOB_EXECUTOR, PROTECTED_ALIASES, SPEC_CHECKS, SPEC_OPTIONS, type SpecOptions } from './tokens';

type FineTuneJob = JobRecord<FineTuneJobSpec, FineTuneResult>;

@Controller()
@trainerV1.TrainerServiceControllerMethods()
export class TrainerController implements trainerV1.TrainerServiceController {
  private readonly logger = new Logger('TrainerController');

  constructor(
    private readonly store: JobStore,
    @Inject(JOB_EXECUTOR) private readonly runner: JobExecutor,
    private readonly sandbox: PathSandbox,
    @Inject(SPEC_OPTIONS) private readonly specOptions: SpecOptions,
    @Inject(SPEC_CHECKS) private readonly checks: readonly SpecCheck[],
    @Inject(PROTECTED_ALIASES) private readonly protectedAliases: ProtectedAliases,
  ) {}

  async startFineTune(
    request: trainerV1.StartFineTuneRequest,
    metadata?: Metadata,
  ): Promise<trainerV1.StartFineTuneResponse> {
    // Only cheap checks before queueing, every bad field reported at once (INVALID_ARGUMENT): the
    // spec's form, whether its paths lie inside the data roots (PERMISSION_DENIED), whether the
    // registry refs it names resolve, whether the caller may promote where it asks (protected
    // aliases: PERMISSION_DENIED). Reading the data set and the models is the job's: a bad one fails
    // the job, its problems in the error GetJob and WatchJob show. Refusals are logged: they may be
    // probes.
    let spec: FineTuneJobSpec;
    try {
      spec = validateFineTuneSpec(request.spec ?? null, this.specOptions);
      await this.sandbox.assertSpecAllowed(spec);
      await runSpecChecks(spec, this.checks);
      // The caller's role travels with the job, which judges the promotion when it ends.
      const guard = await this.protectedAliases.guardFor(spec, callerOf(metadata));
      if (guard !== undefined && spec.promotion !== undefined) {
        spec = { ...spec, promotion: { ...spec.promotion, guard } };
      }
    } catch (error) {
      this.logRefusal(request.requestId, error);
      throw error;
    }
    const { job } = this.store.create({ kind: FINE_TUNE_JOB_KIND, spec, requestId: request.requestId });
    return { job: toProtoJob(job as FineTuneJob) };
  }

  private logRefusal(requestId: string, error: unknown): void {
    const id = requestId === '' ? '' : ` (request ${JSON.stringify(requestId)})`;
    if (error instanceof PathNotAllowedError) {
      const where = error.denials
        .map((d) => `${d.field} ${JSON.stringify(d.path)} → ${d.resolved}`)
        .join('; ');
      this.logger.warn(`StartFineTune${id} refused, paths outside the data roots: ${where}`);
    } else if (error instanceof InvalidSpecError || error instanceof PermissionDeniedError) {
      this.logger.warn(`StartFineTune${id} refused: ${error.message}`);
    }
  }

  getJob(request: trainerV1.GetJobRequest): trainerV1.GetJobResponse {
    return { job: toProtoJob(this.store.get<FineTuneJobSpec, FineTuneResult>(request.jobId)) };
  }

  listJobs(request: trainerV1.ListJobsRequest): trainerV1.ListJobsResponse {
    const { jobs, nextPageToken } = this.store.list({
      states: request.states.map(fromProtoJobState),
      pageSize: request.pageSize,
      pageToken: request.pageToken,
    });
    return { jobs: jobs.map((j) => toProtoJob(j as FineTuneJob)), nextPageToken };
  }

  watchJob(request: trainerV1.WatchJobRequest): Observable<trainerV1.WatchJobResponse> {
    this.store.get(request.jobId); // NOT_FOUND up front rather than an empty stream
    return watchJob$(this.store, request.jobId).pipe(
      concatMap((event) => toProtoEvents(event).map((wire) => ({ event: wire }))),
    );
  }

  cancelJob(request: trainerV1.CancelJobRequest): trainerV1.CancelJobResponse {
    return { job: toProtoJob(this.runner.cancel(request.jobId) as FineTuneJob) };
  }
}
