/**
 * Job mode wiring (DEIT_TRAINER_RUNNER=kubernetes): the trainer's configuration → the options of the
 * Kubernetes runner and of the Job each fine-tune gets (k8s/components/trainer-job-mode sets the
 * variables).
 */
import { trainerConfigSpec, type TrainerConfig } from '@deit-serve/config';
import { RESERVED_ENV, type BatchJobsApi } from '@deit-serve/k8s-jobs';
import type { JobStore, KubernetesRunnerOptions, RunnerLogger } from '@deit-serve/trainer-engine';

/**
 * Trainer variables a Job's pod does not get: those the Job builder sets itself (the volumes' mount
 * paths), and those naming the trainer's own store, runner and credentials, which the pod has no use
 * for. Every other trainer variable that is set goes to the pod, since the job function there reads
 * the same configuration (backend, data roots and limits, log level).
 */
export const NOT_FORWARDED: ReadonlySet<string> = new Set([
  ...RESERVED_ENV,
  'DEIT_JOBS_DB',
  'DEIT_TRAINER_RUNNER',
  'DEIT_AUTH_TOKENS_FILE',
  'DEIT_TLS_CERT_FILE',
  'DEIT_TLS_KEY_FILE',
  'DEIT_TLS_CLIENT_CA_FILE',
]);

/** The environment of a fine-tune Job's container: the trainer's configuration variables that are set. */
export function jobEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { env: name } of Object.values(trainerConfigSpec)) {
    const value = env[name];
    if (value !== undefined && value !== '' && !NOT_FORWARDED.has(name)) out[name] = value;
  }
  return out;
}

export function kubernetesRunnerOptions(
  config: TrainerConfig,
  store: JobStore,
  api: BatchJobsApi,
  options: { env?: NodeJS.ProcessEnv; logger?: RunnerLogger } = {},
): KubernetesRunnerOptions {
  return {
    store,
    api,
    namespace: config.namespace,
    // The work claim as the trainer mounts it; the pods mount it at /work.
    workDir: config.workDir,
    maxConcurrentJobs: config.maxConcurrentJobs,
    ...(options.logger && { logger: options.logger }),
    job: {
      image: config.finetuneImage,
      serviceAccountName: config.finetuneServiceAccount,
      registryClaimName: config.finetuneRegistryClaim,
      workVolume: { type: 'persistentVolumeClaim', claimName: config.finetuneWorkClaim },
      env: jobEnvironment(options.env ?? process.env),
      // The wall-clock limit of a job, counted by Kubernetes across the Job's pods.
      activeDeadlineSeconds: Math.ceil(config.maxJobWallMs / 1000),
      ...(config.finetuneGpus > 0 && { gpus: config.finetuneGpus }),
    },
  };
}
