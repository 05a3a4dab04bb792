import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workspaceRoot } from './workspace';

/** The root postinstall (tools/scripts/install-native.mjs) and every module it imports. */
export const INSTALL_SCRIPTS = [
  'install-native.mjs',
  'install-native-plan.mjs',
  'install-steps.mjs',
  'install-gpu.mjs',
  'install-gpu-plan.mjs',
  'install-onnxruntime-cuda.mjs',
];

/**
 * A scratch tree with a copy of the install scripts: they locate node_modules relative to their own
 * folder, so runs there never touch the workspace's installation. `packages` maps a package name to the
 * version written into a bare node_modules/<name>/package.json.
 */
export function scratchInstallTree(packages: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'deit-install-'));
  mkdirSync(join(dir, 'tools', 'scripts'), { recursive: true });
  for (const file of INSTALL_SCRIPTS) {
    writeFileSync(
      join(dir, 'tools', 'scripts', file),
      readFileSync(join(workspaceRoot, 'tools', 'scripts', file), 'utf8'),
    );
  }
  for (const [name, version] of Object.entries(packages)) {
    mkdirSync(join(dir, 'node_modules', name), { recursive: true });
    writeFileSync(join(dir, 'node_modules', name, 'package.json'), JSON.stringify({ name, version }));
  }
  return dir;
}

/** Runs the postinstall in a scratch tree, with its cache inside the tree. */
export function runPostinstall(
  dir: string,
  env: Record<string, string>,
): { status: number | null; lines: string[]; stderr: string } {
  const result = spawnSync(process.execPath, [join(dir, 'tools', 'scripts', 'install-native.mjs')], {
    env: { ...process.env, DEIT_NATIVE_CACHE_DIR: join(dir, 'cache'), ...env },
    encoding: 'utf8',
  });
  return { status: result.status, lines: result.stdout.trim().split('\n'), stderr: result.stderr };
}
