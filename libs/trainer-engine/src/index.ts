/**
 * The trainer's job machinery: fine-tune spec validation, the durable SQLite job store, the runner that
 * executes jobs in worker processes (resuming them after a crash), and job event streams. The training
 * itself plugs in as a job function registered under a job kind.
 */
export * from './job';
export * from './spec';
export {
  MAX_PATH_LENGTH,
  PathNotAllowedError,
  PathSandbox,
  pathSyntaxProblem,
  type PathSandboxConfig,
  specPaths,
  type PathDenial,
  type PathVerdict,
} from './paths';
export * from './job-function';
export {
  JobStore,
  JOB_STORE_SCHEMA_VERSION,
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  type CreateJobInput,
  type JobStoreOptions,
  type ListJobsQuery,
  type StoreChange,
  type TransitionOptions,
} from './job-store';
export {
  JobRunner,
  JOB_RUNNER_DEFAULTS,
  WORKER_ENTRY,
  type JobRunnerOptions,
  type RunnerLogger,
  type WorkerOptions,
} from './job-runner';
export { watchJob, watchJob$, DEFAULT_WATCH_POLL_MS, type WatchOptions } from './watch';
export type { JobExecutor } from './job-executor';
export {
  KubernetesJobRunner,
  KUBERNETES_RUNNER_DEFAULTS,
  type KubernetesRunnerOptions,
} from './kubernetes-runner';
export * from './job-files';
export { isPermanentFailure, POD_EXIT, runPodJob, type PodJobOptions } from './pod-job';
export * from './proto';
