/**
 * Job mode: runs each queued job as a Kubernetes batch/v1 Job (its own pod, resources and retries)
 * instead of a worker process of the trainer. The SQLite store stays the source of truth: the runner
 * claims a job, writes what to run into the job's folder on the shared work volume (job-files.ts),
 * creates the Job under a name derived from the job id (so creating it again is a conflict, never a
 * second run), then on each poll tails the folder's event file into the store and maps the Job's
 * status to the job's state. Cancel deletes the Job. A trainer that stops leaves the Jobs running; the
 * next one (same owner: one trainer per namespace) takes them up where the event file says.
 */
import { FailedPreconditionError, NotFoundError } from '@deit-serve/core';
import {
  buildFineTuneJob,
  deleteFineTuneJob,
  fineTuneJobLabelValue,
  fineTuneJobName,
  fineTuneJobPhase,
  FINETUNE_LABELS,
  httpStatus,
  listFineTuneJobs,
  submitFineTuneJob,
  type BatchJobsApi,
  type FineTuneJobOptions,
  type JobView,
} from '@deit-serve/k8s-jobs';
import { join } from 'node:path';
import { FINE_TUNE_JOB_KIND } from './job-function';
import { type JobProgress, type JobRecord, isTerminal } from './job';
import {
  EVENTS_FILE,
  EventFileTail,
  JOB_FILE,
  jobFolder,
  readEventsOffset,
  writeEventsOffset,
  writeJobFile,
  type JobFileRecord,
} from './job-files';
import { JOB_RUNNER_DEFAULTS, type RunnerLogger } from './job-runner';
import type { JobStore } from './job-store';

export const KUBERNETES_RUNNER_DEFAULTS = {
  /** One list call per poll for all Jobs, and a read of each running job's event file. */
  pollIntervalMs: 2000,
  /**
   * A Job that completed but whose `done` record is not visible yet (network file systems show other
   * clients' writes late) is given this long before the job is failed for want of a result.
   */
  resultGraceMs: 30_000,
} as const;

export interface KubernetesRunnerOptions {
  readonly store: JobStore;
  readonly api: BatchJobsApi;
  readonly namespace: string;
  /** Everything of the Job but the job id and namespace: image, claims, service account, env... */
  readonly job: Omit<FineTuneJobOptions, 'jobId' | 'namespace'>;
  /** The shared work volume as the trainer mounts it; the pods see it at the Job's work mount. */
  readonly workDir: string;
  /** Job kinds run as Jobs (the image's entry point must know them); default: `fine-tune`. */
  readonly kinds?: readonly string[];
  /** Jobs at once (Kubernetes Jobs existing for RUNNING jobs); more wait queued. */
  readonly maxConcurrentJobs?: number;
  readonly pollIntervalMs?: number;
  readonly leaseMs?: number;
  readonly progressIntervalMs?: number;
  readonly resultGraceMs?: number;
  /** Default `kubernetes/<namespace>`: the same for every trainer of the namespace, so a restart adopts the jobs. */
  readonly owner?: string;
  readonly logger?: RunnerLogger;
}

interface Tracked {
  readonly id: string;
  readonly name: string;
  readonly dir: string;
  readonly tail: EventFileTail;
  savedOffset: number;
  /** The Job must be (re)created: just claimed, or taken over from a trainer that may have died first. */
  create: boolean;
  done?: Extract<JobFileRecord, { type: 'done' }>;
  /** The last attempt's failure (reset when a pod starts another attempt). */
  failure?: Extract<JobFileRecord, { type: 'failed' }>;
  failedPods: number;
  pendingProgress?: JobProgress;
  storedEpoch?: number;
  progressStoredAt: number;
  completedAt?: number;
  deleted: boolean;
}

const ignore = (): void => undefined;
const SILENT_LOGGER: RunnerLogger = { log: ignore, warn: ignore, error: ignore };

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Refusals that a retry of the same request cannot turn around (409 is success, 429 is a retry). */
function refused(error: unknown): boolean {
  const status = httpStatus(error);
  return status !== undefined && status >= 400 && status < 500 && status !== 409 && status !== 429;
}

export class KubernetesJobRunner {
  readonly owner: string;
  private readonly tracked = new Map<string, Tracked>();
  private readonly kinds: readonly string[];
  private readonly maxConcurrent: number;
  private readonly pollIntervalMs: number;
  private readonly leaseMs: number;
  private readonly progressIntervalMs: number;
  private readonly resultGraceMs: number;
  private readonly logger: RunnerLogger;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private pass: Promise<void> = Promise.resolve();
  private queued?: Promise<void>;
  private lastLeaseRenewal = 0;
  private started = false;
  private stopping = false;

  constructor(private readonly options: KubernetesRunnerOptions) {
    this.owner = options.owner ?? `kubernetes/${options.namespace}`;
    this.kinds = options.kinds ?? [FINE_TUNE_JOB_KIND];
    this.maxConcurrent = options.maxConcurrentJobs ?? JOB_RUNNER_DEFAULTS.maxConcurrentJobs;
    this.pollIntervalMs = options.pollIntervalMs ?? KUBERNETES_RUNNER_DEFAULTS.pollIntervalMs;
    this.leaseMs = options.leaseMs ?? JOB_RUNNER_DEFAULTS.leaseMs;
    this.progressIntervalMs = options.progressIntervalMs ?? JOB_RUNNER_DEFAULTS.progressIntervalMs;
    this.resultGraceMs = options.resultGraceMs ?? KUBERNETES_RUNNER_DEFAULTS.resultGraceMs;
    this.logger = options.logger ?? SILENT_LOGGER;
    if (!Number.isSafeInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new RangeError(`maxConcurrentJobs must be a positive integer, got ${this.maxConcurrent}`);
    }
    // Fails now, not at the first job, when the configuration cannot make a valid Job.
    buildFineTuneJob({ ...options.job, jobId: 'check', namespace: options.namespace });
  }

  /** Takes up the jobs this owner holds (their Jobs keep running across trainer restarts), then polls. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.unsubscribe = this.options.store.subscribe((change) => {
      if (change.type === 'created') void this.poll();
    });
    this.timer = setInterval(() => void this.poll(), this.pollIntervalMs);
    this.timer.unref();
    void this.poll();
  }

  /** Ids of the jobs whose Kubernetes Jobs this runner follows. */
  runningJobs(): string[] {
    return [...this.tracked.keys()];
  }

  /**
   * One reconciliation pass: recover jobs of runners that are gone, take up this owner's jobs, start
   * queued jobs while there is room, read the event files and the Jobs' status into the store. Passes
   * never overlap; a call while one runs returns the pass queued after it. Never rejects.
   */
  poll(): Promise<void> {
    this.queued ??= this.pass.then(async () => {
      this.queued = undefined;
      if (this.stopping) return;
      try {
        await this.reconcile();
      } catch (error) {
        this.logger.error(`kubernetes runner poll failed: ${describeError(error)}`);
      }
    });
    this.pass = this.queued;
    return this.queued;
  }

  /**
   * QUEUED → CANCELLED at once; RUNNING → CANCELLING, then the next pass deletes the Job (its pod gets
   * SIGTERM and checkpoints) → CANCELLED. A job that finished first keeps its outcome.
   */
  cancel(jobId: string): JobRecord {
    return this.options.store.requestCancel(jobId, () => {
      void this.poll();
    });
  }

  /**
   * Stops polling. The Jobs keep running and their pods keep writing; the next trainer takes them up
   * (nothing is re-queued: Kubernetes, not this process, runs them).
   */
  async stop(_options: { graceMs?: number } = {}): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.pass;
    this.stopping = true;
    await this.pass;
    if (this.tracked.size > 0) {
      this.logger.log(`${this.tracked.size} Kubernetes Job(s) keep running; the next trainer follows them`);
    }
  }

  private async reconcile(): Promise<void> {
    const { store } = this.options;
    if (Date.now() - this.lastLeaseRenewal >= this.leaseMs / 3) {
      store.renewLeases(this.owner, this.leaseMs);
      this.lastLeaseRenewal = Date.now();
      this.recoverAbandoned();
    }
    for (const job of store.heldBy(this.owner)) {
      // Taken over from an earlier trainer: it may have died between claiming and creating the Job.
      if (!this.tracked.has(job.id)) this.track(job, true);
    }
    while (this.tracked.size < this.maxConcurrent) {
      const job = store.claimNext(this.owner, this.leaseMs, this.kinds);
      if (!job) break;
      this.track(job, false);
    }

    for (const tracked of this.tracked.values()) if (tracked.create) await this.create(tracked);

    let jobs: Map<string, JobView> | undefined;
    try {
      jobs =
        this.tracked.size > 0 ? await listFineTuneJobs(this.options.api, this.options.namespace) : new Map();
    } catch (error) {
      this.logger.warn(`could not list the fine-tune Jobs: ${describeError(error)}`);
    }
    for (const tracked of [...this.tracked.values()]) {
      try {
        await this.follow(tracked, jobs);
      } catch (error) {
        this.logger.error(`job ${tracked.id}: ${describeError(error)}`);
      }
    }
  }

  private track(job: JobRecord, takenOver: boolean): void {
    const dir = jobFolder(this.options.workDir, job.id);
    const offset = readEventsOffset(dir);
    this.tracked.set(job.id, {
      id: job.id,
      name: fineTuneJobName(job.id),
      dir,
      tail: new EventFileTail(join(dir, EVENTS_FILE), offset),
      savedOffset: offset,
      create: true,
      failedPods: 0,
      progressStoredAt: 0,
      deleted: false,
    });
    if (takenOver) this.logger.log(`job ${job.id}: following its Kubernetes Job ${fineTuneJobName(job.id)}`);
  }

  /**
   * Writes the job file for the pod, then creates the Job; a conflict means it exists already (a
   * restart): nothing is created twice. Both steps are idempotent, so a trainer that died anywhere
   * between claiming a job and creating its Job is simply repeated by the next one.
   */
  private async create(tracked: Tracked): Promise<void> {
    const { store } = this.options;
    // A job whose pod already recorded its result needs no Job any more (e.g. taken over after the
    // finished Job's TTL deleted it).
    this.readEvents(tracked);
    const job = store.get(tracked.id);
    if (job.state !== 'RUNNING' || tracked.done) {
      tracked.create = false;
      return;
    }
    try {
      writeJobFile(tracked.dir, { jobId: job.id, kind: job.kind, spec: job.spec });
    } catch (error) {
      this.finishTracked(tracked, 'FAILED', {
        error: `could not write ${join(tracked.dir, JOB_FILE)}: ${describeError(error)}`,
      });
      return;
    }
    try {
      const spec = buildFineTuneJob({
        ...this.options.job,
        jobId: tracked.id,
        namespace: this.options.namespace,
      });
      const submitted = await submitFineTuneJob(this.options.api, spec);
      tracked.create = false;
      if (submitted.created) {
        store.appendEvent(tracked.id, {
          type: 'message',
          message: `Kubernetes Job ${submitted.namespace}/${submitted.name} created`,
        });
        this.logger.log(`job ${tracked.id}: created Kubernetes Job ${submitted.namespace}/${submitted.name}`);
      }
    } catch (error) {
      if (!refused(error)) {
        this.logger.warn(
          `job ${tracked.id}: could not create its Kubernetes Job (will retry): ${describeError(error)}`,
        );
        return;
      }
      this.finishTracked(tracked, 'FAILED', {
        error: `Kubernetes refused the Job ${tracked.name}: ${describeError(error)}`,
      });
    }
  }

  /** Applies new event records, then the Job's status, to the store. */
  private async follow(tracked: Tracked, jobs: Map<string, JobView> | undefined): Promise<void> {
    const { store } = this.options;
    this.readEvents(tracked);
    const state = store.get(tracked.id).state;
    if (isTerminal(state) || (state !== 'RUNNING' && state !== 'CANCELLING')) {
      this.tracked.delete(tracked.id);
      return;
    }
    if (tracked.done) {
      // The result is on the volume: the pod is only exiting. A cancel that came too late changes nothing.
      this.finishTracked(tracked, 'SUCCEEDED', { result: tracked.done.result });
      return;
    }
    if (state === 'CANCELLING') {
      if (!tracked.deleted) {
        await deleteFineTuneJob(this.options.api, tracked.name, this.options.namespace);
        tracked.deleted = true;
      }
      this.finishTracked(tracked, 'CANCELLED', {
        message: `cancelled; Kubernetes Job ${tracked.name} deleted (its pod stops after a checkpoint)`,
      });
      return;
    }
    if (jobs === undefined || tracked.create) return; // status unknown this pass
    const view = jobs.get(tracked.name);
    if (view === undefined) {
      this.finishTracked(tracked, 'FAILED', {
        error:
          tracked.failure?.error ??
          `Kubernetes Job ${tracked.name} disappeared before the job finished (deleted outside the trainer?)`,
      });
      return;
    }
    const phase = fineTuneJobPhase(view);
    switch (phase.phase) {
      case 'pending':
      case 'running':
        if (phase.failedPods > tracked.failedPods) {
          store.appendEvent(tracked.id, {
            type: 'message',
            message: `pod failed (${phase.failedPods} so far); Kubernetes starts another, which resumes from the last checkpoint`,
          });
          tracked.failedPods = phase.failedPods;
        }
        return;
      case 'succeeded': {
        tracked.completedAt ??= Date.now();
        if (Date.now() - tracked.completedAt < this.resultGraceMs) return;
        this.finishTracked(tracked, 'FAILED', {
          error: `Kubernetes Job ${tracked.name} completed, but its pod recorded no result in ${join(tracked.dir, EVENTS_FILE)}`,
        });
        return;
      }
      case 'failed': {
        const label = `${FINETUNE_LABELS.jobId}=${fineTuneJobLabelValue(tracked.id)}`;
        const pod =
          tracked.failure?.error ??
          `its last pod ended without reporting an error (killed? see kubectl describe pods -l ${label})`;
        this.finishTracked(tracked, 'FAILED', {
          error: `${pod} [Kubernetes Job ${tracked.name}: ${phase.reason}${phase.message ? `: ${phase.message}` : ''}]`,
        });
        return;
      }
    }
  }

  private readEvents(tracked: Tracked): void {
    const { records, skipped } = tracked.tail.read();
    for (const line of skipped) {
      this.logger.warn(`job ${tracked.id}: skipped a line of its event file: ${line.slice(0, 200)}`);
    }
    for (const record of records) this.apply(tracked, record);
    this.flushProgress(tracked, true);
    if (tracked.tail.offset !== tracked.savedOffset) {
      writeEventsOffset(tracked.dir, tracked.tail.offset);
      tracked.savedOffset = tracked.tail.offset;
    }
  }

  private apply(tracked: Tracked, record: JobFileRecord): void {
    const { store } = this.options;
    const id = tracked.id;
    const message = (text: string): void => void store.appendEvent(id, { type: 'message', message: text });
    if (record.type !== 'progress') this.flushProgress(tracked, true);
    switch (record.type) {
      case 'start':
        tracked.failure = undefined;
        message(
          `pod ${record.pod ?? '?'} started attempt ${record.attempt}` +
            (record.resumeFrom ? `, resuming from the epoch ${record.resumeFrom.epoch} checkpoint` : ''),
        );
        return;
      case 'progress':
        tracked.pendingProgress = record.progress;
        this.flushProgress(tracked, false);
        return;
      case 'eval':
        store.appendEvent(id, { type: 'eval', eval: record.eval });
        return;
      case 'checkpoint':
        store.recordCheckpoint(id, record.epoch, record.path);
        message(`checkpoint written (epoch ${record.epoch})`);
        return;
      case 'log':
        message(record.message);
        return;
      case 'backend':
        store.setBackend(id, record.name);
        message(`training backend: ${record.name}`);
        return;
      case 'done':
        tracked.done = record;
        return;
      case 'failed':
        tracked.failure = record;
        message(
          `pod attempt failed: ${record.error}` +
            (record.permanent
              ? ' (permanent: no retry)'
              : '; Kubernetes retries it within the backoff limit'),
        );
        return;
      case 'stopped':
        message(`pod stopped (${record.reason}) after a checkpoint`);
        return;
    }
  }

  /** Stores the pending progress when forced, on a new epoch, or when the last one is old enough. */
  private flushProgress(tracked: Tracked, force: boolean): void {
    const progress = tracked.pendingProgress;
    if (!progress) return;
    const now = Date.now();
    if (
      !force &&
      progress.epoch === tracked.storedEpoch &&
      now - tracked.progressStoredAt < this.progressIntervalMs
    )
      return;
    this.options.store.setProgress(tracked.id, progress);
    tracked.pendingProgress = undefined;
    tracked.storedEpoch = progress.epoch;
    tracked.progressStoredAt = now;
  }

  private finishTracked(
    tracked: Tracked,
    to: 'SUCCEEDED' | 'FAILED' | 'CANCELLED',
    options: { error?: string; result?: unknown; message?: string },
  ): void {
    this.tracked.delete(tracked.id);
    try {
      this.options.store.transition(tracked.id, to, { expectOwner: this.owner, ...options });
      this.logger.log(`job ${tracked.id}: ${to}${options.error ? `: ${options.error}` : ''}`);
    } catch (error) {
      if (!(error instanceof FailedPreconditionError || error instanceof NotFoundError)) throw error;
    }
  }

  /** Re-queues RUNNING jobs (and ends CANCELLING ones) whose runner is gone: expired lease, or none. */
  private recoverAbandoned(): void {
    const { store } = this.options;
    const now = Date.now();
    for (const job of store.heldByOthers(this.owner)) {
      if (job.owner !== undefined && (job.leaseExpiresAt?.getTime() ?? 0) >= now) continue;
      const guard = job.owner === undefined ? {} : { expectOwner: job.owner };
      const from = `runner ${job.owner ?? '(none)'} is gone`;
      try {
        if (job.state === 'CANCELLING') {
          store.transition(job.id, 'CANCELLED', {
            ...guard,
            message: `${from}; the cancellation is complete`,
          });
        } else {
          store.transition(job.id, 'QUEUED', { ...guard, message: `${from}; re-queued` });
        }
        this.logger.warn(`job ${job.id}: ${from}; recovered`);
      } catch (error) {
        if (!(error instanceof FailedPreconditionError || error instanceof NotFoundError)) throw error;
      }
    }
  }
}
