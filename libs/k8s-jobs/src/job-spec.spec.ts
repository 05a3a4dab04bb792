import { InvalidArgumentError } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import {
  buildFineTuneJob,
  EXIT_CODE_PERMANENT_FAILURE,
  FINETUNE_JOB_COMMAND,
  FINETUNE_JOB_SCRIPT,
  fineTuneJobLabelValue,
  fineTuneJobName,
  type FineTuneJobOptions,
} from './job-spec';

const base: FineTuneJobOptions = {
  jobId: '0b3f6c1e-8a2d-4f5e-9c7b-1a2b3c4d5e6f',
  namespace: 'deit-serve',
  image: 'deit-serve/trainer:0.1.0',
  command: ['node', 'dist/apps/trainer/src/finetune-job.js'],
  registryClaimName: 'deit-registry',
};

describe('fineTuneJobName', () => {
  it('keeps a UUID as it is', () => {
    expect(fineTuneJobName(base.jobId)).toBe(`deit-finetune-${base.jobId}`);
  });

  it('makes any id a DNS label of at most 63 characters, unique per id', () => {
    const ids = ['Job_42', 'job 42', 'x'.repeat(200), 'x'.repeat(201), '---', 'ÄÖÜ', 'job-42'];
    const names = ids.map(fineTuneJobName);
    for (const name of names) {
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(name.length).toBeLessThanOrEqual(63);
    }
    expect(new Set(names).size).toBe(ids.length);
  });

  it('rejects an empty id', () => {
    expect(() => fineTuneJobName('')).toThrow(InvalidArgumentError);
  });
});

describe('fineTuneJobLabelValue', () => {
  it('keeps valid values and hashes the rest into valid ones', () => {
    expect(fineTuneJobLabelValue('Job_42.a')).toBe('Job_42.a');
    for (const id of ['job 42', '_x_', 'y'.repeat(100), '///']) {
      const value = fineTuneJobLabelValue(id);
      expect(value).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
      expect(value.length).toBeLessThanOrEqual(63);
    }
  });
});

describe('buildFineTuneJob', () => {
  const job = buildFineTuneJob(base);
  const pod = job.spec.template.spec;
  const container = pod.containers[0];

  it('is a batch/v1 Job named after the trainer job, with its id as label and annotation', () => {
    expect(job.apiVersion).toBe('batch/v1');
    expect(job.kind).toBe('Job');
    expect(job.metadata.name).toBe(fineTuneJobName(base.jobId));
    expect(job.metadata.namespace).toBe('deit-serve');
    expect(job.metadata.labels).toMatchObject({
      'app.kubernetes.io/name': 'deit-finetune',
      'app.kubernetes.io/part-of': 'deit-serve',
      'app.kubernetes.io/managed-by': 'deit-trainer',
      'deit-serve.io/job-id': base.jobId,
    });
    expect(job.metadata.annotations['deit-serve.io/job-id']).toBe(base.jobId);
    expect(job.spec.template.metadata.labels).toEqual(job.metadata.labels);
  });

  it('runs once, retries a bounded number of times, and is cleaned up after it finishes', () => {
    expect(job.spec.completions).toBe(1);
    expect(job.spec.parallelism).toBe(1);
    expect(job.spec.backoffLimit).toBe(2);
    expect(job.spec.ttlSecondsAfterFinished).toBe(86_400);
    expect(pod.restartPolicy).toBe('Never');
    const rules = job.spec.podFailurePolicy.rules;
    expect(rules).toContainEqual({
      action: 'FailJob',
      onExitCodes: { containerName: 'finetune', operator: 'In', values: [EXIT_CODE_PERMANENT_FAILURE] },
    });
    expect(rules).toContainEqual({
      action: 'Ignore',
      onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }],
    });
  });

  it("runs the trainer image's one-job entry point unless told otherwise", () => {
    const { command: _command, ...rest } = base;
    const defaulted = buildFineTuneJob(rest).spec.template.spec.containers[0];
    expect(defaulted.command).toEqual([
      'node',
      '--enable-source-maps',
      '/app/dist/apps/trainer/src/run-job.js',
    ]);
    expect(FINETUNE_JOB_COMMAND.at(-1)).toBe(FINETUNE_JOB_SCRIPT);
  });

  it('runs the image and command given, with the registry and work directories in its environment', () => {
    expect(container.image).toBe(base.image);
    expect(container.command).toEqual(base.command);
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: 'DEIT_FINETUNE_JOB_ID', value: base.jobId },
        { name: 'DEIT_REGISTRY_DIR', value: '/registry' },
        { name: 'DEIT_TRAINER_WORK_DIR', value: '/work' },
      ]),
    );
  });

  it('mounts the registry claim read-write, a work volume and /tmp', () => {
    expect(pod.volumes).toContainEqual({
      name: 'registry',
      persistentVolumeClaim: { claimName: 'deit-registry' },
    });
    expect(pod.volumes).toContainEqual({ name: 'work', emptyDir: { sizeLimit: '20Gi' } });
    expect(pod.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '1Gi' } });
    const registry = container.volumeMounts.find((m) => m.name === 'registry');
    expect(registry).toEqual({ name: 'registry', mountPath: '/registry' });
    expect(container.volumeMounts.map((m) => m.mountPath).sort()).toEqual(['/registry', '/tmp', '/work']);
  });

  it('is hardened like the services: non-root, read-only root, no escalation, no capabilities, no token', () => {
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toEqual({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe('deit-finetune');
  });

  it('sets requests and limits; GPUs become nvidia.com/gpu with the taint tolerated', () => {
    expect(container.resources).toEqual({
      requests: { cpu: '2', memory: '4Gi' },
      limits: { cpu: '4', memory: '8Gi' },
    });
    expect(pod.tolerations).toBeUndefined();
    const gpu = buildFineTuneJob({ ...base, gpus: 2, nodeSelector: { 'nvidia.com/gpu.present': 'true' } });
    const gpuPod = gpu.spec.template.spec;
    expect(gpuPod.containers[0].resources.limits['nvidia.com/gpu']).toBe('2');
    expect(gpuPod.containers[0].resources.requests['nvidia.com/gpu']).toBe('2');
    expect(gpuPod.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(gpuPod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
  });

  it('takes a work claim, extra environment, an owner, a deadline', () => {
    const custom = buildFineTuneJob({
      ...base,
      workVolume: { type: 'persistentVolumeClaim', claimName: 'deit-finetune-work', subPath: 'runs/42' },
      env: { DEIT_TRAINING_BACKEND: 'tensorflow', DEIT_LOG_LEVEL: 'debug' },
      owner: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'deit-trainer', uid: 'u-1' },
      activeDeadlineSeconds: 3600,
      backoffLimit: 0,
    });
    const c = custom.spec.template.spec.containers[0];
    expect(custom.spec.template.spec.volumes).toContainEqual({
      name: 'work',
      persistentVolumeClaim: { claimName: 'deit-finetune-work' },
    });
    expect(c.volumeMounts).toContainEqual({ name: 'work', mountPath: '/work', subPath: 'runs/42' });
    expect(c.env.slice(-2)).toEqual([
      { name: 'DEIT_LOG_LEVEL', value: 'debug' },
      { name: 'DEIT_TRAINING_BACKEND', value: 'tensorflow' },
    ]);
    expect(custom.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: 'deit-trainer',
        uid: 'u-1',
        controller: false,
        blockOwnerDeletion: false,
      },
    ]);
    expect(custom.spec.activeDeadlineSeconds).toBe(3600);
    expect(custom.spec.backoffLimit).toBe(0);
  });

  it('is pure', () => {
    expect(buildFineTuneJob(base)).toEqual(job);
  });

  it.each<[string, Partial<FineTuneJobOptions>]>([
    ['a bad namespace', { namespace: 'Deit_Serve' }],
    ['an empty image', { image: ' ' }],
    ['an empty command', { command: [] }],
    ['a bad claim name', { registryClaimName: 'Registry!' }],
    ['a reserved variable', { env: { DEIT_REGISTRY_DIR: '/elsewhere' } }],
    ['a bad variable name', { env: { '1X': 'y' } }],
    ['a bad quantity', { resources: { limits: { memory: '8 GB' } } }],
    ['negative GPUs', { gpus: -1 }],
    ['a fractional backoff limit', { backoffLimit: 1.5 }],
    ['root', { runAsUser: 0 }],
    ['a relative mount', { workMountPath: 'work' }],
    ['clashing mounts', { workMountPath: '/registry' }],
    ['a bad label', { labels: { team: 'a b' } }],
  ])('rejects %s', (_what, override) => {
    expect(() => buildFineTuneJob({ ...base, ...override })).toThrow(InvalidArgumentError);
  });
});
