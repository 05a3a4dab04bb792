/** Messages between the runner and a job's worker process (JSON over the fork IPC channel). */
import type { JobAbortReason, ResumePoint } from './job-function';
import type { EvalResult, JobProgress } from './job';

export type RunnerMessage =
  | {
      readonly type: 'start';
      readonly jobId: string;
      readonly spec: unknown;
      readonly module: string;
      readonly exportName: string;
      readonly workDir: string;
      readonly resumeFrom?: ResumePoint;
      readonly attempt: number;
      /** The job kind's configuration (JobKind.config). */
      readonly config?: unknown;
    }
  | { readonly type: 'abort'; readonly reason: JobAbortReason }
  | { readonly type: 'checkpoint-recorded'; readonly id: number };

export type WorkerMessage =
  | { readonly type: 'progress'; readonly progress: JobProgress }
  | { readonly type: 'eval'; readonly eval: EvalResult }
  | { readonly type: 'checkpoint'; readonly id: number; readonly path: string; readonly epoch: number }
  | { readonly type: 'log'; readonly message: string }
  | { readonly type: 'backend'; readonly name: string }
  | { readonly type: 'done'; readonly result: unknown }
  | { readonly type: 'failed'; readonly error: string; readonly stack?: string; readonly aborted: boolean };

/** Exit codes of the worker, for the runner's messages. */
export const WORKER_EXIT = {
  ok: 0,
  uncaught: 1,
  usage: 2,
  /** The runner went away (its IPC channel closed): stop at once, the next runner resumes the job. */
  orphaned: 3,
} as const;
