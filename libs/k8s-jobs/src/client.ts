import { FailedPreconditionError } from '@deit-serve/core';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { BatchJobsApi } from './submit';

/** The pod's ServiceAccount token, mounted by the kubelet (k8s/components/trainer-job-mode turns it on). */
export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Which batch/v1 verb each method of {@link BatchJobsApi} needs: the trainer's Role grants these and no more. */
export const BATCH_API_VERBS: Readonly<Record<keyof BatchJobsApi, string>> = {
  createNamespacedJob: 'create',
  listNamespacedJob: 'list',
  deleteNamespacedJob: 'delete',
};

export interface ConnectOptions {
  /** A kubeconfig file; default: `KUBECONFIG`, else the pod's ServiceAccount, else `~/.kube/config`. */
  readonly kubeconfig?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * `BatchV1Api` of `@kubernetes/client-node`, connected the way the trainer runs: in a pod, with its
 * ServiceAccount token (`KubeConfig.loadFromCluster`, which re-reads the rotated token), or with a
 * kubeconfig outside a cluster. Throws FailedPreconditionError when there is neither, rather than
 * falling back to client-node's `http://localhost:8080` default.
 */
export async function connectBatchApi(options: ConnectOptions = {}): Promise<BatchJobsApi> {
  // client-node 1.x is ESM only: a native import() from this CommonJS module (tools/scripts/build.mjs
  // and the test hook keep import() as is; Node 20 loads ESM that way).
  const k8s = await import('@kubernetes/client-node');
  const env = options.env ?? process.env;
  const kc = new k8s.KubeConfig();
  const kubeconfig = options.kubeconfig ?? env['KUBECONFIG'];
  const home = join(homedir(), '.kube', 'config');
  if (kubeconfig) {
    kc.loadFromFile(kubeconfig);
  } else if (env['KUBERNETES_SERVICE_HOST'] && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    kc.loadFromCluster();
  } else if (existsSync(home)) {
    kc.loadFromFile(home);
  } else {
    throw new FailedPreconditionError(
      'Kubernetes job mode needs the API server: run the trainer in a pod with a ServiceAccount token ' +
        '(k8s/components/trainer-job-mode) or set KUBECONFIG',
    );
  }
  const api: BatchJobsApi = kc.makeApiClient(k8s.BatchV1Api);
  return api;
}
