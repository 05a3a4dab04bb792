import { beforeAll, describe, expect, it } from 'vitest';
import { find, OVERLAYS, violations, type DeploymentSpec, type K8sObject, type Overlay } from './policy';
import { findTools, inCi, MISSING_TOOLS_HINT, pinnedVersions, render, run, validateObjects } from './tools';

const { tools, missing } = findTools();
if (!tools && !inCi) {
  console.warn(`deploy: SKIPPING the manifest tests: ${missing.join(', ')} missing; ${MISSING_TOOLS_HINT}`);
}

describe('deploy tools', () => {
  // In CI a missing tool fails here; locally the tests below are skipped (and say so above).
  it.skipIf(!tools && !inCi)('are installed at the pinned versions', () => {
    expect(missing, MISSING_TOOLS_HINT).toEqual([]);
    const version = run(tools!.kustomize, ['version']).stdout.trim();
    expect(version).toBe(pinnedVersions()['KUSTOMIZE_VERSION']);
  });
});

const overlays = Object.keys(OVERLAYS) as Overlay[];

describe.skipIf(!tools).each(overlays)('k8s/overlays/%s', (overlay) => {
  let objects: K8sObject[] = [];
  beforeAll(() => {
    objects = validateObjects(tools!, render(tools!, overlay)) as K8sObject[];
  });

  it('renders objects that all validate against the strict Kubernetes schemas, offline', () => {
    // validateObjects throws on any invalid object or unknown kind; this is what it accepted.
    expect(objects.length).toBeGreaterThanOrEqual(17);
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of [
      'Deployment',
      'Service',
      'ConfigMap',
      'PersistentVolumeClaim',
      'PodDisruptionBudget',
      'HorizontalPodAutoscaler',
      'NetworkPolicy',
      'ServiceAccount',
    ]) {
      expect(kinds, kind).toContain(kind);
    }
  });

  it('meets every deployment policy', () => {
    expect(violations(objects, overlay)).toEqual([]);
  });

  it('probes the inference pods natively over gRPC on 50051', () => {
    const d = find(objects, 'Deployment', 'deit-inference')?.spec as DeploymentSpec;
    const c = d.template.spec.containers[0];
    expect(c.readinessProbe).toMatchObject({ grpc: { port: 50051 } });
    expect(c.livenessProbe).toMatchObject({ grpc: { port: 50051 } });
    expect(c.startupProbe).toMatchObject({ grpc: { port: 50051 } });
  });
});

/** A fresh copy of a render to break. */
function copy(objects: readonly K8sObject[]): K8sObject[] {
  return structuredClone(objects) as K8sObject[];
}

function deployment(objects: K8sObject[], name: string): DeploymentSpec {
  return find(objects, 'Deployment', name)!.spec as DeploymentSpec;
}

type Mutation = [string, Overlay, (objects: K8sObject[]) => void, RegExp];

/** Each regression, applied to a clean render, must be caught by the policies (so CI fails on it). */
const regressions: Mutation[] = [
  [
    'an HTTP readiness probe',
    'cpu',
    (o) => {
      const c = deployment(o, 'deit-inference').template.spec.containers[0];
      c.readinessProbe = { httpGet: { path: '/healthz', port: 8080 } };
    },
    /readinessProbe is not a gRPC probe on 50051/,
  ],
  [
    'a liveness probe on the wrong port',
    'gpu',
    (o) => {
      deployment(o, 'deit-inference').template.spec.containers[0].livenessProbe = { grpc: { port: 9464 } };
    },
    /livenessProbe is not a gRPC probe/,
  ],
  [
    'a container without limits',
    'cpu',
    (o) => {
      delete deployment(o, 'deit-trainer').template.spec.containers[0].resources!.limits;
    },
    /deit-trainer\/trainer: no cpu limits/,
  ],
  [
    'running as root',
    'dev',
    (o) => {
      deployment(o, 'deit-inference').template.spec.securityContext = {
        runAsUser: 0,
        seccompProfile: { type: 'RuntimeDefault' },
      };
    },
    /deit-inference: pod runAsNonRoot is not true/,
  ],
  [
    'a writable root file system',
    'cpu',
    (o) => {
      deployment(o, 'deit-trainer').template.spec.containers[0].securityContext!.readOnlyRootFilesystem =
        false;
    },
    /deit-trainer\/trainer: readOnlyRootFilesystem is not true/,
  ],
  [
    'privilege escalation left at its default',
    'gpu',
    (o) => {
      delete deployment(o, 'deit-trainer').template.spec.initContainers![0].securityContext!
        .allowPrivilegeEscalation;
    },
    /seed-registry: allowPrivilegeEscalation is not false/,
  ],
  [
    'an added capability',
    'cpu',
    (o) => {
      deployment(o, 'deit-inference').template.spec.containers[0].securityContext!.capabilities = {
        drop: ['ALL'],
        add: ['NET_ADMIN'],
      };
    },
    /adds capabilities/,
  ],
  [
    'an unpinned image',
    'cpu',
    (o) => {
      deployment(o, 'deit-inference').template.spec.containers[0].image = 'deit-serve/inference:latest';
    },
    /has no pinned tag/,
  ],
  [
    'a writable registry mount in inference',
    'cpu',
    (o) => {
      const mounts = deployment(o, 'deit-inference').template.spec.containers[0].volumeMounts!;
      mounts.find((m) => m.name === 'registry')!.readOnly = false;
    },
    /registry mount not readOnly/,
  ],
  [
    'a ReadWriteOnce registry in production',
    'gpu',
    (o) => {
      (find(o, 'PersistentVolumeClaim', 'deit-registry')!.spec as { accessModes: string[] }).accessModes = [
        'ReadWriteOnce',
      ];
    },
    /registry PVC is not ReadWriteMany/,
  ],
  [
    'two trainers at once',
    'cpu',
    (o) => {
      deployment(o, 'deit-trainer').strategy = { type: 'RollingUpdate' };
    },
    /strategy is not Recreate/,
  ],
  [
    'a ClusterIP gRPC Service',
    'cpu',
    (o) => {
      delete (find(o, 'Service', 'deit-inference-grpc')!.spec as { clusterIP?: string }).clusterIP;
    },
    /not headless/,
  ],
  [
    'no max connection age',
    'gpu',
    (o) => {
      const configMap = o.find(
        (x) => x.kind === 'ConfigMap' && x.metadata.name.startsWith('deit-inference-config'),
      )!;
      delete configMap.data!['DEIT_GRPC_MAX_CONNECTION_AGE_MS'];
    },
    /DEIT_GRPC_MAX_CONNECTION_AGE_MS not set/,
  ],
  [
    'no autoscaler',
    'cpu',
    (o) => {
      o.splice(
        o.findIndex((x) => x.kind === 'HorizontalPodAutoscaler'),
        1,
      );
    },
    /no autoscaling\/v2 HorizontalPodAutoscaler/,
  ],
  [
    'no disruption budget',
    'dev',
    (o) => {
      o.splice(
        o.findIndex((x) => x.kind === 'PodDisruptionBudget'),
        1,
      );
    },
    /no policy\/v1 PodDisruptionBudget/,
  ],
  [
    'no default deny',
    'cpu',
    (o) => {
      o.splice(
        o.findIndex((x) => x.metadata.name === 'deit-default-deny'),
        1,
      );
    },
    /no default-deny NetworkPolicy/,
  ],
  [
    'an extra open port',
    'gpu',
    (o) => {
      const policy = find(o, 'NetworkPolicy', 'deit-inference-ingress')!.spec as {
        ingress: { ports: { protocol: string; port: number }[] }[];
      };
      policy.ingress.push({ ports: [{ protocol: 'TCP', port: 22 }] });
    },
    /deit-inference: ingress allows TCP\/22/,
  ],
  [
    'egress to everything',
    'cpu',
    (o) => {
      (find(o, 'NetworkPolicy', 'deit-allow-dns-egress')!.spec as { egress: unknown[] }).egress.push({});
    },
    /egress allows ANY\/ANY/,
  ],
  [
    'a wildcard verb',
    'gpu',
    (o) => {
      find(o, 'Role', 'deit-trainer-jobs')!.rules![0].verbs.push('*');
    },
    /grants verb \*/,
  ],
  [
    'access to pods',
    'gpu',
    (o) => {
      find(o, 'Role', 'deit-trainer-jobs')!.rules!.push({
        apiGroups: [''],
        resources: ['pods'],
        verbs: ['get'],
      });
    },
    /grants \/pods/,
  ],
  [
    'a ClusterRole',
    'cpu',
    (o) => {
      o.push({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'x' },
        rules: [{ apiGroups: ['batch'], resources: ['jobs'], verbs: ['create'] }],
      });
    },
    /cluster-wide RBAC/,
  ],
  [
    'an API token in the inference pods',
    'gpu',
    (o) => {
      deployment(o, 'deit-inference').template.spec.automountServiceAccountToken = true;
    },
    /deit-inference: mounts (an API|a Kubernetes API) token/,
  ],
  [
    'a GPU overlay without GPUs',
    'gpu',
    (o) => {
      delete deployment(o, 'deit-inference').template.spec.containers[0].resources!.limits!['nvidia.com/gpu'];
    },
    /gpu: no nvidia.com\/gpu limit/,
  ],
  [
    'a GPU overlay without tolerations',
    'gpu',
    (o) => {
      delete deployment(o, 'deit-inference').template.spec.tolerations;
    },
    /gpu: no toleration/,
  ],
  [
    'a GPU overlay on the CPU provider',
    'gpu',
    (o) => {
      const configMap = o.find(
        (x) => x.kind === 'ConfigMap' && x.metadata.name.startsWith('deit-inference-config'),
      )!;
      configMap.data!['DEIT_EXECUTION_PROVIDER'] = 'cpu';
    },
    /gpu: DEIT_EXECUTION_PROVIDER is not cuda/,
  ],
  [
    'a work claim the Job pods on other nodes cannot mount',
    'gpu',
    (o) => {
      (
        find(o, 'PersistentVolumeClaim', 'deit-finetune-work')!.spec as { accessModes: string[] }
      ).accessModes = ['ReadWriteOnce'];
    },
    /the work claim is not ReadWriteMany/,
  ],
  [
    'the trainer reading job files where the pods do not write them',
    'gpu',
    (o) => {
      const mounts = deployment(o, 'deit-trainer').template.spec.containers[0].volumeMounts!;
      mounts.find((m) => m.name === 'finetune-work')!.mountPath = '/var/lib/deit-trainer/work';
    },
    /does not mount the work claim read-write at \/work/,
  ],
  [
    'a Role verb the runner never calls',
    'gpu',
    (o) => {
      find(o, 'Role', 'deit-trainer-jobs')!.rules![0].verbs.push('watch');
    },
    /grants verb watch/,
  ],
  [
    'Jobs of a stale image',
    'gpu',
    (o) => {
      deployment(o, 'deit-trainer').template.spec.containers[0].image = 'deit-serve/trainer:0.2.0';
    },
    /DEIT_FINETUNE_IMAGE .* is not deit-serve\/trainer-cuda:0.2.0/,
  ],
  [
    'GPU fine-tunes on the CPU image',
    'gpu',
    (o) => {
      trainerEnv(o).find((e) => e.name === 'DEIT_FINETUNE_IMAGE')!.value = 'deit-serve/trainer:0.1.0';
    },
    /DEIT_FINETUNE_IMAGE deit-serve\/trainer:0.1.0 is not deit-serve\/trainer-cuda:0.1.0/,
  ],
  [
    'GPU fine-tunes without a GPU',
    'gpu',
    (o) => {
      const env = trainerEnv(o);
      env.splice(
        env.findIndex((e) => e.name === 'DEIT_FINETUNE_GPUS'),
        1,
      );
    },
    /DEIT_FINETUNE_GPUS is not at least 1/,
  ],
  [
    'no Namespace (apply -k on an empty cluster fails)',
    'cpu',
    (o) => {
      o.splice(
        o.findIndex((x) => x.kind === 'Namespace'),
        1,
      );
    },
    /no Namespace deit-serve/,
  ],
  [
    'a Namespace without Pod Security enforced',
    'dev',
    (o) => {
      delete o.find((x) => x.kind === 'Namespace')!.metadata.labels!['pod-security.kubernetes.io/enforce'];
    },
    /Namespace deit-serve-dev: Pod Security "restricted" is not enforced/,
  ],
  [
    'autoscaling on CPU only',
    'gpu',
    (o) => {
      hpaMetrics(o).splice(0, 1);
    },
    /does not scale on deit_pending_requests/,
  ],
  [
    'autoscaling without the CPU fallback',
    'cpu',
    (o) => {
      const metrics = hpaMetrics(o);
      metrics.splice(
        metrics.findIndex((m) => m.type === 'Resource'),
        1,
      );
    },
    /no CPU fallback/,
  ],
  [
    'DNS egress that misses NodeLocal DNSCache',
    'cpu',
    (o) => {
      dnsPeers(o).splice(
        dnsPeers(o).findIndex((p) => 'ipBlock' in p),
        1,
      );
    },
    /does not reach NodeLocal DNSCache/,
  ],
  [
    'DNS egress open to every destination',
    'dev',
    (o) => {
      const policy = find(o, 'NetworkPolicy', 'deit-allow-dns-egress')!.spec as {
        egress: { to?: unknown }[];
      };
      delete policy.egress[0].to;
    },
    /DNS egress is open to every destination/,
  ],
  [
    'inference that waits for a trainer pod to seed the registry',
    'cpu',
    (o) => {
      delete deployment(o, 'deit-inference').template.spec.initContainers;
    },
    /no seed-registry init container/,
  ],
];

function trainerEnv(objects: K8sObject[]): { name: string; value?: string }[] {
  return deployment(objects, 'deit-trainer').template.spec.containers[0].env!;
}

function hpaMetrics(objects: K8sObject[]): { type: string }[] {
  return (objects.find((x) => x.kind === 'HorizontalPodAutoscaler')!.spec as { metrics: { type: string }[] })
    .metrics;
}

function dnsPeers(objects: K8sObject[]): object[] {
  const policy = find(objects, 'NetworkPolicy', 'deit-allow-dns-egress')!.spec as {
    egress: { to: object[] }[];
  };
  return policy.egress[0].to;
}

describe.skipIf(!tools)('the policies catch regressions', () => {
  const clean = new Map<Overlay, K8sObject[]>();
  beforeAll(() => {
    for (const overlay of overlays) {
      clean.set(overlay, validateObjects(tools!, render(tools!, overlay)) as K8sObject[]);
    }
  });

  it.each(regressions)('%s (%s)', (_what, overlay, mutate, expected) => {
    const objects = copy(clean.get(overlay)!);
    mutate(objects);
    const found = violations(objects, overlay);
    expect(
      found.some((v) => expected.test(v)),
      found.join('\n') || '(no violation)',
    ).toBe(true);
  });

  it('the schema validation catches a misspelt field', () => {
    const objects = copy(clean.get('cpu')!);
    const c = deployment(objects, 'deit-inference').template.spec.containers[0];
    const sc = c.securityContext as Record<string, unknown>;
    delete sc['readOnlyRootFilesystem'];
    sc['readOnlyRootFileSystem'] = true;
    expect(() => validateObjects(tools!, JSON.stringify(objects))).toThrow(/readOnlyRootFileSystem/);
  });

  it('the schema validation rejects a kind it has no schema for', () => {
    const crd = { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'x' } };
    expect(() => validateObjects(tools!, JSON.stringify([crd]))).toThrow(/Couldn't find schema/);
  });
});
