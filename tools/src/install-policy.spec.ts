import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readJson, workspaceRoot } from './workspace';

interface PackageJson {
  allowScripts: Record<string, boolean>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

describe('install policy', () => {
  const pkg = readJson<PackageJson>('package.json');

  it('approves only the install scripts the project needs', () => {
    const approved = Object.entries(pkg.allowScripts)
      .filter(([, allowed]) => allowed)
      .map(([name]) => name);
    // better-sqlite3: builds its native addon (the trainer's durable job store). onnxruntime-node's
    // script would download the CUDA provider; the root postinstall runs it only when
    // ONNXRUNTIME_NODE_INSTALL asks for it (tools/scripts/install-onnxruntime-cuda.mjs).
    expect(approved.sort()).toEqual(['better-sqlite3']);
  });

  it('gives npm no project configuration it does not know (npm warned on every command)', () => {
    const npm = spawnSync('npm', ['config', 'get', 'save-exact'], { cwd: workspaceRoot, encoding: 'utf8' });
    expect(npm.status).toBe(0);
    expect(npm.stdout.trim()).toBe('true');
    expect(npm.stderr).not.toMatch(/Unknown project config/);
  });

  it('pins every dependency to an exact version', () => {
    const all = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies };
    for (const [name, version] of Object.entries(all)) {
      expect(version, name).toMatch(/^\d+\.\d+\.\d+$/);
    }
  });
});
