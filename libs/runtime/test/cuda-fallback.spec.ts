import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaFailureReason } from '../src/onnx-session';

/**
 * onnxruntime's CUDA provider as `DEIT_GPU=cuda npm ci` installs it (tools/scripts/install-gpu.mjs),
 * on a host without a GPU: every library loads up to the driver, and the service's session code falls
 * back to the CPU provider with one clear line. CI installs the provider before `npm test` (.ci/run).
 */
const workspaceRoot = join(__dirname, '..', '..', '..');
const REGISTER_TS = join(workspaceRoot, 'tools', 'test-support', 'register-ts.cjs');
const CHILD = join(__dirname, 'cuda-fallback-child.ts');
const STUB_SOURCE = join(__dirname, 'fixtures', 'libcuda-stub.c');
const PROVIDER_DIR = join(
  workspaceRoot,
  'node_modules',
  'onnxruntime-node',
  'bin',
  'napi-v6',
  'linux',
  'x64',
);
const providerInstalled = existsSync(join(PROVIDER_DIR, 'deit-onnxruntime-cuda.json'));
const hasDriver = existsSync('/proc/driver/nvidia/version');
const compilerRuns = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;
const CHILD_TIMEOUT = 60_000;

/** `worker`: the service's sessions (libs/inference-engine); `main`: the library's default. */
const THREADS = ['worker', 'main'] as const;
type Thread = (typeof THREADS)[number];

interface ChildResult {
  provider: string;
  warnings: string[];
  logits: number[];
  cpuLogits: number[];
  stderr: string;
}

function runChild(thread: Thread, env: Record<string, string>): ChildResult {
  const result = spawnSync(process.execPath, ['-r', REGISTER_TS, CHILD, thread], {
    cwd: workspaceRoot,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: CHILD_TIMEOUT,
  });
  expect(result.status, result.stderr).toBe(0);
  const last = result.stdout.trim().split('\n').pop() ?? '';
  return { ...(JSON.parse(last) as Omit<ChildResult, 'stderr'>), stderr: result.stderr };
}

function argmaxRows(logits: number[], classes: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < logits.length / classes; r++) {
    const row = logits.slice(r * classes, (r + 1) * classes);
    rows.push(row.indexOf(Math.max(...row)));
  }
  return rows;
}

/** The same classification as the CPU-only session: the fallback session is a CPU session. */
function expectCpuClassification(out: ChildResult): void {
  expect(out.provider).toBe('cpu');
  expect(out.logits).toHaveLength(4 * 5);
  expect(out.logits).toEqual(out.cpuLogits);
  expect(argmaxRows(out.logits, 5)).toEqual(argmaxRows(out.cpuLogits, 5));
}

const installState = providerInstalled
  ? 'installed'
  : 'NOT INSTALLED, skipped: run `DEIT_GPU=cuda node tools/scripts/install-native.mjs`';
const driverState = hasDriver ? 'SKIPPED: this host has an NVIDIA driver' : 'no NVIDIA driver here';

describe.runIf(providerInstalled && !hasDriver)(
  `onnxruntime CUDA provider from DEIT_GPU=cuda (${installState}; ${driverState})`,
  () => {
    const stubDir = mkdtempSync(join(tmpdir(), 'deit-libcuda-'));
    const stub = join(stubDir, 'libcuda.so.1');
    afterAll(() => rmSync(stubDir, { recursive: true, force: true }));

    /** The stub driver, compiled once for the tests that use it; returns its folder. */
    function stubDriver(): string {
      if (!existsSync(stub)) {
        const cc = spawnSync(
          'cc',
          ['-shared', '-fPIC', '-Wall', '-Werror', '-Wl,-soname,libcuda.so.1', '-o', stub, STUB_SOURCE],
          { encoding: 'utf8' },
        );
        expect(cc.status, cc.stderr).toBe(0);
      }
      return stubDir;
    }

    describe.each(THREADS)('sessions on the %s thread', (thread) => {
      it(
        'without a driver library: the provider loads up to libcuda.so.1, and the session falls back to CPU',
        () => {
          const out = runChild(thread, {});
          // onnxruntime's own line names the missing library: every library the provider links but
          // the driver's was found beside it (its RUNPATH is $ORIGIN, without LD_LIBRARY_PATH).
          expect(out.stderr).toMatch(
            /libonnxruntime_providers_cuda\.so with error: libcuda\.so\.1: cannot open shared object file/,
          );
          expect(out.warnings).toEqual([
            "onnxruntime: CUDA execution provider unavailable (its library or one that it links could not be loaded (onnxruntime's error line above names it: libcuda.so.1 is the NVIDIA driver; the others come with `DEIT_GPU=cuda npm ci`, docs/install.md)); running on CPU",
          ]);
          expectCpuClassification(out);
        },
        CHILD_TIMEOUT,
      );

      it.runIf(compilerRuns)(
        `with a stub driver whose cuInit finds no device (${compilerRuns ? 'compiled with cc' : 'SKIPPED: no C compiler (cc)'}): CUDA's real "no CUDA-capable device" error, then CPU`,
        () => {
          const out = runChild(thread, { LD_LIBRARY_PATH: stubDriver() });
          expect(out.warnings).toEqual([
            'onnxruntime: CUDA execution provider unavailable (CUDA failure 100: no CUDA-capable device is detected, in cudaSetDevice); running on CPU',
          ]);
          expectCpuClassification(out);
        },
        CHILD_TIMEOUT,
      );
    });
  },
);

describe('cudaFailureReason', () => {
  it("keeps CUDA's own message out of onnxruntime's C++ wrapping", () => {
    // As onnxruntime 1.30.0 throws it with the stub driver (abridged only in the template arguments).
    const thrown =
      '/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_call.cc:154 std::conditional_t<THRW, void, ' +
      'onnxruntime::common::Status> onnxruntime::CudaCall(ERRTYPE, const char*, const char*, SUCCTYPE, ' +
      'const char*, const char*, int) [with ERRTYPE = cudaError; bool THRW = true] CUDA failure 100: no ' +
      'CUDA-capable device is detected ; GPU=-1 ; hostname=vm ; file=/onnxruntime_src/onnxruntime/core/' +
      'providers/cuda/cuda_execution_provider.cc ; line=352 ; expr=cudaSetDevice(info_.device_id); \n';
    expect(cudaFailureReason(thrown)).toBe(
      'CUDA failure 100: no CUDA-capable device is detected, in cudaSetDevice',
    );
    expect(
      cudaFailureReason(
        '... CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version ; GPU=-1',
      ),
    ).toBe('CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version');
  });

  it('points at the library onnxruntime logged when the provider itself does not load', () => {
    expect(
      cudaFailureReason('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library'),
    ).toMatch(
      /^its library or one that it links could not be loaded \(onnxruntime's error line above names it: libcuda\.so\.1 is the NVIDIA driver/,
    );
    expect(cudaFailureReason('something else')).toBe('something else');
  });
});
