import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { containerEnv, find, type DeploymentSpec, type K8sObject, type Overlay, violations } from './policy';
import { findTools, render, run, validateObjects, workspaceRoot, type DeployTools } from './tools';

/**
 * k8s/components/auth (in the cpu and gpu overlays) and k8s/components/tls (opt-in): the Secrets
 * they mount, the variables that point into them, and the probes TLS moves to the plain-text
 * health port (README.md, "Security").
 */
const { tools } = findTools();

interface Probe {
  grpc?: { port: number };
}
interface SecurityContainer {
  name: string;
  ports?: { containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface SecretVolume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
}

const SERVICES = [
  ['deit-inference', 'inference'],
  ['deit-trainer', 'trainer'],
] as const;

/** A service's main container, its environment, and where the Secret `secretName` is mounted. */
function secretMount(objects: K8sObject[], deployment: string, container: string, secretName: string) {
  const pod = (find(objects, 'Deployment', deployment)?.spec as DeploymentSpec).template.spec;
  const c = pod.containers.find((x) => x.name === container) as SecurityContainer &
    Parameters<typeof containerEnv>[1];
  const volumes: SecretVolume[] = pod.volumes ?? [];
  const volume = volumes.find((v) => v.secret?.secretName === secretName);
  const mount = c.volumeMounts?.find((m) => m.name === volume?.name);
  return { c, env: containerEnv(objects, c), volume, mount };
}

/** Renders an overlay with extra components, through a kustomization of its own. */
function renderWith(t: DeployTools, overlay: Overlay, components: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'deit-kustomize-'));
  const k8s = relative(dir, join(workspaceRoot, 'k8s')); // kustomize refuses absolute roots
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'resources:',
      `  - ${k8s}/overlays/${overlay}`,
      'components:',
      ...components.map((c) => `  - ${k8s}/components/${c}`),
      '',
    ].join('\n'),
  );
  const result = run(t.kustomize, ['build', dir]);
  if (result.status !== 0) throw new Error(`kustomize build failed:\n${result.stderr}`);
  return result.stdout;
}

describe.skipIf(!tools)('bearer-token authentication (components/auth)', () => {
  it.each(['cpu', 'gpu'] as const)(
    'overlay %s mounts Secret deit-auth-tokens read-only in both services and points DEIT_AUTH_TOKENS_FILE at it',
    (overlay) => {
      const objects = validateObjects(tools!, render(tools!, overlay)) as K8sObject[];
      for (const [deployment, container] of SERVICES) {
        const { env, volume, mount } = secretMount(objects, deployment, container, 'deit-auth-tokens');
        expect(volume?.secret?.items, deployment).toEqual([{ key: 'tokens.json', path: 'tokens.json' }]);
        expect(mount?.readOnly, deployment).toBe(true);
        expect(env.get('DEIT_AUTH_TOKENS_FILE'), deployment).toBe(`${mount?.mountPath}/tokens.json`);
      }
    },
  );

  it('leaves the dev overlay unauthenticated (the services warn about it at start)', () => {
    const objects = validateObjects(tools!, render(tools!, 'dev')) as K8sObject[];
    for (const [deployment, container] of SERVICES) {
      const { env, volume } = secretMount(objects, deployment, container, 'deit-auth-tokens');
      expect(volume).toBeUndefined();
      expect(env.has('DEIT_AUTH_TOKENS_FILE')).toBe(false);
    }
  });
});

describe.skipIf(!tools)('TLS (components/tls on the cpu overlay)', () => {
  let objects: K8sObject[] = [];
  beforeAll(() => {
    objects = validateObjects(tools!, renderWith(tools!, 'cpu', ['tls'])) as K8sObject[];
  });

  it('mounts Secret deit-tls read-only and points the certificate and key variables into it', () => {
    for (const [deployment, container] of SERVICES) {
      const { env, mount } = secretMount(objects, deployment, container, 'deit-tls');
      expect(mount?.readOnly, deployment).toBe(true);
      expect(env.get('DEIT_TLS_CERT_FILE'), deployment).toBe(`${mount?.mountPath}/tls.crt`);
      expect(env.get('DEIT_TLS_KEY_FILE'), deployment).toBe(`${mount?.mountPath}/tls.key`);
      // Still authenticated: the components compose.
      expect(env.get('DEIT_AUTH_TOKENS_FILE'), deployment).toMatch(/tokens\.json$/);
    }
  });

  it('probes each service on its plain-text DEIT_HEALTH_PORT, a declared container port', () => {
    for (const [deployment, container] of SERVICES) {
      const { c, env } = secretMount(objects, deployment, container, 'deit-tls');
      const port = Number(env.get('DEIT_HEALTH_PORT'));
      expect(port, deployment).toBeGreaterThan(0);
      expect(
        c.ports?.map((p) => p.containerPort),
        deployment,
      ).toContain(port);
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe])
        expect(probe?.grpc?.port, deployment).toBe(port);
    }
  });

  it('meets every deployment policy but the one it changes on purpose: probes on the gRPC port', () => {
    expect(violations(objects, 'cpu')).toEqual([
      'deit-inference: readinessProbe is not a gRPC probe on 50051',
      'deit-inference: livenessProbe is not a gRPC probe on 50051',
      'deit-inference: startupProbe is not a gRPC probe on 50051',
      'deit-trainer: readinessProbe is not a gRPC probe on 50052',
      'deit-trainer: livenessProbe is not a gRPC probe on 50052',
    ]);
  });
});
