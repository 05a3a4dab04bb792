import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const workspaceRoot = join(__dirname, '..', '..');

/** deploy/versions.env: the pinned tool versions, shared with tools/scripts/ci-deploy.sh. */
export function pinnedVersions(): Record<string, string> {
  const text = readFileSync(join(workspaceRoot, 'deploy', 'versions.env'), 'utf8');
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(\S+)$/.exec(line.trim());
    if (match?.[1] && match[2]) out[match[1]] = match[2];
  }
  return out;
}

/**
 * Where tools/scripts/ci-deploy.sh installs the pinned tools (`bin/kustomize`, `bin/k6`,
 * `bin/dockerfile-lint`, `venv/` with kubernetes-validate): DEIT_DEPLOY_TOOLS_DIR, else ~/.cache/deit-serve/deploy-tools.
 */
export const toolsDir =
  process.env['DEIT_DEPLOY_TOOLS_DIR'] ?? join(homedir(), '.cache', 'deit-serve', 'deploy-tools');

export interface DeployTools {
  readonly kustomize: string;
  readonly python: string;
  readonly k6: string;
  /** deploy/dockerfile-lint built: BuildKit's Dockerfile checks, offline. */
  readonly dockerfileLint: string;
  readonly kubeconform: string;
  /** kubeconform's schemas, written from kubernetes-validate's by deploy/scripts/kubeconform_schemas.py. */
  readonly kubeconformSchemas: string;
}

/** The installed tools, or the list of what is missing. */
export function findTools(): { tools?: DeployTools; missing: string[] } {
  const tools: DeployTools = {
    kustomize: join(toolsDir, 'bin', 'kustomize'),
    k6: join(toolsDir, 'bin', 'k6'),
    python: join(toolsDir, 'venv', 'bin', 'python'),
    dockerfileLint: join(toolsDir, 'bin', 'dockerfile-lint'),
    kubeconform: join(toolsDir, 'bin', 'kubeconform'),
    kubeconformSchemas: join(toolsDir, 'kubeconform-schemas'),
  };
  const missing = [
    tools.kustomize,
    tools.k6,
    tools.python,
    tools.dockerfileLint,
    tools.kubeconform,
    tools.kubeconformSchemas,
  ].filter((path) => !existsSync(path));
  return missing.length === 0 ? { tools, missing } : { missing };
}

/** In CI a missing tool is a failure; on a developer's machine the tests that need it are skipped. */
export const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';

export const MISSING_TOOLS_HINT = 'install them with: bash tools/scripts/ci-deploy.sh --tools-only';

export function run(
  command: string,
  args: readonly string[],
  input?: string,
): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(command, args, {
    cwd: workspaceRoot,
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Validates objects (YAML or JSON text) against the strict Kubernetes schemas of the pinned versions,
 * offline, and returns them parsed. Throws with the validator's report when any object is invalid.
 */
export function validateObjects(tools: DeployTools, text: string): unknown[] {
  const versions = pinnedVersions()['KUBERNETES_VERSIONS'] ?? '1.30.0';
  const script = join(workspaceRoot, 'deploy', 'scripts', 'k8s_validate.py');
  const result = run(tools.python, [script, '--quiet', '--json', '--kubernetes', versions, '-'], text);
  if (result.status !== 0) throw new Error(`schema validation failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as unknown[];
}

/**
 * kubeconform, strict and offline, over objects (YAML or JSON text) for each pinned Kubernetes version:
 * its exit status and report (one line per invalid object, then a summary).
 */
export function kubeconform(tools: DeployTools, text: string): { status: number; report: string } {
  const versions = (pinnedVersions()['KUBERNETES_VERSIONS'] ?? '1.30.0').split(',');
  const location = join(
    tools.kubeconformSchemas,
    '{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}',
    '{{ .ResourceKind }}{{ .KindSuffix }}.json',
  );
  let status = 0;
  let report = '';
  for (const version of versions) {
    const args = ['-strict', '-summary', '-kubernetes-version', version, '-schema-location', location, '-'];
    const result = run(tools.kubeconform, args, text);
    status ||= result.status;
    report += `Kubernetes ${version}:\n${result.stdout}${result.stderr}`;
  }
  return { status, report };
}

/** `kustomize build` of one overlay (k8s/overlays/NAME). */
export function render(tools: DeployTools, overlay: string): string {
  const result = run(tools.kustomize, ['build', join(workspaceRoot, 'k8s', 'overlays', overlay)]);
  if (result.status !== 0) throw new Error(`kustomize build ${overlay} failed:\n${result.stderr}`);
  return result.stdout;
}
