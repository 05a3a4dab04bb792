import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { INSTALL_SCRIPTS } from './install-scratch';
import { readJson, workspaceRoot } from './workspace';

/** The postinstall's decision (tools/scripts/install-native-plan.mjs) on made-up machines. */
interface Facts {
  deitNative: string | undefined;
  platform: string;
  arch: string;
  glibc: string | undefined;
  nodeAbi: string;
  packageVersion: string | undefined;
  builtKey: string | undefined;
  cached: boolean;
  python: string | undefined;
  compiler: boolean;
  nodedir: string | undefined;
  nodeGyp: string | undefined;
}
type Plan =
  | { action: 'skip'; reason: string }
  | { action: 'ready' | 'restore'; key: string }
  | { action: 'build'; key: string; python: string; nodedir: string; nodeGyp: string };
interface PlanModule {
  planNativeInstall(facts: Facts): Plan;
  cacheKey(facts: Pick<Facts, 'arch' | 'nodeAbi'>): string;
  skipLine(reason: string): string;
  TFJS_NODE_VERSION: string;
  WHEEL: { version: string; sha256: string };
}

let plan: PlanModule;
beforeAll(async () => {
  const url = pathToFileURL(join(workspaceRoot, 'tools', 'scripts', 'install-native-plan.mjs')).href;
  plan = (await import(url)) as PlanModule;
});

/** A fresh Linux x64 machine with everything needed to build, nothing built or cached yet. */
function machine(overrides: Partial<Facts> = {}): Facts {
  return {
    deitNative: undefined,
    platform: 'linux',
    arch: 'x64',
    glibc: '2.36',
    nodeAbi: '115',
    packageVersion: '4.22.0',
    builtKey: undefined,
    cached: false,
    python: 'python3',
    compiler: true,
    nodedir: '/usr',
    nodeGyp: '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    ...overrides,
  };
}

function skipReason(facts: Facts): string {
  const p = plan.planNativeInstall(facts);
  if (p.action !== 'skip') throw new Error(`expected a skip, got ${p.action}`);
  return p.reason;
}

describe('native TensorFlow install plan', () => {
  it('builds on a fresh Linux x64 machine with python, a compiler and Node headers', () => {
    const key = plan.cacheKey({ arch: 'x64', nodeAbi: '115' });
    expect(plan.planNativeInstall(machine())).toEqual({
      action: 'build',
      key,
      python: 'python3',
      nodedir: '/usr',
      nodeGyp: '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    });
  });

  it('keys a build by tfjs-node version, wheel hash, Node ABI and architecture', () => {
    const key = plan.cacheKey({ arch: 'x64', nodeAbi: '115' });
    expect(key).toContain(`tfjs-node-${plan.TFJS_NODE_VERSION}`);
    expect(key).toContain(plan.WHEEL.sha256.slice(0, 12));
    expect(key).toContain('abi115');
    expect(plan.cacheKey({ arch: 'x64', nodeAbi: '127' })).not.toBe(key);
  });

  it('does nothing when this build is already in the package, and restores it from the cache', () => {
    const key = plan.cacheKey({ arch: 'x64', nodeAbi: '115' });
    expect(plan.planNativeInstall(machine({ builtKey: key, python: undefined }))).toEqual({
      action: 'ready',
      key,
    });
    // A restore needs neither python nor a compiler: `npm ci` re-runs on a machine that built once.
    expect(
      plan.planNativeInstall(
        machine({ cached: true, python: undefined, compiler: false, nodedir: undefined }),
      ),
    ).toEqual({ action: 'restore', key });
    // A build for another Node ABI is not reused.
    expect(
      plan.planNativeInstall(machine({ builtKey: plan.cacheKey({ arch: 'x64', nodeAbi: '108' }) })).action,
    ).toBe('build');
  });

  it('is skipped by DEIT_NATIVE=off (and its spellings) even where it could build', () => {
    for (const value of ['off', 'OFF', '0', 'false', 'no', 'wasm']) {
      expect(skipReason(machine({ deitNative: value }))).toBe(`DEIT_NATIVE=${value}`);
    }
    expect(plan.planNativeInstall(machine({ deitNative: 'on' })).action).toBe('build');
  });

  it('says why it cannot build, one reason per missing piece', () => {
    expect(skipReason(machine({ platform: 'darwin', arch: 'arm64' }))).toMatch(
      /no pinned TensorFlow wheel for darwin-arm64/,
    );
    expect(skipReason(machine({ arch: 'arm64' }))).toMatch(/linux-arm64/);
    expect(skipReason(machine({ glibc: undefined }))).toMatch(/not a glibc system/);
    expect(skipReason(machine({ glibc: '2.17' }))).toMatch(/glibc 2\.17 is older than the wheel's 2\.27/);
    expect(skipReason(machine({ packageVersion: undefined }))).toMatch(/tfjs-node is not installed/);
    expect(skipReason(machine({ packageVersion: '4.21.0' }))).toMatch(
      /4\.21\.0 is installed, this step builds 4\.22\.0/,
    );
    expect(skipReason(machine({ python: undefined }))).toMatch(/no python3 with pip/);
    expect(skipReason(machine({ compiler: false }))).toMatch(/no C\+\+ compiler/);
    expect(skipReason(machine({ nodedir: undefined }))).toMatch(/no Node\.js headers/);
    expect(skipReason(machine({ nodeGyp: undefined }))).toMatch(/node-gyp not found/);
    expect(plan.planNativeInstall(machine({ glibc: '2.27' })).action).toBe('build');
    expect(plan.planNativeInstall(machine({ glibc: '3.0' })).action).toBe('build');
  });

  it('prints one line that names the reason and the wasm fallback', () => {
    const line = plan.skipLine('DEIT_NATIVE=off');
    expect(line).not.toContain('\n');
    expect(line).toBe(
      'deit-serve: native TensorFlow not installed (DEIT_NATIVE=off); training uses the wasm backend',
    );
  });
});

describe('install-native.mjs', () => {
  // The script locates the package relative to its own folder; a copy in a scratch tree gets a scratch
  // node_modules, so these runs never touch the workspace's installation.
  function scratchTree(withPackage: boolean): string {
    const dir = mkdtempSync(join(tmpdir(), 'deit-native-'));
    mkdirSync(join(dir, 'tools', 'scripts'), { recursive: true });
    for (const file of INSTALL_SCRIPTS) {
      writeFileSync(
        join(dir, 'tools', 'scripts', file),
        readFileSync(join(workspaceRoot, 'tools', 'scripts', file), 'utf8'),
      );
    }
    if (withPackage) {
      mkdirSync(join(dir, 'node_modules', '@tensorflow', 'tfjs-node'), { recursive: true });
      writeFileSync(
        join(dir, 'node_modules', '@tensorflow', 'tfjs-node', 'package.json'),
        JSON.stringify({ name: '@tensorflow/tfjs-node', version: '4.22.0' }),
      );
    }
    return dir;
  }

  function runScript(dir: string, env: Record<string, string>) {
    const result = spawnSync(process.execPath, [join(dir, 'tools', 'scripts', 'install-native.mjs')], {
      env: { ...process.env, DEIT_NATIVE_CACHE_DIR: join(dir, 'cache'), ...env },
      encoding: 'utf8',
    });
    return { status: result.status, lines: result.stdout.trim().split('\n'), stderr: result.stderr };
  }

  it('exits 0 with one line when opted out', () => {
    const out = runScript(scratchTree(true), { DEIT_NATIVE: 'off' });
    expect(out).toEqual({
      status: 0,
      lines: [
        'deit-serve: native TensorFlow not installed (DEIT_NATIVE=off); training uses the wasm backend',
      ],
      stderr: '',
    });
  });

  it('exits 0 with one line when npm left the optional package out', () => {
    const out = runScript(scratchTree(false), {});
    expect(out.status).toBe(0);
    expect(out.lines).toEqual([
      expect.stringMatching(/tfjs-node is not installed.*training uses the wasm backend$/),
    ]);
  });

  it('exits 0 with one line when the machine has no python', () => {
    const dir = scratchTree(true);
    const out = runScript(dir, { PATH: join(dir, 'no-such-bin') });
    expect(out.status).toBe(0);
    expect(out.lines).toEqual([
      expect.stringMatching(/\(no python3 with pip .*\); training uses the wasm backend$/),
    ]);
  });

  it('exits 0 with one line naming the failed step and its log, leaving no half-built binding', () => {
    // A python whose pip answers --version but cannot download (as when the index refuses).
    const dir = scratchTree(true);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const stub = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    stub(
      'python3',
      'if [ "$3" = "--version" ]; then echo "pip 99"; exit 0; fi; echo "ERROR: download refused" >&2; exit 1',
    );
    stub('c++', 'exit 0');
    stub('make', 'exit 0');
    const pkgDir = join(dir, 'node_modules', '@tensorflow', 'tfjs-node');
    mkdirSync(join(pkgDir, 'deps', 'lib'), { recursive: true });
    const out = runScript(dir, { PATH: bin });
    expect(out.status).toBe(0);
    expect(out.lines).toEqual([
      expect.stringMatching(
        /^deit-serve: native TensorFlow not installed \(pip download tensorflow-cpu==2\.21\.0 failed \(exit 1\); log: .*\.log\); training uses the wasm backend$/,
      ),
    ]);
    const log = /log: (.*\.log)\)/.exec(out.lines[0] ?? '')?.[1] ?? '';
    expect(readFileSync(log, 'utf8')).toContain('ERROR: download refused');
    expect(existsSync(join(pkgDir, 'deps'))).toBe(false);
    // Nothing but the log is left in the cache: no partial download or staging tree.
    expect(readdirSync(join(dir, 'cache'))).toEqual([expect.stringMatching(/^tfjs-node-.*\.log$/)]);
  });
});

describe('package.json wiring', () => {
  const pkg = readJson<{
    scripts: Record<string, string>;
    optionalDependencies?: Record<string, string>;
    allowScripts: Record<string, boolean>;
  }>('package.json');

  it('runs the step after install, with tfjs-node pinned as an optional dependency whose own script stays off', () => {
    expect(pkg.scripts['postinstall']).toBe('node tools/scripts/install-native.mjs');
    expect(pkg.optionalDependencies?.['@tensorflow/tfjs-node']).toBe(plan.TFJS_NODE_VERSION);
    // Its install script downloads from storage.googleapis.com; left unlisted, npm 11 runs it and,
    // when it fails, drops the optional package entirely.
    expect(pkg.allowScripts['@tensorflow/tfjs-node']).toBe(false);
  });
});
