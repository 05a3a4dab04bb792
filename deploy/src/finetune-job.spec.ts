// The trainer's Job spec (libs/k8s-jobs, scope:trainer) checked against the Kubernetes schemas and the
// rendered job-mode manifests: a tooling test that reads a trainer library on purpose.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { BATCH_API_VERBS, buildFineTuneJob, type FineTuneJobOptions } from '@deit-serve/k8s-jobs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  allowedPorts,
  checkPodHardening,
  containerEnv,
  find,
  JOB_MODE_VERBS,
  type DeploymentSpec,
  type K8sObject,
} from './policy';
import { findTools, render, validateObjects } from './tools';

const { tools } = findTools();

const base: FineTuneJobOptions = {
  jobId: '0b3f6c1e-8a2d-4f5e-9c7b-1a2b3c4d5e6f',
  namespace: 'deit-serve',
  image: 'deit-serve/trainer:0.1.0',
  registryClaimName: 'deit-registry',
};

const variants: [string, FineTuneJobOptions][] = [
  ['defaults', base],
  [
    'GPU, work claim, owner, deadline, extra env',
    {
      ...base,
      jobId: 'Fine tune #42 / ResNet→DeiT '.repeat(5),
      gpus: 1,
      nodeSelector: { 'nvidia.com/gpu.present': 'true' },
      workVolume: { type: 'persistentVolumeClaim', claimName: 'deit-finetune-work', subPath: 'runs/42' },
      env: { DEIT_TRAINING_BACKEND: 'tensorflow' },
      owner: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: 'deit-trainer',
        uid: '5f1c0a4e-0000-4000-8000-000000000000',
      },
      activeDeadlineSeconds: 6 * 3600,
      backoffLimit: 0,
      priorityClassName: 'batch-low',
      command: ['node', '/app/dist/apps/trainer/src/run-job.js'],
      args: ['--resume'],
      workingDir: '/app',
      labels: { team: 'vision' },
    },
  ],
];

describe.skipIf(!tools)('the fine-tune Job spec (libs/k8s-jobs)', () => {
  it.each(variants)('validates against the strict batch/v1 Job schema: %s', (_what, options) => {
    const job = buildFineTuneJob(options);
    const [validated] = validateObjects(tools!, JSON.stringify(job));
    expect(validated).toEqual(job);
  });

  it('a broken Job does not validate (the schema check is live)', () => {
    const job = buildFineTuneJob(base) as unknown as { spec: Record<string, unknown> };
    job.spec['backoffLimit'] = 'two';
    expect(() => validateObjects(tools!, JSON.stringify(job))).toThrow(/backoffLimit/);
  });

  it('is hardened like the services', () => {
    for (const [, options] of variants) {
      const job = buildFineTuneJob(options);
      // The same checks as the Deployments', on the Job's pod template.
      const asWorkload = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: job.metadata.name },
        spec: { selector: { matchLabels: {} }, template: job.spec.template },
      } as K8sObject;
      expect(checkPodHardening([asWorkload])).toEqual([]);
      expect(job.spec.template.spec.automountServiceAccountToken).toBe(false);
      expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(0);
      expect(job.spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
    }
  });

  describe('fits the job-mode manifests (k8s/overlays/gpu)', () => {
    let objects: K8sObject[] = [];
    beforeAll(() => {
      objects = validateObjects(tools!, render(tools!, 'gpu')) as K8sObject[];
    });

    it('is built from the configuration the trainer Deployment gets, and lands where its Role allows', () => {
      const trainer = (find(objects, 'Deployment', 'deit-trainer')!.spec as DeploymentSpec).template.spec;
      const env = containerEnv(objects, trainer.containers[0]);
      const job = buildFineTuneJob({
        ...base,
        namespace: find(objects, 'Deployment', 'deit-trainer')!.metadata.namespace!,
        image: env.get('DEIT_FINETUNE_IMAGE')!,
        serviceAccountName: env.get('DEIT_FINETUNE_SERVICE_ACCOUNT')!,
        registryClaimName: env.get('DEIT_FINETUNE_REGISTRY_CLAIM')!,
        workVolume: { type: 'persistentVolumeClaim', claimName: env.get('DEIT_FINETUNE_WORK_CLAIM')! },
      });
      validateObjects(tools!, JSON.stringify(job));
      const pod = job.spec.template.spec;
      // The pods see the work claim where the trainer does: job and event files under the same paths.
      const work = pod.volumes.find((v) => v.name === 'work')?.persistentVolumeClaim?.claimName;
      expect(find(objects, 'PersistentVolumeClaim', work!)).toBeDefined();
      expect(pod.containers[0].volumeMounts.find((m) => m.name === 'work')?.mountPath).toBe(
        env.get('DEIT_TRAINER_WORK_DIR'),
      );
      expect(find(objects, 'ServiceAccount', pod.serviceAccountName)?.automountServiceAccountToken).toBe(
        false,
      );
      const claim = pod.volumes.find((v) => v.name === 'registry')?.persistentVolumeClaim?.claimName;
      expect(find(objects, 'PersistentVolumeClaim', claim!)).toBeDefined();
      expect(job.metadata.namespace).toBe(find(objects, 'Role', 'deit-trainer-jobs')?.metadata.namespace);
      const rule = find(objects, 'Role', 'deit-trainer-jobs')!.rules![0];
      expect(rule).toMatchObject({ apiGroups: ['batch'], resources: ['jobs'] });
      // Exactly the verbs of the calls the runner makes (BatchJobsApi), and what the policy allows.
      expect([...rule.verbs].sort()).toEqual(Object.values(BATCH_API_VERBS).sort());
      expect([...rule.verbs].sort()).toEqual(JOB_MODE_VERBS);
    });

    it("its pods fall under the namespace's NetworkPolicies: nothing in, DNS out", () => {
      const labels = buildFineTuneJob(base).spec.template.metadata.labels;
      expect(allowedPorts(objects, labels)).toEqual({ ingress: [], egress: ['TCP/53', 'UDP/53'] });
    });
  });
});
