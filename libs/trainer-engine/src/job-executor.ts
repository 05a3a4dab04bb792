import type { JobRecord } from './job';

/**
 * What the trainer service needs of whatever runs its jobs: worker processes of its own
 * ({@link JobRunner}) or one Kubernetes Job each ({@link KubernetesJobRunner}, job mode).
 */
export interface JobExecutor {
  /** The owner id it holds jobs under in the store. */
  readonly owner: string;
  /** Recovers or takes up held jobs, then starts taking queued ones. */
  start(): void;
  /** Ids of the jobs it is running. */
  runningJobs(): string[];
  /** QUEUED → CANCELLED; RUNNING → CANCELLING (→ CANCELLED once stopped); ended: FAILED_PRECONDITION. */
  cancel(jobId: string): JobRecord;
  stop(options?: { graceMs?: number }): Promise<void>;
}
