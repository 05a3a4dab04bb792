/**
 * What the trainer reads back from a fine-tune Job: its status, as the Job controller reports it, and
 * the one phase that status means for the trainer's job.
 */

/** A Job condition (batch/v1 JobCondition). */
export interface JobConditionView {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** The part of a batch/v1 Job the trainer reads back (`V1Job` of `@kubernetes/client-node` is one). */
export interface JobView {
  metadata?: {
    name?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  status?: {
    active?: number;
    ready?: number;
    succeeded?: number;
    failed?: number;
    terminating?: number;
    conditions?: JobConditionView[];
  };
}

export type FineTuneJobPhase =
  /** No pod runs right now: not scheduled yet, pulling the image, or between two retries. */
  | { readonly phase: 'pending'; readonly failedPods: number }
  | { readonly phase: 'running'; readonly failedPods: number }
  | { readonly phase: 'succeeded' }
  /** The Job gave up: `reason` is the Job controller's (BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy...). */
  | {
      readonly phase: 'failed';
      readonly reason: string;
      readonly message: string;
      readonly failedPods: number;
    };

function condition(job: JobView, type: string): JobConditionView | undefined {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/**
 * The phase of a Job (completions 1, as buildFineTuneJob makes them). Terminal only once the Job
 * controller says so (`Complete` or `Failed`; `FailureTarget` and `SuccessCriteriaMet` come earlier,
 * while pods may still be terminating and writing their last records).
 */
export function fineTuneJobPhase(job: JobView): FineTuneJobPhase {
  const failedPods = job.status?.failed ?? 0;
  if (condition(job, 'Complete')) return { phase: 'succeeded' };
  const failed = condition(job, 'Failed');
  if (failed) {
    return {
      phase: 'failed',
      reason: failed.reason ?? 'Failed',
      message: failed.message ?? '',
      failedPods,
    };
  }
  return (job.status?.active ?? 0) > 0 ? { phase: 'running', failedPods } : { phase: 'pending', failedPods };
}
