/**
 * The container command of a fine-tune Job (trainer job mode; FINETUNE_JOB_COMMAND of
 * @deit-serve/k8s-jobs): runs the one job named by DEIT_FINETUNE_JOB_ID from its folder on the work
 * volume (`$DEIT_TRAINER_WORK_DIR/jobs/<id>`), reporting to the folder's event file, which the trainer
 * tails into its store. SIGTERM (Job deleted, pod evicted) makes the job checkpoint and stop; a pod
 * Kubernetes starts again resumes from that checkpoint. Exit codes: POD_EXIT of trainer-engine.
 * The pod's environment is the trainer's configuration as the Job forwards it (job-mode.ts), read
 * once here; the job gets its sandbox and limits from it as a worker gets them from its job kind.
 */
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { createFineTuneJob, fineTuneJobConfig, fineTuneJobOptions } from '@deit-serve/finetune';
import {
  FINE_TUNE_JOB_KIND,
  isPermanentFailure,
  JobAbortedError,
  jobFolder,
  PathSandbox,
  POD_EXIT,
  runPodJob,
  type JobFunction,
} from '@deit-serve/trainer-engine';
import { hostname } from 'node:os';

async function main(): Promise<number> {
  const jobId = process.env['DEIT_FINETUNE_JOB_ID'];
  if (!jobId) {
    console.error('DEIT_FINETUNE_JOB_ID is not set: this is the entry point of a fine-tune Job');
    return POD_EXIT.permanent;
  }
  const config = loadConfig(trainerConfigSpec);
  const jobConfig = fineTuneJobConfig(config, new PathSandbox(config.dataRoots));
  const controller = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => controller.abort(new JobAbortedError('shutdown')));
  }
  return runPodJob({
    jobId,
    jobDir: jobFolder(config.workDir, jobId),
    functions: { [FINE_TUNE_JOB_KIND]: createFineTuneJob(fineTuneJobOptions(jobConfig)) as JobFunction },
    signal: controller.signal,
    pod: process.env['HOSTNAME'] ?? hostname(),
    log: (line) => console.log(line),
  });
}

// The job may leave handles behind (backends, worker threads); the pod is done either way.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(isPermanentFailure(error) ? POD_EXIT.permanent : POD_EXIT.failed);
  },
);
