import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend } from '@deit-serve/model';
import { trainerV1 } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { validateFineTuneSpec, type FineTuneJobSpec, type JobContext } from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFineTuneJob } from '../src';
import { fineTuneRequest, publishStudent, writeFashionMnist } from './fixtures/fine-tune-fixtures';

/**
 * tfjs-node-gpu as `DEIT_GPU=cuda npm ci` builds it (on TensorFlow's GPU wheel; tools/scripts/
 * install-gpu.mjs), on a host without a GPU: the trainer runs on it, computes on the CPU and says so.
 * CI builds it before `npm test` (.ci/run). On such a host the backend loader tries tfjs-node first
 * (libs/model/src/backend.ts), so this file loads the GPU binding itself before the trainer starts.
 */
const PACKAGE = '@tensorflow/tfjs-node-gpu';
const workspaceRoot = join(__dirname, '..', '..', '..');
const STAMP = join(workspaceRoot, 'node_modules', PACKAGE, 'deps', 'deit-native.json');
const built = existsSync(STAMP);
const hasDriver = existsSync('/proc/driver/nvidia/version');
const JOB_TIMEOUT = 120_000;

const state = built
  ? hasDriver
    ? 'SKIPPED: this host has an NVIDIA driver'
    : 'built, no NVIDIA driver here'
  : 'NOT BUILT, skipped: run `DEIT_GPU=cuda node tools/scripts/install-native.mjs`';

describe.runIf(built && !hasDriver)(`tfjs-node-gpu from DEIT_GPU=cuda (${state})`, () => {
  let root: string;
  let registry: DirectoryRegistry;
  let fmnist: string;

  beforeAll(async () => {
    createRequire(__filename)(PACKAGE);
    root = await mkdtemp(join(tmpdir(), 'finetune-gpu-'));
    registry = await DirectoryRegistry.open(join(root, 'registry'));
    fmnist = await writeFashionMnist(join(root, 'fmnist'), 40);
    await publishStudent(registry, 'student-tiny');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('is the GPU build of TensorFlow, running on the CPU', async () => {
    expect(await initBackend()).toBe('tensorflow');
    const backend = tf.backend() as unknown as { binding: object; isUsingGpuDevice: boolean };
    expect(backend.isUsingGpuDevice).toBe(false);
    expect(describeBackend()).toBe('tensorflow (TensorFlow 2.21.0, CPU)');
    // The binding in use is tfjs-node-gpu's, linked against the GPU wheel's libtensorflow.
    const stamp = JSON.parse(readFileSync(STAMP, 'utf8')) as { wheel: string };
    expect(stamp.wheel).toMatch(/^tensorflow-2\.21\.0-/);
    const loaded = (process.report?.getReport() as { sharedObjects?: string[] }).sharedObjects ?? [];
    expect(loaded).toContainEqual(
      expect.stringMatching(/\/tfjs-node-gpu\/.*\bdeps\/lib\/libtensorflow_cc\.so\.2$/) as unknown,
    );
    expect(loaded.some((path) => /\/tfjs-node\/.*\bdeps\/lib\//.test(path))).toBe(false);
  });

  it(
    'trains a fine-tune job and records the backend and the device it used',
    async () => {
      const logs: string[] = [];
      const backends: string[] = [];
      const losses: number[] = [];
      const request = fineTuneRequest({
        distillation: { type: trainerV1.DistillationType.DISTILLATION_TYPE_NONE, softNormalization: 0 },
      });
      const spec = validateFineTuneSpec({
        ...request,
        dataset: request.dataset && { ...request.dataset, fashionMnist: { dir: fmnist, evalOnTest: false } },
      });
      const ctx: JobContext<FineTuneJobSpec> = {
        jobId: 'job-gpu-1',
        spec,
        workDir: join(root, 'jobs', 'job-gpu-1'),
        attempt: 1,
        signal: new AbortController().signal,
        report: {
          progress: (p) => void (p.loss?.total !== undefined && losses.push(p.loss.total)),
          eval: () => undefined,
          checkpoint: () => Promise.resolve(),
          log: (m) => void logs.push(m),
          backend: (b) => void backends.push(b),
        },
      };
      const result = await createFineTuneJob({ registry, parallelism: 'local', progressIntervalMs: 0 })(ctx);

      expect(backends).toEqual(['tfjs-tensorflow']);
      expect(logs).toContainEqual(
        expect.stringMatching(
          /^training student-tiny:1 on tensorflow \(TensorFlow 2\.21\.0, CPU\), /,
        ) as unknown,
      );
      expect(losses.length).toBeGreaterThanOrEqual(2);
      expect(losses.every(Number.isFinite)).toBe(true);
      const { manifest } = await registry.loadVersion(`${result.model}:${result.version}`);
      expect(manifest.lineage?.backend).toBe('tfjs-tensorflow');
    },
    JOB_TIMEOUT,
  );
});
