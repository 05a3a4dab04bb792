/**
 * The trainer's job mode against a real Kubernetes API server, run by tools/scripts/k8s-e2e.sh (npm run
 * k8s:e2e) after it applied the gpu overlay: the trainer's runner, with the trainer's own ServiceAccount
 * token (the overlay's RBAC), creates real Jobs; the Job controller makes their pods (so they passed
 * Pod Security "restricted" admission) and the scheduler binds them to the simulated GPU node. No
 * kubelet runs there: this test plays it, reporting pod phases through the status subresource and
 * appending the records a fine-tune pod writes to its event file on the work volume.
 */
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
// deploy (scope:shared tooling) checks the trainer's job mode end to end, as finetune-job.spec.ts does.
// eslint-disable-next-line @nx/enforce-module-boundaries
import {
  EXIT_CODE_PERMANENT_FAILURE,
  connectBatchApi,
  fineTuneJobName,
  type BatchJobsApi,
} from '@deit-serve/k8s-jobs';
// eslint-disable-next-line @nx/enforce-module-boundaries
import {
  EVENTS_FILE,
  JobStore,
  KubernetesJobRunner,
  jobFolder,
  validateFineTuneSpec,
  type JobFileRecord,
} from '@deit-serve/trainer-engine';
import type { BatchV1Api, CoreV1Api, V1Pod } from '@kubernetes/client-node' with {
  'resolution-mode': 'import',
};
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const adminKubeconfig = process.env['K8S_E2E_ADMIN_KUBECONFIG'];
const trainerKubeconfig = process.env['K8S_E2E_TRAINER_KUBECONFIG'];
const namespace = process.env['K8S_E2E_NAMESPACE'] ?? 'deit-serve';
/** The simulated GPU node of k8s-e2e.sh (4 nvidia.com/gpu, tainted). */
const GPU_NODE = 'e2e-gpu';
const WAIT_MS = 60_000;

function httpStatus(error: unknown): number | undefined {
  const e = error as { code?: number; statusCode?: number } | undefined;
  return e?.code ?? e?.statusCode;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('job mode against a real API server (k8s-e2e.sh)', () => {
  const root = mkdtempSync(join(tmpdir(), 'deit-k8s-job-mode-'));
  const workDir = join(root, 'work');
  let store: JobStore;
  let runner: KubernetesJobRunner;
  let core: CoreV1Api;
  let batch: BatchV1Api;

  beforeAll(async () => {
    if (!adminKubeconfig || !trainerKubeconfig) {
      throw new Error(
        'run by tools/scripts/k8s-e2e.sh: K8S_E2E_ADMIN_KUBECONFIG and K8S_E2E_TRAINER_KUBECONFIG unset',
      );
    }
    const k8s = await import('@kubernetes/client-node');
    const admin = new k8s.KubeConfig();
    admin.loadFromFile(adminKubeconfig);
    core = admin.makeApiClient(k8s.CoreV1Api);
    batch = admin.makeApiClient(k8s.BatchV1Api);
    const config = loadConfig(trainerConfigSpec, {
      DEIT_TRAINER_RUNNER: 'kubernetes',
      DEIT_TRAINER_NAMESPACE: namespace,
      DEIT_TRAINER_WORK_DIR: workDir,
      DEIT_JOBS_DB: join(root, 'jobs.sqlite'),
      DEIT_FINETUNE_IMAGE: 'deit-serve/trainer-cuda:0.1.0',
    });
    store = JobStore.open(config.jobsDb);
    // The trainer's own token: what the gpu overlay's Role lets it do, and nothing more.
    const api: BatchJobsApi = await connectBatchApi({ kubeconfig: trainerKubeconfig });
    runner = new KubernetesJobRunner({
      store,
      api,
      namespace,
      workDir,
      job: {
        image: config.finetuneImage,
        serviceAccountName: config.finetuneServiceAccount,
        registryClaimName: config.finetuneRegistryClaim,
        workVolume: { type: 'persistentVolumeClaim', claimName: config.finetuneWorkClaim },
        env: {},
        gpus: 1,
      },
      resultGraceMs: 5_000,
    });
  });

  afterAll(async () => {
    await runner?.stop();
    store?.close();
    rmSync(root, { recursive: true, force: true });
  });

  function submit(seed: number): string {
    const spec = validateFineTuneSpec({
      outputModel: 'fmnist-student',
      student: { registryRef: 'student:1' },
      teacher: undefined,
      dataset: {
        fashionMnist: { dir: join(root, 'data'), evalOnTest: false },
        validationFraction: 0.25,
        maxTrainImages: 0,
        maxEvalImages: 32,
      },
      distillation: undefined,
      optimization: { epochs: 1, batchSize: 8, lr: 1e-3, lrFixed: true, warmupEpochs: 0 },
      augmentation: undefined,
      seed,
      trainable: undefined,
      evalIntervalEpochs: 0,
      promotion: undefined,
    });
    return store.create({ kind: 'fine-tune', spec }).job.id;
  }

  /** What the pod would append to its event file on the work volume. */
  function podWrites(id: string, record: JobFileRecord): void {
    const file = join(jobFolder(workDir, id), EVENTS_FILE);
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${JSON.stringify(record)}\n`);
  }

  /** The Job's pod, once the Job controller made it and the scheduler bound it. */
  async function scheduledPod(jobName: string): Promise<V1Pod> {
    return until(`a scheduled pod of ${jobName}`, async () => {
      const pods = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${jobName}` });
      return pods.items.find((p) => p.spec?.nodeName && !p.metadata?.deletionTimestamp);
    });
  }

  /** The kubelet's report of the pod's container: running, or terminated with an exit code. */
  async function reportPod(
    pod: V1Pod,
    phase: 'Running' | 'Succeeded' | 'Failed',
    exitCode = 0,
  ): Promise<void> {
    const name = pod.metadata!.name!;
    const container = pod.spec!.containers[0].name;
    const now = new Date();
    for (let attempt = 0; ; attempt++) {
      const current = await core.readNamespacedPod({ name, namespace });
      current.status = {
        ...current.status,
        phase,
        startTime: current.status?.startTime ?? now,
        containerStatuses: [
          {
            name: container,
            image: pod.spec!.containers[0].image!,
            imageID: '',
            ready: phase === 'Running',
            restartCount: 0,
            state:
              phase === 'Running'
                ? { running: { startedAt: now } }
                : {
                    terminated: {
                      exitCode,
                      reason: exitCode === 0 ? 'Completed' : 'Error',
                      startedAt: now,
                      finishedAt: now,
                    },
                  },
          },
        ],
      };
      try {
        await core.replaceNamespacedPodStatus({ name, namespace, body: current });
        return;
      } catch (error) {
        if (httpStatus(error) !== 409 || attempt > 10) throw error;
      }
    }
  }

  async function jobCondition(name: string, type: string): Promise<string | undefined> {
    const job = await batch.readNamespacedJob({ name, namespace });
    return job.status?.conditions?.find((c) => c.type === type && c.status === 'True')?.reason;
  }

  async function stateOf(id: string, state: string): Promise<true | undefined> {
    await runner.poll();
    return store.get(id).state === state ? true : undefined;
  }

  it('creates a real Job that asks for a GPU, whose pod passes admission and lands on the GPU node; cancel deletes both', async () => {
    const id = submit(1);
    const name = fineTuneJobName(id);
    await runner.poll();
    const job = await batch.readNamespacedJob({ name, namespace });
    const resources = job.spec!.template.spec!.containers[0].resources!;
    expect(resources.requests?.['nvidia.com/gpu']).toBe('1');
    expect(resources.limits?.['nvidia.com/gpu']).toBe('1');
    const pod = await scheduledPod(name);
    expect(pod.spec!.nodeName).toBe(GPU_NODE);
    expect(pod.spec!.securityContext?.runAsNonRoot).toBe(true);

    await reportPod(pod, 'Running');
    podWrites(id, { type: 'start', attempt: 1, pod: pod.metadata!.name!, time: Date.now() });
    await runner.poll();
    expect(store.get(id).state).toBe('RUNNING');

    runner.cancel(id);
    await until('CANCELLED', () => stateOf(id, 'CANCELLED'));
    await until(`Job ${name} deleted`, async () => {
      try {
        await batch.readNamespacedJob({ name, namespace });
        return undefined;
      } catch (error) {
        if (httpStatus(error) === 404) return true;
        throw error;
      }
    });
    // The garbage collector deletes the pod (propagation Background); a bound pod waits for its
    // kubelet to confirm the container stopped, which this test does in its place.
    const podName = pod.metadata!.name!;
    await until(`pod ${podName} gone`, async () => {
      try {
        const p = await core.readNamespacedPod({ name: podName, namespace });
        if (p.metadata?.deletionTimestamp)
          await core.deleteNamespacedPod({ name: podName, namespace, gracePeriodSeconds: 0 });
        return undefined;
      } catch (error) {
        if (httpStatus(error) === 404) return true;
        throw error;
      }
    });
    const messages = store.events(id).flatMap((e) => (e.body.type === 'message' ? [e.body.message] : []));
    expect(messages).toContainEqual(expect.stringMatching(/^cancelled; Kubernetes Job .* deleted/));
  });

  it('sees a Job succeed: the pod writes its result and exits 0, the Job controller completes the Job', async () => {
    const id = submit(2);
    const name = fineTuneJobName(id);
    await runner.poll();
    const pod = await scheduledPod(name);
    await reportPod(pod, 'Running');
    podWrites(id, { type: 'start', attempt: 1, pod: pod.metadata!.name!, time: Date.now() });
    podWrites(id, { type: 'done', result: { model: 'fmnist-student', version: 1 } });
    await reportPod(pod, 'Succeeded');
    expect(await until('Job Complete', () => jobCondition(name, 'Complete'))).toBeDefined();
    await until('SUCCEEDED', () => stateOf(id, 'SUCCEEDED'));
    expect(store.get(id).result).toEqual({ model: 'fmnist-student', version: 1 });
  });

  it('sees a Job fail: a permanent failure (exit 2) fails the Job through its pod failure policy', async () => {
    const id = submit(3);
    const name = fineTuneJobName(id);
    await runner.poll();
    const pod = await scheduledPod(name);
    await reportPod(pod, 'Running');
    podWrites(id, { type: 'start', attempt: 1, pod: pod.metadata!.name!, time: Date.now() });
    podWrites(id, { type: 'failed', error: 'student:1 not found in the registry', permanent: true });
    await reportPod(pod, 'Failed', EXIT_CODE_PERMANENT_FAILURE);
    expect(await until('Job Failed', () => jobCondition(name, 'Failed'))).toBe('PodFailurePolicy');
    await until('FAILED', () => stateOf(id, 'FAILED'));
    expect(store.get(id).error).toMatch(/student:1 not found in the registry/);
    // One pod only: the failure policy stopped the Job instead of retrying (backoffLimit 2).
    const pods = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${name}` });
    expect(pods.items).toHaveLength(1);
  });
});
