import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '@deit-serve/core';
import type {
  Container,
  EnvVar,
  Job,
  OwnerReference,
  PodSecurityContext,
  Quantity,
  SecurityContext,
  Toleration,
  Volume,
  VolumeMount,
} from './types';

/** Labels and annotations this library puts on every fine-tune Job and its pods. */
export const FINETUNE_LABELS = {
  name: 'app.kubernetes.io/name',
  partOf: 'app.kubernetes.io/part-of',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  /** The trainer's job id, made a valid label value (see fineTuneJobLabelValue). */
  jobId: 'deit-serve.io/job-id',
} as const;

/** The trainer's job id, verbatim (labels are limited to 63 characters of a small alphabet). */
export const JOB_ID_ANNOTATION = 'deit-serve.io/job-id';

/**
 * Environment variables the builder sets in the fine-tune container; `env` may not override them.
 * DEIT_FINETUNE_JOB_ID names the trainer job the pod runs; the registry and work directories are the
 * volumes below, under the same variables the trainer reads (README, "Configuration").
 */
export const RESERVED_ENV = [
  'DEIT_FINETUNE_JOB_ID',
  'DEIT_REGISTRY_DIR',
  'DEIT_TRAINER_WORK_DIR',
  'HOME',
  'TMPDIR',
] as const;

/** Exit code of a fine-tune entry point for a bad spec or configuration: retrying cannot help. */
export const EXIT_CODE_PERMANENT_FAILURE = 2;

/**
 * The one-job entry point in the trainer's image (`apps/trainer/src/run-job.ts`, built by
 * tools/scripts/build.mjs to `dist/`, which docker/Dockerfile copies to `/app/dist`).
 */
export const FINETUNE_JOB_SCRIPT = '/app/dist/apps/trainer/src/run-job.js';
export const FINETUNE_JOB_COMMAND: readonly string[] = ['node', '--enable-source-maps', FINETUNE_JOB_SCRIPT];

export const FINETUNE_DEFAULTS = {
  serviceAccountName: 'deit-finetune',
  registryMountPath: '/registry',
  workMountPath: '/work',
  workSizeLimit: '20Gi',
  tmpSizeLimit: '1Gi',
  imagePullPolicy: 'IfNotPresent',
  requests: { cpu: '2', memory: '4Gi' },
  limits: { cpu: '4', memory: '8Gi' },
  backoffLimit: 2,
  /** Finished Jobs (and their pods and logs) are deleted a day later; the trainer's store keeps the record. */
  ttlSecondsAfterFinished: 86_400,
  terminationGracePeriodSeconds: 60,
  runAsUser: 10001,
  runAsGroup: 10001,
} as const;

export type WorkVolume =
  | { readonly type: 'emptyDir'; readonly sizeLimit?: Quantity }
  | { readonly type: 'persistentVolumeClaim'; readonly claimName: string; readonly subPath?: string };

export interface FineTuneJobOptions {
  /** The trainer's job id (any string; names and labels are derived from it). */
  readonly jobId: string;
  readonly namespace: string;
  /** The trainer's image (it holds the fine-tune code). */
  readonly image: string;
  /** Entry point of one fine-tune run in that image; default {@link FINETUNE_JOB_COMMAND}. */
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly workingDir?: string;
  /** Extra environment (the trainer's configuration); names in RESERVED_ENV are set by the builder. */
  readonly env?: Readonly<Record<string, string>>;
  /** A ServiceAccount without permissions (k8s/components/trainer-job-mode creates `deit-finetune`). */
  readonly serviceAccountName?: string;
  /** The registry PVC (ReadWriteMany): mounted read-write, the run publishes its model version there. */
  readonly registryClaimName: string;
  readonly registryMountPath?: string;
  /** Checkpoints and scratch space: a fresh emptyDir (default, 20Gi) or a claim that survives the pod. */
  readonly workVolume?: WorkVolume;
  readonly workMountPath?: string;
  readonly resources?: {
    readonly requests?: Readonly<Record<string, Quantity>>;
    readonly limits?: Readonly<Record<string, Quantity>>;
  };
  /** NVIDIA GPUs (nvidia.com/gpu, requests = limits); with none given, tolerates the nvidia.com/gpu taint. */
  readonly gpus?: number;
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly tolerations?: readonly Toleration[];
  readonly priorityClassName?: string;
  readonly imagePullPolicy?: Container['imagePullPolicy'];
  /** Pod failures (not counting evictions and preemptions) tolerated before the Job fails. */
  readonly backoffLimit?: number;
  readonly activeDeadlineSeconds?: number;
  readonly ttlSecondsAfterFinished?: number;
  readonly runAsUser?: number;
  readonly runAsGroup?: number;
  /** Extra labels for the Job and its pods (the builder's own win on conflict). */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Owner for garbage collection (e.g. the trainer's Deployment: deleting it deletes the Jobs). Not a
   * controller reference: the Job controller owns the pods, nobody owns the Job's lifecycle but the trainer.
   */
  readonly owner?: Omit<OwnerReference, 'controller' | 'blockOwnerDeletion'>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][-+]?\d+))?$/;
const JOB_NAME_PREFIX = 'deit-finetune-';
/** Job names become the pods' `batch.kubernetes.io/job-name` label: 63 characters at most. */
const MAX_JOB_NAME = 63;

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 10);
}

/**
 * The Job's name for a trainer job id: deterministic (creating it twice is a conflict, never a second
 * run), a DNS label, and unique per id (a hash is appended whenever the id had to be altered).
 */
export function fineTuneJobName(jobId: string): string {
  if (jobId.length === 0) throw new InvalidArgumentError('jobId must not be empty');
  const cleaned = jobId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  const exact = cleaned === jobId && `${JOB_NAME_PREFIX}${cleaned}`.length <= MAX_JOB_NAME;
  if (exact) return `${JOB_NAME_PREFIX}${cleaned}`;
  const hash = shortHash(jobId);
  const room = MAX_JOB_NAME - JOB_NAME_PREFIX.length - hash.length - 1;
  const stem = cleaned.slice(0, room).replace(/-+$/, '');
  return stem ? `${JOB_NAME_PREFIX}${stem}-${hash}` : `${JOB_NAME_PREFIX}${hash}`;
}

/** The job id as a label value (63 characters of [A-Za-z0-9-_.]), hashed when it is not one already. */
export function fineTuneJobLabelValue(jobId: string): string {
  if (jobId.length <= 63 && LABEL_VALUE.test(jobId)) return jobId;
  const hash = shortHash(jobId);
  const stem = jobId
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .slice(0, 63 - hash.length - 1)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return stem ? `${stem}-${hash}` : hash;
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvalidArgumentError(`fine-tune Job: ${message}`);
}

function checkQuantities(what: string, values: Readonly<Record<string, Quantity>>): void {
  for (const [name, value] of Object.entries(values)) {
    check(QUALIFIED_NAME.test(name), `${what}: bad resource name ${JSON.stringify(name)}`);
    check(QUANTITY.test(value), `${what}.${name}: ${JSON.stringify(value)} is not a quantity`);
  }
}

function checkPositiveInt(what: string, value: number | undefined, min: number): void {
  if (value === undefined) return;
  check(Number.isInteger(value) && value >= min, `${what} must be an integer ≥ ${min}, got ${value}`);
}

function checkLabels(labels: Readonly<Record<string, string>>): void {
  for (const [key, value] of Object.entries(labels)) {
    check(QUALIFIED_NAME.test(key) && key.length <= 316, `bad label key ${JSON.stringify(key)}`);
    check(value.length <= 63 && LABEL_VALUE.test(value), `bad label value ${JSON.stringify(value)}`);
  }
}

function checkAbsolute(what: string, path: string): void {
  check(path.startsWith('/') && !path.split('/').includes('..'), `${what} must be an absolute path: ${path}`);
}

/**
 * The batch/v1 Job that runs one fine-tune in its own pod (trainer job mode): the trainer's image and
 * entry point, the registry PVC mounted read-write (the run publishes its version there atomically,
 * the inference pods mount it read-only), a work volume for checkpoints, a memory-backed-free /tmp, the
 * same hardened security context as the services (non-root, read-only root file system, no privilege
 * escalation, no capabilities, RuntimeDefault seccomp), no API token, bounded retries that ignore
 * evictions and stop at once on a permanent failure (exit code 2), and a TTL for the finished Job.
 *
 * Pure: same options, same object. Throws InvalidArgumentError for options Kubernetes would reject.
 */
export function buildFineTuneJob(options: FineTuneJobOptions): Job {
  const d = FINETUNE_DEFAULTS;
  check(
    DNS_LABEL.test(options.namespace) && options.namespace.length <= 63,
    `bad namespace ${options.namespace}`,
  );
  check(
    options.image.trim() !== '' && !/\s/.test(options.image),
    `bad image ${JSON.stringify(options.image)}`,
  );
  const command = options.command ?? FINETUNE_JOB_COMMAND;
  check(command.length > 0 && command.every((c) => c !== ''), 'command must not be empty');
  check(DNS_LABEL.test(options.registryClaimName), `bad registry claim name ${options.registryClaimName}`);
  const serviceAccountName = options.serviceAccountName ?? d.serviceAccountName;
  check(DNS_LABEL.test(serviceAccountName), `bad service account name ${serviceAccountName}`);
  const registryMountPath = options.registryMountPath ?? d.registryMountPath;
  const workMountPath = options.workMountPath ?? d.workMountPath;
  checkAbsolute('registryMountPath', registryMountPath);
  checkAbsolute('workMountPath', workMountPath);
  check(
    new Set([registryMountPath, workMountPath, '/tmp']).size === 3,
    'registry, work and /tmp mounts must differ',
  );
  checkPositiveInt('gpus', options.gpus, 0);
  checkPositiveInt('backoffLimit', options.backoffLimit, 0);
  checkPositiveInt('activeDeadlineSeconds', options.activeDeadlineSeconds, 1);
  checkPositiveInt('ttlSecondsAfterFinished', options.ttlSecondsAfterFinished, 0);
  checkPositiveInt('runAsUser', options.runAsUser, 1);
  checkPositiveInt('runAsGroup', options.runAsGroup, 1);
  const requests: Record<string, Quantity> = { ...d.requests, ...options.resources?.requests };
  const limits: Record<string, Quantity> = { ...d.limits, ...options.resources?.limits };
  checkQuantities('resources.requests', requests);
  checkQuantities('resources.limits', limits);
  const gpus = options.gpus ?? 0;
  if (gpus > 0) {
    requests['nvidia.com/gpu'] = String(gpus);
    limits['nvidia.com/gpu'] = String(gpus);
  }

  const env: EnvVar[] = [
    { name: 'DEIT_FINETUNE_JOB_ID', value: options.jobId },
    { name: 'DEIT_REGISTRY_DIR', value: registryMountPath },
    { name: 'DEIT_TRAINER_WORK_DIR', value: workMountPath },
    { name: 'HOME', value: '/tmp' },
    { name: 'TMPDIR', value: '/tmp' },
  ];
  for (const [name, value] of Object.entries(options.env ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    check(ENV_NAME.test(name), `bad environment variable name ${JSON.stringify(name)}`);
    check(!(RESERVED_ENV as readonly string[]).includes(name), `${name} is set by the builder`);
    env.push({ name, value });
  }

  const labels: Record<string, string> = {
    ...options.labels,
    [FINETUNE_LABELS.name]: 'deit-finetune',
    [FINETUNE_LABELS.partOf]: 'deit-serve',
    [FINETUNE_LABELS.component]: 'finetune',
    [FINETUNE_LABELS.managedBy]: 'deit-trainer',
    [FINETUNE_LABELS.jobId]: fineTuneJobLabelValue(options.jobId),
  };
  checkLabels(labels);
  const annotations = { [JOB_ID_ANNOTATION]: options.jobId };

  const workVolume: Volume =
    options.workVolume?.type === 'persistentVolumeClaim'
      ? { name: 'work', persistentVolumeClaim: { claimName: options.workVolume.claimName } }
      : { name: 'work', emptyDir: { sizeLimit: options.workVolume?.sizeLimit ?? d.workSizeLimit } };
  if (options.workVolume?.type === 'persistentVolumeClaim') {
    check(
      DNS_LABEL.test(options.workVolume.claimName),
      `bad work claim name ${options.workVolume.claimName}`,
    );
  } else if (options.workVolume?.sizeLimit !== undefined) {
    check(QUANTITY.test(options.workVolume.sizeLimit), `bad work sizeLimit ${options.workVolume.sizeLimit}`);
  }
  const workMount: VolumeMount = { name: 'work', mountPath: workMountPath };
  if (options.workVolume?.type === 'persistentVolumeClaim' && options.workVolume.subPath) {
    workMount.subPath = options.workVolume.subPath;
  }

  const securityContext: SecurityContext = {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
  };
  const podSecurityContext: PodSecurityContext = {
    runAsNonRoot: true,
    runAsUser: options.runAsUser ?? d.runAsUser,
    runAsGroup: options.runAsGroup ?? d.runAsGroup,
    fsGroup: options.runAsGroup ?? d.runAsGroup,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };

  const container: Container = {
    name: 'finetune',
    image: options.image,
    imagePullPolicy: options.imagePullPolicy ?? d.imagePullPolicy,
    command: [...command],
    env,
    resources: { requests, limits },
    securityContext,
    volumeMounts: [
      { name: 'registry', mountPath: registryMountPath },
      workMount,
      { name: 'tmp', mountPath: '/tmp' },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (options.args) container.args = [...options.args];
  if (options.workingDir) {
    checkAbsolute('workingDir', options.workingDir);
    container.workingDir = options.workingDir;
  }

  const tolerations: Toleration[] | undefined = options.tolerations
    ? options.tolerations.map((t) => ({ ...t }))
    : gpus > 0
      ? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]
      : undefined;

  const job: Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: fineTuneJobName(options.jobId),
      namespace: options.namespace,
      labels,
      annotations,
    },
    spec: {
      completions: 1,
      parallelism: 1,
      backoffLimit: options.backoffLimit ?? d.backoffLimit,
      ttlSecondsAfterFinished: options.ttlSecondsAfterFinished ?? d.ttlSecondsAfterFinished,
      podFailurePolicy: {
        rules: [
          // A bad spec fails the same way every time: stop now instead of retrying.
          {
            action: 'FailJob',
            onExitCodes: { containerName: 'finetune', operator: 'In', values: [EXIT_CODE_PERMANENT_FAILURE] },
          },
          // Evictions, preemptions and node drains are not the run's fault: retry without counting.
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        ],
      },
      template: {
        metadata: { labels: { ...labels }, annotations: { ...annotations } },
        spec: {
          // podFailurePolicy needs Never: each retry is a new pod, resuming from the last checkpoint.
          restartPolicy: 'Never',
          serviceAccountName,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: d.terminationGracePeriodSeconds,
          securityContext: podSecurityContext,
          containers: [container],
          volumes: [
            { name: 'registry', persistentVolumeClaim: { claimName: options.registryClaimName } },
            workVolume,
            { name: 'tmp', emptyDir: { sizeLimit: d.tmpSizeLimit } },
          ],
        },
      },
    },
  };
  if (options.activeDeadlineSeconds !== undefined)
    job.spec.activeDeadlineSeconds = options.activeDeadlineSeconds;
  if (options.nodeSelector) job.spec.template.spec.nodeSelector = { ...options.nodeSelector };
  if (tolerations) job.spec.template.spec.tolerations = tolerations;
  if (options.priorityClassName) job.spec.template.spec.priorityClassName = options.priorityClassName;
  if (options.owner) {
    job.metadata.ownerReferences = [{ ...options.owner, controller: false, blockOwnerDeletion: false }];
  }
  return job;
}
