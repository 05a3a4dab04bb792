/**
 * Runs queued jobs, at most `maxConcurrentJobs` at once, each in its own worker process, and keeps the
 * store up to date with what the workers report. Survives its own death: a job left RUNNING by a runner
 * that is gone is re-queued by the next one and resumes from its last recorded checkpoint.
 */
import { FailedPreconditionError, NotFoundError } from '@deit-serve/core';
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { extname, join } from 'node:path';
import type { JobAbortReason, JobKinds, ResumePoint } from './job-function';
import type { JobProgress, JobRecord } from './job';
import type { JobStore } from './job-store';
import type { RunnerMessage, WorkerMessage } from './worker-protocol';

/** The worker entry next to this module: `worker.js` in a build, `worker.ts` from sources (needs a register hook). */
export const WORKER_ENTRY = join(__dirname, `worker${extname(__filename)}`);

export const JOB_RUNNER_DEFAULTS = {
  maxConcurrentJobs: 1,
  /** A cancelled or shut-down worker gets this long to checkpoint and exit before SIGKILL. */
  stopGraceMs: 10_000,
  /** A runner that stops renewing its jobs' leases for this long is presumed dead. */
  leaseMs: 30_000,
  /** How often to look for work queued by other processes and for cancellations made there. */
  pollIntervalMs: 1000,
  /** Progress is stored at most this often per job (every epoch change is stored). */
  progressIntervalMs: 1000,
  /** A job that keeps taking its runner down is failed after this many resumes. */
  maxResumes: 10,
  /** A job whose worker is killed or hits a full disk is re-queued this many times (DEIT_JOB_MAX_RETRIES). */
  maxRetries: 3,
} as const;

/** setTimeout's longest delay; a longer wall-time limit is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RunnerLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface WorkerOptions {
  /** Default: {@link WORKER_ENTRY}. */
  readonly entry?: string;
  /** Node options of the worker, e.g. `['-r', 'register-ts.cjs']` to run from sources. Default: none. */
  readonly execArgv?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

export interface JobRunnerOptions {
  readonly store: JobStore;
  readonly kinds: JobKinds;
  /** Job folders are `<workDir>/jobs/<job id>`. */
  readonly workDir: string;
  readonly maxConcurrentJobs?: number;
  readonly worker?: WorkerOptions;
  readonly stopGraceMs?: number;
  readonly leaseMs?: number;
  readonly pollIntervalMs?: number;
  readonly progressIntervalMs?: number;
  readonly maxResumes?: number;
  /**
   * Times a job goes back to the queue, to resume from its checkpoint, after a failure that says
   * nothing about the job itself: its worker killed by a signal (the OOM killer, a pod kill) or a
   * full disk (ENOSPC). Past it the job is FAILED. Cancellations and other errors are never retried.
   */
  readonly maxRetries?: number;
  /**
   * A job still running this long after it first started (resumes included) is asked to stop — it
   * checkpoints — and is then FAILED with an error that says so. Default: no limit.
   */
  readonly maxJobWallMs?: number;
  /** Identifies this runner in the store; default `<host>:<pid>:<random>`. */
  readonly owner?: string;
  /**
   * `false` when the runner named `owner` is certainly gone, so its jobs need not wait for their lease
   * to expire. Default: an owner on this host whose pid no longer exists.
   */
  readonly isOwnerAlive?: (owner: string) => boolean | undefined;
  readonly logger?: RunnerLogger;
}

interface ActiveJob {
  readonly job: JobRecord;
  readonly child: ChildProcess;
  readonly closed: Promise<void>;
  final?: Extract<WorkerMessage, { type: 'done' | 'failed' }>;
  abort?: JobAbortReason;
  killTimer?: NodeJS.Timeout;
  wallTimer?: NodeJS.Timeout;
  pendingProgress?: JobProgress;
  storedEpoch?: number;
  progressStoredAt: number;
  stderrTail: string;
}

const STDERR_TAIL_CHARS = 2000;

const ignore = (): void => undefined;
const SILENT_LOGGER: RunnerLogger = { log: ignore, warn: ignore, error: ignore };

export class JobRunner {
  readonly owner: string;
  private readonly active = new Map<string, ActiveJob>();
  private readonly maxConcurrent: number;
  private readonly stopGraceMs: number;
  private readonly leaseMs: number;
  private readonly pollIntervalMs: number;
  private readonly progressIntervalMs: number;
  private readonly maxResumes: number;
  private readonly maxRetries: number;
  private readonly maxJobWallMs: number | undefined;
  private readonly logger: RunnerLogger;
  private readonly isOwnerAlive: (owner: string) => boolean | undefined;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private lastLeaseRenewal = 0;
  private started = false;
  private stopping = false;

  constructor(private readonly options: JobRunnerOptions) {
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.maxConcurrent = options.maxConcurrentJobs ?? JOB_RUNNER_DEFAULTS.maxConcurrentJobs;
    this.stopGraceMs = options.stopGraceMs ?? JOB_RUNNER_DEFAULTS.stopGraceMs;
    this.leaseMs = options.leaseMs ?? JOB_RUNNER_DEFAULTS.leaseMs;
    this.pollIntervalMs = options.pollIntervalMs ?? JOB_RUNNER_DEFAULTS.pollIntervalMs;
    this.progressIntervalMs = options.progressIntervalMs ?? JOB_RUNNER_DEFAULTS.progressIntervalMs;
    this.maxResumes = options.maxResumes ?? JOB_RUNNER_DEFAULTS.maxResumes;
    this.maxRetries = options.maxRetries ?? JOB_RUNNER_DEFAULTS.maxRetries;
    if (!Number.isSafeInteger(this.maxRetries) || this.maxRetries < 0) {
      throw new RangeError(`maxRetries must be a non-negative integer, got ${this.maxRetries}`);
    }
    this.maxJobWallMs = options.maxJobWallMs;
    this.logger = options.logger ?? SILENT_LOGGER;
    this.isOwnerAlive = options.isOwnerAlive ?? sameHostPidAlive;
    if (!Number.isSafeInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new RangeError(`maxConcurrentJobs must be a positive integer, got ${this.maxConcurrent}`);
    }
    if (this.maxJobWallMs !== undefined && !(this.maxJobWallMs > 0)) {
      throw new RangeError(`maxJobWallMs must be positive, got ${this.maxJobWallMs}`);
    }
  }

  /** Recovers jobs abandoned by dead runners, then starts taking queued jobs. */
  start(): void {
    if (this.started) return;
    this.started = true;
    mkdirSync(join(this.options.workDir, 'jobs'), { recursive: true });
    this.recoverAbandoned();
    this.unsubscribe = this.options.store.subscribe((change) => {
      if (change.type === 'created') this.fill();
    });
    this.timer = setInterval(() => this.tick(), this.pollIntervalMs);
    this.timer.unref();
    this.fill();
  }

  /** Ids of the jobs this runner's workers are running. */
  runningJobs(): string[] {
    return [...this.active.keys()];
  }

  /**
   * QUEUED → CANCELLED at once; RUNNING → CANCELLING, then the worker checkpoints and stops (killed
   * after the grace period) → CANCELLED. A job held by another runner is stopped by that runner when it
   * next polls. Cancelling a CANCELLING job changes nothing; an ended one is FAILED_PRECONDITION.
   */
  cancel(jobId: string): JobRecord {
    return this.options.store.requestCancel(jobId, () => this.abortWorker(jobId, 'cancel'));
  }

  /**
   * Stops taking jobs and asks running ones to checkpoint and stop (killing them after the grace
   * period); they are re-queued and resume on the next start.
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    const closing = [...this.active.values()].map((active) => active.closed);
    for (const jobId of this.active.keys()) this.abortWorker(jobId, 'shutdown', options.graceMs);
    await Promise.all(closing);
  }

  private tick(): void {
    if (this.stopping) return;
    try {
      for (const active of this.active.values()) this.flushProgress(active, false);
      // Cancellations requested through another process's store.
      for (const job of this.options.store.heldBy(this.owner)) {
        if (job.state === 'CANCELLING') this.abortWorker(job.id, 'cancel');
      }
      if (Date.now() - this.lastLeaseRenewal >= this.leaseMs / 3) {
        this.options.store.renewLeases(this.owner, this.leaseMs);
        this.lastLeaseRenewal = Date.now();
        this.recoverAbandoned();
      }
      this.fill();
    } catch (error) {
      this.logger.error(`job runner poll failed: ${describeError(error)}`);
    }
  }

  /** Re-queues RUNNING jobs (and ends CANCELLING ones) whose runner is gone. */
  private recoverAbandoned(): void {
    const { store } = this.options;
    const now = Date.now();
    for (const job of store.heldByOthers(this.owner)) {
      // A known-dead owner is recovered at once; otherwise only an expired lease counts, since a pid may
      // have been reused (e.g. by a restarted container) and a live runner renews its leases.
      const dead = job.owner === undefined || this.isOwnerAlive(job.owner) === false;
      const leaseExpired = (job.leaseExpiresAt?.getTime() ?? 0) < now;
      if (!dead && !leaseExpired) continue;
      const from = `runner ${job.owner ?? '(none)'} is gone`;
      try {
        const checkpoint = store.latestCheckpoint(job.id);
        const expectOwner = job.owner;
        const guard = expectOwner === undefined ? {} : { expectOwner };
        if (job.state === 'CANCELLING') {
          store.transition(job.id, 'CANCELLED', {
            ...guard,
            message: `${from}; the cancellation is complete`,
          });
        } else if (job.resumes >= this.maxResumes) {
          store.transition(job.id, 'FAILED', {
            ...guard,
            error: `${from} again; gave up after ${job.resumes} resumes`,
          });
        } else {
          store.transition(job.id, 'QUEUED', {
            ...guard,
            message: `${from}; re-queued to resume from ${checkpoint ? `the epoch ${checkpoint.epoch} checkpoint` : 'the start'}`,
          });
        }
        this.logger.warn(`job ${job.id}: ${from}; recovered`);
      } catch (error) {
        // Another runner recovered it first.
        if (!(error instanceof FailedPreconditionError || error instanceof NotFoundError)) throw error;
      }
    }
  }

  /** Claims queued jobs while there is room. */
  private fill(): void {
    const kinds = Object.keys(this.options.kinds);
    while (!this.stopping && this.started && this.active.size < this.maxConcurrent) {
      const job = this.options.store.claimNext(this.owner, this.leaseMs, kinds);
      if (!job) return;
      // A job resumed after its time ran out (the trainer was down, say) is not started again.
      if (this.wallTimeLeft(job) <= 0) {
        const checkpoint = this.options.store.latestCheckpoint(job.id);
        this.options.store.transition(job.id, 'FAILED', {
          expectOwner: this.owner,
          error: this.wallTimeError(checkpoint?.epoch),
        });
        this.logger.warn(`job ${job.id}: past its wall-time limit before it could resume; failed`);
        continue;
      }
      try {
        this.launch(job);
      } catch (error) {
        this.logger.error(`job ${job.id}: could not start a worker: ${describeError(error)}`);
        this.options.store.transition(job.id, 'FAILED', {
          expectOwner: this.owner,
          error: `could not start a worker: ${describeError(error)}`,
        });
      }
    }
  }

  private launch(job: JobRecord): void {
    const { store } = this.options;
    const kind = this.options.kinds[job.kind];
    if (!kind) throw new Error(`unknown job kind ${JSON.stringify(job.kind)}`);
    const workDir = join(this.options.workDir, 'jobs', job.id);
    mkdirSync(workDir, { recursive: true });
    const checkpoint = store.latestCheckpoint(job.id);
    const resumeFrom: ResumePoint | undefined = checkpoint && {
      path: checkpoint.path,
      epoch: checkpoint.epoch,
    };
    const worker = this.options.worker ?? {};
    const child = fork(worker.entry ?? WORKER_ENTRY, [], {
      execArgv: [...(worker.execArgv ?? [])],
      env: worker.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    const closed = new Promise<void>((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        try {
          this.finish(active, code, signal);
        } catch (error) {
          this.logger.error(`job ${job.id}: could not record its end: ${describeError(error)}`);
        }
        this.active.delete(job.id);
        resolve();
        this.fill();
      });
    });
    const active: ActiveJob = { job, child, closed, progressStoredAt: 0, stderrTail: '' };
    this.active.set(job.id, active);
    this.armWallTimer(active);

    child.stdout?.on('data', (chunk: Buffer) =>
      this.logger.log(`job ${job.id}: ${chunk.toString().trimEnd()}`),
    );
    child.stderr?.on('data', (chunk: Buffer) => {
      active.stderrTail = (active.stderrTail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
    child.on('error', (error) => this.logger.error(`job ${job.id}: worker error: ${describeError(error)}`));
    child.on('message', (message: WorkerMessage) => {
      try {
        this.onMessage(active, message);
      } catch (error) {
        this.logger.error(
          `job ${job.id}: could not record a ${message.type} message: ${describeError(error)}`,
        );
      }
    });

    if (resumeFrom)
      store.appendEvent(job.id, {
        type: 'message',
        message: `resuming from the epoch ${resumeFrom.epoch} checkpoint`,
      });
    this.logger.log(`job ${job.id} (${job.kind}) started in worker ${child.pid ?? '?'}`);
    this.send(active, {
      type: 'start',
      jobId: job.id,
      spec: job.spec,
      module: kind.module,
      exportName: kind.export ?? 'default',
      workDir,
      ...(resumeFrom && { resumeFrom }),
      attempt: job.attempts,
      ...(kind.config !== undefined && { config: kind.config }),
    });
  }

  private onMessage(active: ActiveJob, message: WorkerMessage): void {
    const { store } = this.options;
    const id = active.job.id;
    switch (message.type) {
      case 'progress':
        active.pendingProgress = message.progress;
        this.flushProgress(active, false);
        return;
      case 'eval':
        this.flushProgress(active, true);
        store.appendEvent(id, { type: 'eval', eval: message.eval });
        return;
      case 'checkpoint':
        this.flushProgress(active, true);
        store.recordCheckpoint(id, message.epoch, message.path);
        store.appendEvent(id, { type: 'message', message: `checkpoint written (epoch ${message.epoch})` });
        this.send(active, { type: 'checkpoint-recorded', id: message.id });
        return;
      case 'log':
        this.flushProgress(active, true);
        store.appendEvent(id, { type: 'message', message: message.message });
        return;
      case 'backend':
        store.setBackend(id, message.name);
        store.appendEvent(id, { type: 'message', message: `training backend: ${message.name}` });
        return;
      case 'done':
      case 'failed':
        active.final = message;
        if (message.type === 'failed' && message.stack && !message.aborted) {
          this.logger.warn(`job ${id} failed: ${message.stack}`);
        }
        return;
    }
  }

  /** Stores the pending progress when forced, on a new epoch, or when the last one is old enough. */
  private flushProgress(active: ActiveJob, force: boolean): void {
    const progress = active.pendingProgress;
    if (!progress) return;
    const now = Date.now();
    if (
      !force &&
      progress.epoch === active.storedEpoch &&
      now - active.progressStoredAt < this.progressIntervalMs
    )
      return;
    this.options.store.setProgress(active.job.id, progress);
    active.pendingProgress = undefined;
    active.storedEpoch = progress.epoch;
    active.progressStoredAt = now;
  }

  /** Records how the job ended once its worker has exited. */
  private finish(active: ActiveJob, code: number | null, signal: NodeJS.Signals | null): void {
    if (active.killTimer) clearTimeout(active.killTimer);
    if (active.wallTimer) clearTimeout(active.wallTimer);
    this.flushProgress(active, true);
    const { store } = this.options;
    const id = active.job.id;
    const guard = { expectOwner: this.owner };
    const state = store.get(id).state;
    const final = active.final;
    if (final?.type === 'done') {
      store.transition(id, 'SUCCEEDED', { ...guard, result: final.result });
      this.logger.log(`job ${id} succeeded`);
      return;
    }
    const checkpoint = store.latestCheckpoint(id);
    const at = checkpoint ? `; last checkpoint: epoch ${checkpoint.epoch}` : '';
    if (state === 'CANCELLING') {
      store.transition(id, 'CANCELLED', { ...guard, message: `cancelled${at}` });
      this.logger.log(`job ${id} cancelled${at}`);
      return;
    }
    if (active.abort === 'timeout') {
      const error = this.wallTimeError(checkpoint?.epoch);
      store.transition(id, 'FAILED', { ...guard, error });
      this.logger.warn(`job ${id} failed: ${error}`);
      return;
    }
    if (this.stopping) {
      store.transition(id, 'QUEUED', {
        ...guard,
        message: `trainer shutting down; will resume${at || ' from the start'}`,
      });
      this.logger.log(`job ${id} stopped for the shutdown; re-queued${at}`);
      return;
    }
    const error =
      final?.type === 'failed'
        ? final.error
        : `worker ${signal ? `was killed by ${signal}` : `exited with code ${code ?? '?'}`} before the job finished` +
          (active.stderrTail.trim() ? `: ${lastLines(active.stderrTail, 5)}` : '');
    if (isRetryable(final, signal)) {
      const { retries, attempts } = store.get(id);
      if (retries < this.maxRetries) {
        const from = checkpoint ? `the epoch ${checkpoint.epoch} checkpoint` : 'the start';
        store.transition(id, 'QUEUED', {
          ...guard,
          retry: true,
          message: `${retryCause(error)}; retry ${retries + 1} of ${this.maxRetries}: re-queued to resume from ${from}`,
        });
        this.logger.warn(`job ${id}: ${retryCause(error)}; re-queued (retry ${retries + 1})`);
        return;
      }
      const gaveUp =
        `${retryCause(error)}; gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} ` +
        `(${this.maxRetries} retr${this.maxRetries === 1 ? 'y' : 'ies'} allowed: DEIT_JOB_MAX_RETRIES)`;
      store.transition(id, 'FAILED', { ...guard, error: gaveUp });
      this.logger.warn(`job ${id} failed: ${gaveUp}`);
      return;
    }
    store.transition(id, 'FAILED', { ...guard, error });
    this.logger.warn(`job ${id} failed: ${error.split('\n')[0] ?? error}`);
  }

  /** Stops the job (it checkpoints) once its wall time is up. */
  private armWallTimer(active: ActiveJob): void {
    const left = this.wallTimeLeft(active.job);
    if (left === Infinity) return;
    active.wallTimer = setTimeout(
      () => {
        if (this.wallTimeLeft(active.job) > 0) return this.armWallTimer(active);
        this.logger.warn(
          `job ${active.job.id}: ran past its wall-time limit of ${formatDuration(this.maxJobWallMs ?? 0)}; stopping it`,
        );
        this.abortWorker(active.job.id, 'timeout');
      },
      Math.max(0, Math.min(left, MAX_TIMER_MS)),
    );
  }

  /** Milliseconds `job` may still run (Infinity without a limit); counted from its first start. */
  private wallTimeLeft(job: JobRecord): number {
    if (this.maxJobWallMs === undefined) return Infinity;
    const started = job.startedAt?.getTime() ?? Date.now();
    return started + this.maxJobWallMs - Date.now();
  }

  private wallTimeError(checkpointEpoch: number | undefined): string {
    return (
      `ran past its wall-time limit of ${formatDuration(this.maxJobWallMs ?? 0)} (counted from its first start) and was stopped; ` +
      (checkpointEpoch === undefined
        ? 'no checkpoint was written'
        : `its last checkpoint is epoch ${checkpointEpoch}`)
    );
  }

  private abortWorker(jobId: string, reason: JobAbortReason, graceMs = this.stopGraceMs): void {
    const active = this.active.get(jobId);
    if (!active || active.abort) return;
    active.abort = reason;
    this.send(active, { type: 'abort', reason });
    active.killTimer = setTimeout(() => {
      this.logger.warn(`job ${jobId}: worker did not stop within ${graceMs} ms; killing it`);
      active.child.kill('SIGKILL');
    }, graceMs);
  }

  private send(active: ActiveJob, message: RunnerMessage): void {
    if (!active.child.connected) return;
    active.child.send(message, (error) => {
      if (error)
        this.logger.warn(`job ${active.job.id}: could not send ${message.type}: ${describeError(error)}`);
    });
  }
}

/**
 * Failures that say nothing about the job: its worker killed by a signal (the OOM killer sends
 * SIGKILL; the runner's own kills happen only after a cancel, a shutdown or a timeout, which are
 * handled before) or a full disk. A job that threw anything else would throw it again.
 */
function isRetryable(
  final: Extract<WorkerMessage, { type: 'done' | 'failed' }> | undefined,
  signal: NodeJS.Signals | null,
): boolean {
  if (final === undefined) return signal !== null;
  return final.type === 'failed' && !final.aborted && /\bENOSPC\b/.test(final.error);
}

/** The first line of a failure, without the worker's stderr (kept for the final error only). */
function retryCause(error: string): string {
  const cut = error.indexOf(' before the job finished');
  return cut >= 0 ? error.slice(0, cut + ' before the job finished'.length) : error;
}

/** `<host>:<pid>:...` owners on this host are alive iff their pid is; elsewhere we cannot tell. */
function sameHostPidAlive(owner: string): boolean | undefined {
  const [host, pidText] = owner.split(':');
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  if (pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `90 s`, `12 min`, `25 h` — for messages about limits. */
function formatDuration(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 6000) / 10} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
}

function lastLines(text: string, count: number): string {
  return text.trim().split('\n').slice(-count).join(' | ');
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
