/**
 * The deployment policies, as checks over the objects an overlay renders to. Each returns the list of
 * violations (empty: compliant), so that a test can both assert a clean render and prove that each
 * check catches its regression.
 */
import { checkAutoscalingSignal, checkDnsEgress, checkNamespace } from './cluster-policy';

export interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec?: unknown;
  data?: Record<string, string>;
  rules?: PolicyRule[];
  roleRef?: { apiGroup: string; kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
  automountServiceAccountToken?: boolean;
}

interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: unknown;
  tcpSocket?: unknown;
  exec?: unknown;
}

interface Container {
  name: string;
  image?: string;
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  containers: Container[];
  initContainers?: Container[];
  volumes?: {
    name: string;
    persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
    emptyDir?: { sizeLimit?: string; medium?: string };
  }[];
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  topologySpreadConstraints?: {
    topologyKey: string;
    labelSelector?: { matchLabels?: Record<string, string> };
  }[];
}

export interface DeploymentSpec {
  replicas?: number;
  strategy?: { type?: string };
  selector: { matchLabels: Record<string, string> };
  template: {
    metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
    spec: PodSpec;
  };
}

interface ServiceSpec {
  clusterIP?: string;
  type?: string;
  selector?: Record<string, string>;
  ports: { name?: string; port: number; targetPort?: number | string }[];
}

interface PvcSpec {
  accessModes: string[];
}

interface HpaSpec {
  scaleTargetRef: { apiVersion: string; kind: string; name: string };
  minReplicas?: number;
  maxReplicas: number;
}

interface PdbSpec {
  selector: { matchLabels: Record<string, string> };
  minAvailable?: number | string;
  maxUnavailable?: number | string;
}

interface NetworkPolicyPort {
  protocol?: string;
  port?: number | string;
}

interface NetworkPolicySpec {
  podSelector: { matchLabels?: Record<string, string> };
  policyTypes?: string[];
  ingress?: { from?: unknown[]; ports?: NetworkPolicyPort[] }[];
  egress?: { to?: unknown[]; ports?: NetworkPolicyPort[] }[];
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

export type Overlay = 'cpu' | 'gpu' | 'dev';

export const INFERENCE = 'deit-inference';
export const TRAINER = 'deit-trainer';
const GRPC_PORT = 50051;
const METRICS_PORT = 9464;
const TRAINER_PORT = 50052;
/** What job mode may do: batch Jobs, with the verbs its runner calls (create, list, delete), nothing else. */
export const JOB_MODE_VERBS = ['create', 'delete', 'list'];
/** Where the fine-tune Job pods mount the work claim (libs/k8s-jobs FINETUNE_DEFAULTS.workMountPath). */
export const FINETUNE_WORK_MOUNT = '/work';

export function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name);
}

function spec<T>(object: K8sObject | undefined): T | undefined {
  return object?.spec as T | undefined;
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

function workloads(objects: readonly K8sObject[]): { name: string; spec: DeploymentSpec }[] {
  return objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet' || o.kind === 'DaemonSet')
    .map((o) => ({ name: o.metadata.name, spec: o.spec as DeploymentSpec }));
}

/** The environment of a container: its `env` over its ConfigMaps' data, as the kubelet resolves it. */
export function containerEnv(objects: readonly K8sObject[], container: Container): Map<string, string> {
  const env = new Map<string, string>();
  for (const source of container.envFrom ?? []) {
    const name = source.configMapRef?.name;
    if (!name) continue;
    const configMap = find(objects, 'ConfigMap', name);
    for (const [k, v] of Object.entries(configMap?.data ?? {})) env.set(k, v);
  }
  for (const variable of container.env ?? [])
    if (variable.value !== undefined) env.set(variable.name, variable.value);
  return env;
}

function mainContainer(objects: readonly K8sObject[], deployment: string): Container | undefined {
  return spec<DeploymentSpec>(find(objects, 'Deployment', deployment))?.template.spec.containers[0];
}

/** Every pod and container: non-root, read-only root, no escalation, no capabilities, seccomp, resources. */
export function checkPodHardening(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const { name, spec: d } of workloads(objects)) {
    const pod = d.template.spec;
    if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${name}: pod runAsNonRoot is not true`);
    if (pod.securityContext?.runAsUser === 0) problems.push(`${name}: pod runs as uid 0`);
    if (pod.securityContext?.seccompProfile?.type !== 'RuntimeDefault') {
      problems.push(`${name}: pod seccompProfile is not RuntimeDefault`);
    }
    if (!pod.serviceAccountName) problems.push(`${name}: no serviceAccountName (would run as "default")`);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const where = `${name}/${c.name}`;
      const sc = c.securityContext ?? {};
      if (sc.allowPrivilegeEscalation !== false)
        problems.push(`${where}: allowPrivilegeEscalation is not false`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
      if (sc.privileged === true) problems.push(`${where}: privileged`);
      if (sc.runAsUser === 0) problems.push(`${where}: runs as uid 0`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL'))
        problems.push(`${where}: capabilities not dropped (ALL)`);
      if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${where}: adds capabilities`);
      for (const kind of ['requests', 'limits'] as const) {
        for (const resource of ['cpu', 'memory']) {
          if (!c.resources?.[kind]?.[resource]) problems.push(`${where}: no ${resource} ${kind}`);
        }
      }
      if (!c.image || !/:[\w][\w.-]*$|@sha256:/.test(c.image) || c.image.endsWith(':latest')) {
        problems.push(`${where}: image ${c.image} has no pinned tag`);
      }
    }
  }
  return problems;
}

/** The inference Deployment: gRPC probes, /tmp, read-only registry, spread, max connection age. */
export function checkInference(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const deployment = find(objects, 'Deployment', INFERENCE);
  const d = spec<DeploymentSpec>(deployment);
  if (!d) return [`no Deployment ${INFERENCE}`];
  const pod = d.template.spec;
  const c = pod.containers.find((x) => x.name === 'inference');
  if (!c) return [`${INFERENCE}: no container "inference"`];
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
    const p = c[probe];
    if (p?.grpc?.port !== GRPC_PORT)
      problems.push(`${INFERENCE}: ${probe} is not a gRPC probe on ${GRPC_PORT}`);
    if (p && (p.httpGet || p.tcpSocket || p.exec)) problems.push(`${INFERENCE}: ${probe} is not gRPC only`);
  }
  const ports = new Set((c.ports ?? []).map((p) => p.containerPort));
  for (const port of [GRPC_PORT, METRICS_PORT])
    if (!ports.has(port)) problems.push(`${INFERENCE}: no port ${port}`);
  if (d.replicas !== undefined)
    problems.push(`${INFERENCE}: sets replicas (the HorizontalPodAutoscaler owns them)`);

  const registryVolume = pod.volumes?.find((v) => v.persistentVolumeClaim?.claimName === 'deit-registry');
  if (!registryVolume) problems.push(`${INFERENCE}: registry claim not mounted`);
  else {
    // The seed-registry init container is the pod's only writer; the serving container reads.
    const mount = c.volumeMounts?.find((m) => m.name === registryVolume.name);
    if (mount?.readOnly !== true) problems.push(`${INFERENCE}: registry mount not readOnly`);
    const seed = pod.initContainers?.find((x) => x.name === 'seed-registry');
    const seedMount = seed?.volumeMounts?.find((m) => m.name === registryVolume.name);
    if (!seed || !seedMount || seedMount.readOnly || registryVolume.persistentVolumeClaim?.readOnly) {
      problems.push(
        `${INFERENCE}: no seed-registry init container writing the registry (needs a trainer pod to start)`,
      );
    }
    const writers = (pod.initContainers ?? []).filter(
      (x) =>
        x.name !== 'seed-registry' &&
        x.volumeMounts?.some((m) => m.name === registryVolume.name && !m.readOnly),
    );
    if (writers.length)
      problems.push(`${INFERENCE}: ${writers.map((x) => x.name).join(', ')} write the registry`);
  }
  const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
  if (!tmp || !pod.volumes?.find((v) => v.name === tmp.name)?.emptyDir) {
    problems.push(`${INFERENCE}: no emptyDir at /tmp (the root file system is read-only)`);
  }
  if ((pod.topologySpreadConstraints ?? []).length === 0) problems.push(`${INFERENCE}: no topology spread`);
  if (pod.automountServiceAccountToken !== false) problems.push(`${INFERENCE}: mounts an API token`);

  const env = containerEnv(objects, c);
  const age = Number(env.get('DEIT_GRPC_MAX_CONNECTION_AGE_MS') ?? '0');
  if (!(age > 0)) problems.push(`${INFERENCE}: DEIT_GRPC_MAX_CONNECTION_AGE_MS not set (> 0)`);
  if (env.get('DEIT_REGISTRY_DIR') !== mountPathOf(c, registryVolume?.name)) {
    problems.push(`${INFERENCE}: DEIT_REGISTRY_DIR is not the registry mount`);
  }
  return problems;
}

function mountPathOf(c: Container, volume: string | undefined): string | undefined {
  return c.volumeMounts?.find((m) => m.name === volume)?.mountPath;
}

/** Services, PDB and HPA of the inference pods. */
export function checkInferenceTraffic(objects: readonly K8sObject[], overlay: Overlay): string[] {
  const problems: string[] = [];
  const podLabels =
    spec<DeploymentSpec>(find(objects, 'Deployment', INFERENCE))?.template.metadata.labels ?? {};
  const services = objects.filter((o) => o.kind === 'Service');
  const grpc = services.find((s) => spec<ServiceSpec>(s)?.ports.some((p) => p.port === GRPC_PORT));
  const grpcSpec = spec<ServiceSpec>(grpc);
  if (!grpcSpec) problems.push('no Service for gRPC :50051');
  else {
    if (grpcSpec.clusterIP !== 'None')
      problems.push(`Service ${grpc?.metadata.name}: not headless (clusterIP None)`);
    if (!matches(grpcSpec.selector, podLabels) || !grpcSpec.selector)
      problems.push('gRPC Service does not select the inference pods');
  }
  const metrics = services.find((s) => spec<ServiceSpec>(s)?.ports.some((p) => p.port === METRICS_PORT));
  if (!metrics) problems.push('no Service for metrics :9464');
  else {
    const a = metrics.metadata.annotations ?? {};
    if (a['prometheus.io/scrape'] !== 'true' || a['prometheus.io/port'] !== String(METRICS_PORT)) {
      problems.push('metrics Service lacks prometheus.io annotations');
    }
    if (!matches(spec<ServiceSpec>(metrics)?.selector, podLabels))
      problems.push('metrics Service does not select the inference pods');
  }
  const pdb = objects.find(
    (o) => o.kind === 'PodDisruptionBudget' && matches(spec<PdbSpec>(o)?.selector.matchLabels, podLabels),
  );
  if (!pdb || pdb.apiVersion !== 'policy/v1')
    problems.push('no policy/v1 PodDisruptionBudget for the inference pods');
  const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler');
  const hpaSpec = spec<HpaSpec>(hpa);
  if (!hpa || hpa.apiVersion !== 'autoscaling/v2') problems.push('no autoscaling/v2 HorizontalPodAutoscaler');
  else if (hpaSpec?.scaleTargetRef.kind !== 'Deployment' || hpaSpec.scaleTargetRef.name !== INFERENCE) {
    problems.push('the HorizontalPodAutoscaler does not scale the inference Deployment');
  } else if (overlay !== 'dev' && (hpaSpec.minReplicas ?? 1) < 2) {
    problems.push('the HorizontalPodAutoscaler allows a single inference pod');
  }
  return problems;
}

/** Registry and trainer storage: RWX registry (RWO on dev), read-write for the trainer, RWO SQLite. */
export function checkStorage(objects: readonly K8sObject[], overlay: Overlay): string[] {
  const problems: string[] = [];
  const registry = spec<PvcSpec>(find(objects, 'PersistentVolumeClaim', 'deit-registry'));
  const expected = overlay === 'dev' ? 'ReadWriteOnce' : 'ReadWriteMany';
  if (registry?.accessModes.join() !== expected) problems.push(`registry PVC is not ${expected}`);
  const state = spec<PvcSpec>(find(objects, 'PersistentVolumeClaim', 'deit-trainer-state'));
  if (state?.accessModes.join() !== 'ReadWriteOnce') problems.push('trainer state PVC is not ReadWriteOnce');

  const trainer = spec<DeploymentSpec>(find(objects, 'Deployment', TRAINER));
  if (!trainer) return [...problems, `no Deployment ${TRAINER}`];
  if (trainer.replicas !== 1) problems.push(`${TRAINER}: replicas is not 1 (one SQLite writer)`);
  if (trainer.strategy?.type !== 'Recreate') problems.push(`${TRAINER}: strategy is not Recreate`);
  const pod = trainer.template.spec;
  const c = pod.containers.find((x) => x.name === 'trainer');
  if (!c) return [...problems, `${TRAINER}: no container "trainer"`];
  const volumeOf = (claim: string) => pod.volumes?.find((v) => v.persistentVolumeClaim?.claimName === claim);
  const registryVolume = volumeOf('deit-registry');
  const registryMount = c.volumeMounts?.find((m) => m.name === registryVolume?.name);
  if (!registryMount || registryMount.readOnly || registryVolume?.persistentVolumeClaim?.readOnly) {
    problems.push(`${TRAINER}: registry not mounted read-write`);
  }
  const stateMount = c.volumeMounts?.find((m) => m.name === volumeOf('deit-trainer-state')?.name);
  const env = containerEnv(objects, c);
  if (!stateMount || !env.get('DEIT_JOBS_DB')?.startsWith(`${stateMount.mountPath}/`)) {
    problems.push(`${TRAINER}: DEIT_JOBS_DB is not on the state volume`);
  }
  if (env.get('DEIT_REGISTRY_DIR') !== registryMount?.mountPath)
    problems.push(`${TRAINER}: DEIT_REGISTRY_DIR is not the registry mount`);
  for (const probe of ['readinessProbe', 'livenessProbe'] as const) {
    if (c[probe]?.grpc?.port !== TRAINER_PORT)
      problems.push(`${TRAINER}: ${probe} is not a gRPC probe on ${TRAINER_PORT}`);
  }
  return problems;
}

function portsOf(rules: { ports?: NetworkPolicyPort[] }[] | undefined): string[] {
  return (rules ?? []).flatMap((r) =>
    (r.ports ?? [{ protocol: 'ANY', port: 'ANY' }]).map((p) => `${p.protocol ?? 'TCP'}/${p.port ?? 'ANY'}`),
  );
}

/** What the NetworkPolicies let in and out of pods with these labels (ports only; sources aside). */
export function allowedPorts(
  objects: readonly K8sObject[],
  labels: Record<string, string>,
): { ingress: string[]; egress: string[] } {
  const ingress = new Set<string>();
  const egress = new Set<string>();
  for (const o of objects.filter((x) => x.kind === 'NetworkPolicy')) {
    const s = spec<NetworkPolicySpec>(o);
    if (!s || !matches(s.podSelector.matchLabels, labels)) continue;
    for (const p of portsOf(s.ingress)) ingress.add(p);
    for (const p of portsOf(s.egress)) egress.add(p);
  }
  return { ingress: [...ingress].sort(), egress: [...egress].sort() };
}

/** Default deny, then: inference in on 50051 and 9464, trainer in on 50052, out DNS only (+ API server in job mode). */
export function checkNetworkPolicies(objects: readonly K8sObject[], jobMode: boolean): string[] {
  const problems: string[] = [];
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  const denyAll = policies.find((o) => {
    const s = spec<NetworkPolicySpec>(o);
    return (
      s &&
      Object.keys(s.podSelector.matchLabels ?? {}).length === 0 &&
      s.policyTypes?.includes('Ingress') &&
      s.policyTypes.includes('Egress') &&
      !s.ingress?.length &&
      !s.egress?.length
    );
  });
  if (!denyAll) problems.push('no default-deny NetworkPolicy (all pods, Ingress and Egress, no rules)');
  const dns = ['TCP/53', 'UDP/53'];
  const expect = (who: string, labels: Record<string, string>, ingress: string[], egress: string[]) => {
    const got = allowedPorts(objects, labels);
    if (got.ingress.join() !== [...ingress].sort().join())
      problems.push(`${who}: ingress allows ${got.ingress.join(', ')}; expected ${ingress.join(', ')}`);
    if (got.egress.join() !== [...egress].sort().join())
      problems.push(`${who}: egress allows ${got.egress.join(', ')}; expected ${egress.join(', ')}`);
  };
  const labelsOf = (name: string) =>
    spec<DeploymentSpec>(find(objects, 'Deployment', name))?.template.metadata.labels ?? {};
  expect(INFERENCE, labelsOf(INFERENCE), [`TCP/${GRPC_PORT}`, `TCP/${METRICS_PORT}`], dns);
  expect(
    TRAINER,
    labelsOf(TRAINER),
    [`TCP/${TRAINER_PORT}`],
    jobMode ? [...dns, 'TCP/443', 'TCP/6443'] : dns,
  );
  // The fine-tune Job pods (libs/k8s-jobs labels them so): nothing in, DNS out.
  expect(
    'deit-finetune',
    { 'app.kubernetes.io/name': 'deit-finetune', 'app.kubernetes.io/part-of': 'deit-serve' },
    [],
    dns,
  );
  return problems;
}

/**
 * RBAC: nothing cluster-wide; only in job mode, one Role (batch jobs, JOB_MODE_VERBS at most) bound to
 * the trainer's account, whose token only then is mounted. Every other pod has no token.
 */
export function checkRbac(objects: readonly K8sObject[], jobMode: boolean): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    if (o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')
      problems.push(`${o.kind} ${o.metadata.name}: cluster-wide RBAC`);
  }
  const roles = objects.filter((o) => o.kind === 'Role');
  const bindings = objects.filter((o) => o.kind === 'RoleBinding');
  if (!jobMode) {
    if (roles.length + bindings.length > 0) problems.push('RBAC objects without job mode');
  } else {
    if (roles.length !== 1 || bindings.length !== 1)
      problems.push('job mode needs exactly one Role and one RoleBinding');
    for (const role of roles) {
      for (const rule of role.rules ?? []) {
        const where = `Role ${role.metadata.name}`;
        if (rule.apiGroups?.join() !== 'batch' || rule.resources?.join() !== 'jobs') {
          problems.push(
            `${where}: grants ${rule.apiGroups?.join('|')}/${rule.resources?.join('|')} (only batch/jobs)`,
          );
        }
        for (const verb of rule.verbs)
          if (!JOB_MODE_VERBS.includes(verb)) problems.push(`${where}: grants verb ${verb}`);
      }
    }
    for (const binding of bindings) {
      const role = roles.find((r) => r.metadata.name === binding.roleRef?.name);
      if (binding.roleRef?.kind !== 'Role' || !role)
        problems.push(`RoleBinding ${binding.metadata.name}: not bound to the job Role`);
      const subjects = binding.subjects ?? [];
      const ok =
        subjects.length === 1 &&
        subjects[0]?.kind === 'ServiceAccount' &&
        subjects[0].name ===
          spec<DeploymentSpec>(find(objects, 'Deployment', TRAINER))?.template.spec.serviceAccountName &&
        subjects[0].namespace === binding.metadata.namespace;
      if (!ok)
        problems.push(
          `RoleBinding ${binding.metadata.name}: subject is not the trainer's ServiceAccount in its namespace`,
        );
    }
  }
  for (const { name, spec: d } of workloads(objects)) {
    const mounts = d.template.spec.automountServiceAccountToken !== false;
    if (mounts && !(jobMode && name === TRAINER)) problems.push(`${name}: mounts a Kubernetes API token`);
  }
  return problems;
}

/** The GPU overlay: CUDA image and provider, a GPU per pod, GPU nodes; other overlays none of it. */
export function checkAccelerator(objects: readonly K8sObject[], overlay: Overlay): string[] {
  const problems: string[] = [];
  const d = spec<DeploymentSpec>(find(objects, 'Deployment', INFERENCE));
  const c = mainContainer(objects, INFERENCE);
  if (!d || !c) return [`no Deployment ${INFERENCE}`];
  const provider = containerEnv(objects, c).get('DEIT_EXECUTION_PROVIDER');
  const gpus = Number(c.resources?.limits?.['nvidia.com/gpu'] ?? '0');
  const tolerates = (d.template.spec.tolerations ?? []).some((t) => t.key === 'nvidia.com/gpu');
  if (overlay === 'gpu') {
    if (provider !== 'cuda') problems.push('gpu: DEIT_EXECUTION_PROVIDER is not cuda');
    if (!(gpus >= 1)) problems.push('gpu: no nvidia.com/gpu limit');
    if (!tolerates) problems.push('gpu: no toleration for the nvidia.com/gpu taint');
    if (Object.keys(d.template.spec.nodeSelector ?? {}).length === 0) problems.push('gpu: no node selector');
    if (!/cuda/.test(c.image ?? '')) problems.push('gpu: the inference image is not the CUDA one');
  } else {
    if (provider !== 'cpu') problems.push(`${overlay}: DEIT_EXECUTION_PROVIDER is not cpu`);
    if (gpus > 0 || tolerates) problems.push(`${overlay}: asks for GPUs`);
  }
  return problems;
}

/** Job mode wiring: the Jobs run the trainer's own image under an account without permissions. */
export function checkJobMode(objects: readonly K8sObject[], jobMode: boolean, overlay?: Overlay): string[] {
  const c = mainContainer(objects, TRAINER);
  if (!c) return [`no Deployment ${TRAINER}`];
  const env = containerEnv(objects, c);
  if (!jobMode)
    return env.get('DEIT_TRAINER_RUNNER') === 'kubernetes' ? ['job mode set without its RBAC'] : [];
  const problems: string[] = [];
  if (env.get('DEIT_TRAINER_RUNNER') !== 'kubernetes')
    problems.push('job mode: DEIT_TRAINER_RUNNER is not kubernetes');
  // On GPU the fine-tunes run the GPU build of the trainer's image (same tag) with a GPU each.
  const gpu = overlay === 'gpu';
  const finetuneImage = gpu ? (c.image ?? '').replace(/^([^:@]+)/, '$1-cuda') : c.image;
  if (env.get('DEIT_FINETUNE_IMAGE') !== finetuneImage)
    problems.push(
      `job mode: DEIT_FINETUNE_IMAGE ${env.get('DEIT_FINETUNE_IMAGE')} is not ${finetuneImage}, the trainer's ${gpu ? 'GPU ' : ''}image`,
    );
  const gpus = Number(env.get('DEIT_FINETUNE_GPUS') ?? '0');
  if (gpu && !(gpus >= 1)) problems.push('job mode: gpu: DEIT_FINETUNE_GPUS is not at least 1');
  if (!gpu && gpus > 0) problems.push(`job mode: ${overlay}: the fine-tunes ask for GPUs`);
  const account = find(objects, 'ServiceAccount', env.get('DEIT_FINETUNE_SERVICE_ACCOUNT') ?? '');
  if (!account) problems.push('job mode: the fine-tune ServiceAccount does not exist');
  else if (account.automountServiceAccountToken !== false)
    problems.push('job mode: the fine-tune ServiceAccount mounts a token');
  if (!find(objects, 'PersistentVolumeClaim', env.get('DEIT_FINETUNE_REGISTRY_CLAIM') ?? '')) {
    problems.push('job mode: DEIT_FINETUNE_REGISTRY_CLAIM names no claim');
  }
  // The trainer and the Job pods share the work claim (job files, event files, checkpoints) at the
  // same path, on any nodes.
  const workClaim = env.get('DEIT_FINETUNE_WORK_CLAIM') ?? '';
  const work = spec<PvcSpec>(find(objects, 'PersistentVolumeClaim', workClaim));
  if (!work) problems.push('job mode: DEIT_FINETUNE_WORK_CLAIM names no claim');
  else if (!work.accessModes.includes('ReadWriteMany'))
    problems.push('job mode: the work claim is not ReadWriteMany');
  const pod = spec<DeploymentSpec>(find(objects, 'Deployment', TRAINER))?.template.spec;
  const volume = pod?.volumes?.find((v) => v.persistentVolumeClaim?.claimName === workClaim);
  const mount = c.volumeMounts?.find((m) => m.name === volume?.name);
  if (!mount || mount.readOnly || mount.mountPath !== FINETUNE_WORK_MOUNT) {
    problems.push(`job mode: the trainer does not mount the work claim read-write at ${FINETUNE_WORK_MOUNT}`);
  }
  if (env.get('DEIT_TRAINER_WORK_DIR') !== FINETUNE_WORK_MOUNT)
    problems.push(`job mode: DEIT_TRAINER_WORK_DIR is not the work claim's mount ${FINETUNE_WORK_MOUNT}`);
  return problems;
}

const CLUSTER_SCOPED = new Set(['Namespace']);

/** Every namespaced object in the overlay's namespace; every referenced ConfigMap rendered. */
export function checkReferences(objects: readonly K8sObject[], namespace: string): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    if (CLUSTER_SCOPED.has(o.kind)) continue;
    if (o.metadata.namespace !== namespace)
      problems.push(`${o.kind} ${o.metadata.name}: namespace ${o.metadata.namespace}`);
  }
  for (const { name, spec: d } of workloads(objects)) {
    const pod = d.template.spec;
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      for (const source of c.envFrom ?? []) {
        const ref = source.configMapRef?.name;
        if (ref && !find(objects, 'ConfigMap', ref))
          problems.push(`${name}/${c.name}: ConfigMap ${ref} not rendered`);
      }
    }
    for (const v of pod.volumes ?? []) {
      const claim = v.persistentVolumeClaim?.claimName;
      if (claim && !find(objects, 'PersistentVolumeClaim', claim))
        problems.push(`${name}: claim ${claim} not rendered`);
    }
    if (pod.serviceAccountName && !find(objects, 'ServiceAccount', pod.serviceAccountName)) {
      problems.push(`${name}: ServiceAccount ${pod.serviceAccountName} not rendered`);
    }
  }
  return problems;
}

export const OVERLAYS: Record<Overlay, { namespace: string; jobMode: boolean }> = {
  cpu: { namespace: 'deit-serve', jobMode: false },
  gpu: { namespace: 'deit-serve', jobMode: true },
  dev: { namespace: 'deit-serve-dev', jobMode: false },
};

/** Every policy above, for one overlay's rendered objects. */
export function violations(objects: readonly K8sObject[], overlay: Overlay): string[] {
  const { namespace, jobMode } = OVERLAYS[overlay];
  return [
    ...checkPodHardening(objects),
    ...checkInference(objects),
    ...checkInferenceTraffic(objects, overlay),
    ...checkStorage(objects, overlay),
    ...checkNetworkPolicies(objects, jobMode),
    ...checkRbac(objects, jobMode),
    ...checkAccelerator(objects, overlay),
    ...checkJobMode(objects, jobMode, overlay),
    ...checkReferences(objects, namespace),
    ...checkNamespace(objects, namespace),
    ...checkAutoscalingSignal(objects),
    ...checkDnsEgress(objects),
  ];
}
