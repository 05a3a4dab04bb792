import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
    // onnxruntime-node: its script fetches the CUDA provider on GPU hosts (ONNXRUNTIME_NODE_INSTALL=cuda12).
    // better-sqlite3: builds its native addon (the trainer's durable job store).
    expect(approved.sort()).toEqual(['better-sqlite3', 'onnxruntime-node']);
  });

  it('skips the onnxruntime CUDA download by configuration', () => {
    const npmrc = readFileSync(join(workspaceRoot, '.npmrc'), 'utf8');
    expect(npmrc).toMatch(/^onnxruntime-node-install=skip$/m);
  });

  it('pins every dependency to an exact version', () => {
    const all = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies };
    for (const [name, version] of Object.entries(all)) {
      expect(version, name).toMatch(/^\d+\.\d+\.\d+$/);
    }
  });
});
