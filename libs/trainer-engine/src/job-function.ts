/**
 * The pluggable part of a job: a function that runs in a worker process, reports what it does, and
 * checkpoints so that it can be resumed. The runner owns everything else (state, persistence,
 * concurrency, cancellation, recovery).
 */
import type { EvalResult, JobProgress } from './job';

export type JobAbortReason = 'cancel' | 'shutdown' | 'timeout';

const ABORT_MESSAGES: Record<JobAbortReason, string> = {
  cancel: 'job cancelled',
  shutdown: 'trainer shutting down',
  timeout: 'job ran past its wall-time limit',
};

/**
 * `ctx.signal.reason` once the job is asked to stop: `cancel` (a user cancelled it), `shutdown` (the
 * trainer is stopping and will resume it later) or `timeout` (it ran past its wall-time limit and
 * will be failed). Either way: write a checkpoint, then throw.
 */
export class JobAbortedError extends Error {
  constructor(readonly reason: JobAbortReason) {
    super(ABORT_MESSAGES[reason]);
    this.name = 'JobAbortedError';
  }
}

export interface JobReporter {
  /** Often (every step is fine): the runner keeps the latest and stores at most about one a second. */
  progress(progress: JobProgress): void;
  eval(result: EvalResult): void;
  /**
   * Call once the checkpoint is durably on disk (written, fsynced, renamed into place). Resolves when
   * the runner has recorded it: a restart after that resumes from it. `epoch`: epochs completed.
   */
  checkpoint(path: string, epoch: number): Promise<void>;
  /** A line for humans, stored as a message event. */
  log(message: string): void;
  /** The training backend in use (e.g. `wasm`), recorded on the job. */
  backend(name: string): void;
}

export interface ResumePoint {
  readonly path: string;
  /** Epochs completed when the checkpoint was written. */
  readonly epoch: number;
}

export interface JobContext<Spec = unknown> {
  readonly jobId: string;
  readonly spec: Spec;
  /** A folder of this job's own (`<work dir>/jobs/<job id>`), kept across resumes. */
  readonly workDir: string;
  /** The last recorded checkpoint when the job was started before (crash, shutdown). */
  readonly resumeFrom?: ResumePoint;
  /** 1 on the first start, then 2, 3... on each resume. */
  readonly attempt: number;
  /** Aborted with a {@link JobAbortedError} when the job must stop. */
  readonly signal: AbortSignal;
  /**
   * The configuration registered with the job kind ({@link JobKind.config}), as JSON: a worker process
   * gets the service's settings from it rather than from its environment.
   */
  readonly config?: unknown;
  readonly report: JobReporter;
}

/** Resolves with the job's result (JSON); rejects to fail it (or, once aborted, to stop it). */
export type JobFunction<Spec = unknown, Result = unknown> = (ctx: JobContext<Spec>) => Promise<Result>;

/** Where a worker finds a job kind's function: a CommonJS module and the name it is exported under. */
export interface JobKind {
  /** Absolute path, loaded with `require` inside the worker. */
  readonly module: string;
  /** Default: `default`. */
  readonly export?: string;
  /** Handed to the function as `ctx.config` (sent to the worker as JSON). */
  readonly config?: unknown;
}

/** Job kind name (as stored on each job) → its function. The trainer registers `fine-tune`. */
export type JobKinds = Readonly<Record<string, JobKind>>;

export const FINE_TUNE_JOB_KIND = 'fine-tune';
