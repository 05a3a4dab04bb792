/**
 * The job vocabulary shared by the store, the runner, the worker and the watchers. Everything here is
 * plain JSON so that it can be stored and sent over IPC unchanged.
 */

export const JOB_STATES = ['QUEUED', 'RUNNING', 'CANCELLING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set<JobState>(['SUCCEEDED', 'FAILED', 'CANCELLED']);

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.has(state);
}

/**
 * The state machine. RUNNING → QUEUED is crash recovery and shutdown (the job resumes from its last
 * checkpoint); CANCELLING may still end SUCCEEDED or FAILED when the job finished before it saw the request.
 */
export const JOB_TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  QUEUED: ['RUNNING', 'CANCELLED'],
  RUNNING: ['SUCCEEDED', 'FAILED', 'CANCELLING', 'QUEUED'],
  CANCELLING: ['CANCELLED', 'SUCCEEDED', 'FAILED'],
  SUCCEEDED: [],
  FAILED: [],
  CANCELLED: [],
};

export interface LossParts {
  readonly total: number;
  readonly base: number;
  readonly distillation: number;
}

export interface JobProgress {
  /** 1-based epoch in progress. */
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  readonly loss?: LossParts;
  readonly learningRate?: number;
  readonly imagesPerSecond?: number;
  readonly etaSeconds?: number;
}

export interface HeadAccuracy {
  readonly top1: number;
  readonly top5: number;
}

export interface EvalResult {
  readonly epoch: number;
  readonly dataset: string;
  readonly images: number;
  readonly cls?: HeadAccuracy;
  readonly dist?: HeadAccuracy;
  readonly average?: HeadAccuracy;
  readonly teacherTop1?: number;
  readonly clsDistAgreement?: number;
}

/** What a fine-tune job returns (`trainerV1.JobResult`). Other job kinds may return other JSON. */
export interface FineTuneResult {
  readonly model: string;
  readonly version: number;
  readonly sha256: string;
  readonly finalEval?: EvalResult;
  readonly promoted: boolean;
  readonly promotionReason: string;
}

export type JobEventBody =
  | { readonly type: 'state'; readonly state: JobState; readonly error?: string }
  | { readonly type: 'progress'; readonly progress: JobProgress }
  | { readonly type: 'eval'; readonly eval: EvalResult }
  /** A line for humans: checkpoint written, resumed, published... */
  | { readonly type: 'message'; readonly message: string };

export interface JobEvent {
  readonly jobId: string;
  /** 1, 2, 3... per job, gap-free. */
  readonly seq: number;
  readonly time: Date;
  readonly body: JobEventBody;
}

export interface JobRecord<Spec = unknown, Result = unknown> {
  readonly id: string;
  /** Which job function runs it (see JobKinds); `fine-tune` for the trainer's jobs. */
  readonly kind: string;
  readonly spec: Spec;
  readonly state: JobState;
  readonly createdAt: Date;
  /** First start; a resumed job keeps it. */
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  readonly updatedAt: Date;
  readonly progress?: JobProgress;
  readonly error?: string;
  readonly result?: Result;
  /** Restarts from a checkpoint after the first start (crash recovery, shutdown). */
  readonly resumes: number;
  /** Times a runner claimed the job. */
  readonly attempts: number;
  /** Times it went back to the queue after a retryable failure (worker killed, disk full). */
  readonly retries: number;
  readonly backend?: string;
  readonly requestId?: string;
  /** The runner holding a RUNNING or CANCELLING job. */
  readonly owner?: string;
  readonly leaseExpiresAt?: Date;
}

export interface Checkpoint {
  readonly jobId: string;
  /** Epochs completed when it was written. */
  readonly epoch: number;
  readonly path: string;
  readonly createdAt: Date;
}
