import type { Job } from './types';

/**
 * The one call of the Kubernetes batch/v1 API that job mode needs. `BatchV1Api` of
 * `@kubernetes/client-node` (1.x and later: object parameters) satisfies it:
 *
 * ```ts
 * import { KubeConfig, BatchV1Api } from '@kubernetes/client-node';
 * const kc = new KubeConfig();
 * kc.loadFromCluster(); // the trainer pod's ServiceAccount token (k8s/components/trainer-job-mode)
 * const api: BatchApi = kc.makeApiClient(BatchV1Api);
 * ```
 *
 * The dependency is not part of the workspace yet; anything with this method (a test double, a thin
 * fetch-based client) works as well.
 */
export interface BatchApi {
  createNamespacedJob(request: {
    namespace: string;
    body: Job;
    fieldManager?: string;
    fieldValidation?: string;
  }): Promise<unknown>;
}

export interface SubmitResult {
  readonly name: string;
  readonly namespace: string;
  /** false: a Job of that name existed already (a resubmission after a trainer restart): nothing was created. */
  readonly created: boolean;
}

/** HTTP status of an API error, across @kubernetes/client-node's versions (ApiException.code, HttpError.statusCode). */
function httpStatus(error: unknown): number | undefined {
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
