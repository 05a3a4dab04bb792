import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadNativeBinding, type BackendName } from '@deit-serve/model';
import { nativeBuildInstalled, randomPixels } from '@deit-serve/model/testing';
import { createTrainTask as createDeitTask } from './deit-task';
import { LocalTrainer } from './local-trainer';
import { registerGradients } from './register-gradients';
import { createTrainTask as createRegNetTask } from './regnet-task';
import type { HostBatch, TrainTask } from './task';
import { maxAbsDiff } from '@deit-serve/core';

/**
 * Native TensorFlow (tfjs-node) and wasm train the same: the same losses over a few AdamW steps from
 * one seed (the model library checks the forward outputs). Both backends live in this one process;
 * models are built from the same host-side seeded initialisation on each. Runs where `npm ci` built
 * the native binding (CI's machines).
 */
const BACKENDS: readonly BackendName[] = ['wasm', 'tensorflow'];
const CLASSES = 10;

async function onBackend<T>(name: BackendName, run: () => T): Promise<T> {
  expect(await tf.setBackend(name)).toBe(true);
  return run();
}

function batchOf(rows: number, imgSize: number, seed: number, withTeacher: boolean): HostBatch {
  const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7 + seed) % CLASSES);
  return {
    pixel_values: {
      data: randomPixels(rows * 3 * imgSize * imgSize, seed),
      shape: [rows, 3, imgSize, imgSize],
    },
    labels: { data: labels, shape: [rows] },
    ...(withTeacher && {
      teacher_logits: { data: randomPixels(rows * CLASSES, seed + 1), shape: [rows, CLASSES] },
    }),
  };
}

/** Total loss of each of `steps` AdamW steps on the same batch. */
function trainLosses(task: TrainTask, batch: HostBatch, steps: number): number[] {
  const trainer = new LocalTrainer(task, { optimizer: { lr: 1e-3, weightDecay: 0.05 }, microBatchSize: 8 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push(trainer.step(batch).losses['total'] ?? NaN);
  return losses;
}

describe.runIf(nativeBuildInstalled())('native TensorFlow trains like wasm', () => {
  beforeAll(async () => {
    await initBackend('wasm'); // locates the wasm binaries
    expect(loadNativeBinding()).toBe(true);
    await registerGradients();
  });

  it('DeiT distillation training: the same losses over 4 steps from one seed', async () => {
    const losses = [];
    for (const backend of BACKENDS) {
      losses.push(
        await onBackend(backend, () => {
          const task = createDeitTask({
            preset: 'deit_pico_distilled_patch4_28',
            seed: 7,
            loss: { type: 'soft', alpha: 0.5, tau: 1, labelSmoothing: 0.1, softNormalization: 'numel' },
          });
          const result = trainLosses(task, batchOf(16, 28, 8, true), 4);
          task.model.dispose();
          return result;
        }),
      );
    }
    expect(losses[0].every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(losses[0], losses[1])).toBeLessThanOrEqual(1e-4);
    expect(losses[0][3]).toBeLessThan(losses[0][0]); // the steps did train
  });

  it('RegNetY classifier training: the same losses over 4 steps from one seed', async () => {
    const losses = [];
    for (const backend of BACKENDS) {
      losses.push(
        await onBackend(backend, () => {
          const task = createRegNetTask({
            preset: 'regnety_fmnist_28',
            config: { numClasses: CLASSES },
            seed: 9,
            labelSmoothing: 0.1,
          });
          const result = trainLosses(task, batchOf(16, 28, 10, false), 4);
          task.model.dispose();
          return result;
        }),
      );
    }
    expect(losses[0].every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(losses[0], losses[1])).toBeLessThanOrEqual(1e-4);
    expect(losses[0][3]).toBeLessThan(losses[0][0]);
  });
});
