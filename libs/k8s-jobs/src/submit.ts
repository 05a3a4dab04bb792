import type { Job } from './types';
import type { JobView } from './status';

/**
 * The one call of the Kubernetes batch/v1 API that submitting needs. `BatchV1Api` of
 * `@kubernetes/client-node` (1.x and later: object parameters) satisfies it; `connectBatchApi`
 * (client.ts) makes one. Anything with this method (a test double) works as well.
 */
export interface BatchApi {
  createNamespacedJob(request: {
    namespace: string;
    body: Job;
    fieldManager?: string;
    fieldValidation?: string;
  }): Promise<unknown>;
}

/**
 * Everything the trainer's Kubernetes runner calls, and so everything its Role must allow
 * (k8s/components/trainer-job-mode: batch jobs create, list, delete; get and watch for people with
 * kubectl). `BatchV1Api` satisfies it (checked by the type of `connectBatchApi`).
 */
export interface BatchJobsApi extends BatchApi {
  listNamespacedJob(request: { namespace: string; labelSelector?: string }): Promise<{ items: JobView[] }>;
  deleteNamespacedJob(request: {
    name: string;
    namespace: string;
    propagationPolicy?: string;
  }): Promise<unknown>;
}

export interface SubmitResult {
  readonly name: string;
  readonly namespace: string;
  /** false: a Job of that name existed already (a resubmission after a trainer restart): nothing was created. */
  readonly created: boolean;
}

/** HTTP status of an API error, across @kubernetes/client-node's versions (ApiException.code, HttpError.statusCode). */
export function httpStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const value of [e.code, e.statusCode, e.response?.statusCode]) {
    if (typeof value === 'number') return value;
  }
  return undefined;
}

/**
 * Creates the Job built by buildFineTuneJob. Idempotent: the name derives from the trainer's job id, so
 * a conflict (409) means this run was submitted before, and is reported, not retried. The server is
 * asked to reject unknown fields (fieldValidation Strict); every other error is thrown as is.
 */
export async function submitFineTuneJob(
  api: BatchApi,
  job: Job,
  options: { fieldManager?: string } = {},
): Promise<SubmitResult> {
  const { name, namespace } = job.metadata;
  try {
    await api.createNamespacedJob({
      namespace,
      body: job,
      fieldManager: options.fieldManager ?? 'deit-trainer',
      fieldValidation: 'Strict',
    });
    return { name, namespace, created: true };
  } catch (error) {
    if (httpStatus(error) === 409) return { name, namespace, created: false };
    throw error;
  }
}

/** Label selector of the Jobs this library builds (the trainer lists them, and only them). */
export const FINETUNE_JOB_SELECTOR =
  'app.kubernetes.io/managed-by=deit-trainer,app.kubernetes.io/name=deit-finetune';

/** The fine-tune Jobs of a namespace, by name. */
export async function listFineTuneJobs(api: BatchJobsApi, namespace: string): Promise<Map<string, JobView>> {
  const list = await api.listNamespacedJob({ namespace, labelSelector: FINETUNE_JOB_SELECTOR });
  const jobs = new Map<string, JobView>();
  for (const job of list.items) if (job.metadata?.name) jobs.set(job.metadata.name, job);
  return jobs;
}

/**
 * Deletes a Job and, in the background, its pods (their containers get SIGTERM and the pod's grace
 * period to checkpoint). Resolves false when there was no such Job (deleted before: idempotent).
 */
export async function deleteFineTuneJob(
  api: BatchJobsApi,
  name: string,
  namespace: string,
): Promise<boolean> {
  try {
    await api.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
    return true;
  } catch (error) {
    if (httpStatus(error) === 404) return false;
    throw error;
  }
}
