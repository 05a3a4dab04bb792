/**
 * The subset of the Kubernetes API types (batch/v1 Job and what it contains) that the fine-tune Job
 * uses, as plain JSON-shaped objects. Field names and shapes follow the Kubernetes API exactly, so the
 * objects serialise to what the API server (and its JSON schema) expects, and they are assignable to
 * `V1Job` of `@kubernetes/client-node`.
 */

export type Quantity = string;

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface EnvVar {
  name: string;
  value: string;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}

export interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  emptyDir?: { medium?: string; sizeLimit?: Quantity };
}

export interface ResourceRequirements {
  requests: Record<string, Quantity>;
  limits: Record<string, Quantity>;
}

export interface SecurityContext {
  runAsNonRoot: boolean;
  allowPrivilegeEscalation: boolean;
  readOnlyRootFilesystem: boolean;
  privileged: boolean;
  capabilities: { drop: string[] };
}

export interface PodSecurityContext {
  runAsNonRoot: boolean;
  runAsUser: number;
  runAsGroup: number;
  fsGroup: number;
  fsGroupChangePolicy: 'OnRootMismatch' | 'Always';
  seccompProfile: { type: 'RuntimeDefault' };
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  command: string[];
  args?: string[];
  workingDir?: string;
  env: EnvVar[];
  resources: ResourceRequirements;
  securityContext: SecurityContext;
  volumeMounts: VolumeMount[];
  terminationMessagePolicy: 'File' | 'FallbackToLogsOnError';
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface PodSpec {
  restartPolicy: 'Never' | 'OnFailure';
  serviceAccountName: string;
  automountServiceAccountToken: boolean;
  enableServiceLinks: boolean;
  terminationGracePeriodSeconds: number;
  securityContext: PodSecurityContext;
  containers: Container[];
  volumes: Volume[];
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  priorityClassName?: string;
}

export interface PodFailurePolicyRule {
  action: 'FailJob' | 'Ignore' | 'Count';
  onExitCodes?: { containerName?: string; operator: 'In' | 'NotIn'; values: number[] };
  onPodConditions?: { type: string; status: string }[];
}

export interface JobSpec {
  completions: number;
  parallelism: number;
  backoffLimit: number;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished: number;
  podFailurePolicy: { rules: PodFailurePolicyRule[] };
  template: {
    metadata: { labels: Record<string, string>; annotations: Record<string, string> };
    spec: PodSpec;
  };
}

export interface Job {
  apiVersion: 'batch/v1';
  kind: 'Job';
  metadata: ObjectMeta;
  spec: JobSpec;
}
