import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFashionMnist, type ImageDataset } from '@deit-serve/datasets';
import { nativeBuildInstalled } from '@deit-serve/model/testing';
import { writeFashionMnist } from '@deit-serve/finetune/testing';
import { DirectoryRegistry } from '@deit-serve/registry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countOnnxParameters } from '@deit-serve/model/onnx-codec';
import {
  evaluateOnnx,
  latestCheckpointPath,
  packageTeacher,
  trainTeacher,
  type TeacherTrainingSpec,
} from '../src';

// Synthetic Fashion-MNIST-format data: ten distinct patterns, so a few steps already learn something.
const SPEC: TeacherTrainingSpec = {
  preset: 'regnety_fmnist_28',
  seed: 3,
  epochs: 2,
  batchSize: 32,
  lr: 3e-3,
  weightDecay: 0.05,
  warmupEpochs: 0,
  warmupLr: 1e-5,
  minLr: 1e-5,
  labelSmoothing: 0.1,
  augment: { crop: { kind: 'padded', padding: 2 }, hflip: 0.5 },
  bnStatImages: 64,
  evalIntervalEpochs: 1,
};

let root: string;
let train: ImageDataset;
let test: ImageDataset;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'teacher-training-'));
  const dir = await writeFashionMnist(join(root, 'fmnist'), 96, 40);
  train = (await loadFashionMnist(dir, 'train')).dataset;
  test = (await loadFashionMnist(dir, 'test')).dataset;
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('RegNetY teacher training', () => {
  it(
    'trains from scratch, checkpoints each epoch, resumes, exports an ONNX file that scores like tfjs',
    { timeout: 240_000 },
    async () => {
      const workDir = join(root, 'work');
      const logs: string[] = [];
      const first = await trainTeacher({
        spec: { ...SPEC, epochs: 1 },
        train,
        eval: test,
        evalSetName: 'test',
        workDir: join(root, 'work-1'),
        workers: 1,
        log: (m) => logs.push(m),
      });
      expect(first.history.evals).toHaveLength(1);
      // Which backend and device trained it, native TensorFlow wherever `npm ci` built tfjs-node.
      expect(logs[0]).toMatch(
        nativeBuildInstalled()
          ? /^training regnety_fmnist_28 on tensorflow \(TensorFlow \d+\.\d+\.\d+, CPU\): one process$/
          : /^training regnety_fmnist_28 on wasm \(1 thread\): one process$/,
      );

      // The two-epoch run: stop after epoch 1 by aborting, then resume.
      const controller = new AbortController();
      const stopped = trainTeacher({
        spec: SPEC,
        train,
        eval: test,
        evalSetName: 'test',
        workDir,
        workers: 1,
        signal: controller.signal,
        log: (m) => {
          logs.push(m);
          if (m.startsWith('epoch 1:')) controller.abort(new Error('stop'));
        },
      });
      await expect(stopped).rejects.toThrow('stop');
      const checkpoint = await latestCheckpointPath(workDir);
      expect(checkpoint).toMatch(/checkpoint-e00001-b0000000\.safetensors$/);

      const resumed: string[] = [];
      const result = await trainTeacher({
        spec: SPEC,
        train,
        eval: test,
        evalSetName: 'test',
        workDir,
        workers: 1,
        log: (m) => resumed.push(m),
      });
      expect(resumed[0]).toMatch(/resuming from .*: 1 of 2 epochs done/);
      expect(result.history.evals.map((e) => e.epoch)).toEqual([1, 2]);
      expect(result.steps).toBe(2 * Math.ceil(96 / 32));
      expect(result.history.losses.length).toBeGreaterThan(1);
      // Loss starts near ln(10) and the patterns are learnable.
      const losses = result.history.losses.map((l) => l.total);
      expect(losses[0]).toBeGreaterThan(1.5);
      expect(Math.min(...losses)).toBeLessThan(losses[0]);
      expect((await readdir(workDir)).filter((n) => n.startsWith('checkpoint-'))).toHaveLength(2);

      // Another spec never resumes this run's checkpoints.
      await expect(
        trainTeacher({
          spec: { ...SPEC, lr: 1e-3 },
          train,
          eval: test,
          evalSetName: 'test',
          workDir,
          workers: 1,
        }),
      ).rejects.toThrow(/another teacher spec/);

      const packaged = await packageTeacher(result, {
        spec: SPEC,
        eval: test,
        evalSetName: 'test',
        dataset: { name: 'synthetic', sha256: 'a'.repeat(64) },
        gitCommit: null,
      });
      // The exported file scores exactly what tfjs scored on the same images (same weights and BN).
      const tfjsTop1 = result.history.evals.at(-1)?.cls?.top1;
      expect(packaged.onnxTop1).toBe(tfjsTop1);
      expect(packaged.request.architecture).toBe('regnety');
      expect(packaged.request.metrics?.top1.cls).toBe(packaged.onnxTop1);
      expect(packaged.request.files['curves.png']).toBeInstanceOf(Uint8Array);

      const registry = await DirectoryRegistry.open(join(root, 'registry'));
      const info = await registry.publish('teacher', packaged.request);
      const evaluation = await evaluateOnnx(registry, `teacher:${info.version}`, test);
      expect(evaluation.images).toBe(40);
      expect(evaluation.top1).toEqual({ cls: packaged.onnxTop1 });
      expect(evaluation.parameters).toBe(result.parameters);
      expect(evaluation.imagesPerSecond).toBeGreaterThan(0);
      const onnx = (await registry.loadVersion(`teacher:${info.version}`)).files.get('model.onnx');
      expect(countOnnxParameters(onnx as Uint8Array)).toBe(444_094);
    },
  );

  it(
    'trains the architecture a recipe sets (widths, depths) and exports that network',
    { timeout: 240_000 },
    async () => {
      const spec: TeacherTrainingSpec = {
        ...SPEC,
        epochs: 1,
        architecture: { stageWidths: [32, 64, 96], stageDepths: [1, 1, 2] },
      };
      const result = await trainTeacher({
        spec,
        train,
        eval: test,
        evalSetName: 'test',
        workDir: join(root, 'work-architecture'),
        workers: 1,
      });
      expect(result.config.stageWidths).toEqual([32, 64, 96]);
      expect(result.config.stageDepths).toEqual([1, 1, 2]);
      expect(result.config.groupWidth).toBe(16); // the preset's, not overridden
      const packaged = await packageTeacher(result, {
        spec,
        eval: test,
        evalSetName: 'test',
        dataset: { name: 'synthetic', sha256: 'a'.repeat(64) },
        gitCommit: null,
      });
      const onnx = packaged.request.files['model.onnx'] as Uint8Array;
      expect(countOnnxParameters(onnx)).toBe(result.parameters);
      expect(result.parameters).not.toBe(444_094);
      expect(packaged.onnxTop1).toBe(result.history.evals.at(-1)?.cls?.top1);
    },
  );
});
