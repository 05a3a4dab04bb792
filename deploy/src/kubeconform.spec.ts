import { describe, expect, it } from 'vitest';
import { OVERLAYS, find, type DeploymentSpec, type K8sObject, type Overlay } from './policy';
import { findTools, kubeconform, render, validateObjects } from './tools';

const { tools } = findTools();
const overlays = Object.keys(OVERLAYS) as Overlay[];

/** kubeconform with the schemas of kubernetes-validate, `$ref`s inlined: strict and offline. */
describe.skipIf(!tools)('kubeconform (strict, offline)', () => {
  it.each(overlays)('accepts every object of k8s/overlays/%s', (overlay) => {
    const { status, report } = kubeconform(tools!, render(tools!, overlay));
    expect(status, report).toBe(0);
    expect(report).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
  });

  it('rejects a misspelt field (strict: no unknown properties)', () => {
    const objects = validateObjects(tools!, render(tools!, 'cpu')) as K8sObject[];
    const pod = (find(objects, 'Deployment', 'deit-inference')!.spec as DeploymentSpec).template.spec;
    const sc = pod.containers[0].securityContext as Record<string, unknown>;
    delete sc['readOnlyRootFilesystem'];
    sc['readOnlyRootFileSystem'] = true;
    const { status, report } = kubeconform(
      tools!,
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
    );
    expect(status).not.toBe(0);
    expect(report).toMatch(/Deployment deit-inference is invalid.*readOnlyRootFileSystem/);
  });

  it('rejects a kind it has no schema for, instead of skipping it', () => {
    const crd = { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'x' } };
    const { status, report } = kubeconform(tools!, JSON.stringify(crd));
    expect(status).not.toBe(0);
    expect(report).toMatch(/could not find schema for ServiceMonitor/);
  });

  it('cannot see a GPU limit that differs from its request: that takes the API server (npm run k8s:e2e)', () => {
    const objects = validateObjects(tools!, render(tools!, 'gpu')) as K8sObject[];
    const c = (find(objects, 'Deployment', 'deit-inference')!.spec as DeploymentSpec).template.spec
      .containers[0];
    c.resources!.limits!['nvidia.com/gpu'] = '2';
    expect(
      kubeconform(tools!, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects })).status,
    ).toBe(0);
  });
});
