import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadNativeBinding, type BackendName } from './backend';
import { createDeit } from './deit';
import type { DeitPresetName } from './deit/presets';
import { nativeBuildInstalled } from './native-testing';
import { randomPixels } from './onnx/testing';
import { createRegNet } from './regnet';
import type { RegNetPresetName } from './regnet/presets';
import { createTrainTask as createDeitTask } from './train/deit-task';
import { LocalTrainer } from './train/local-trainer';
import { registerGradients } from './train/register-gradients';
import { createTrainTask as createRegNetTask } from './train/regnet-task';
import type { HostBatch, TrainTask } from './train/task';

/**
 * Native TensorFlow (tfjs-node) and wasm compute the same models: forward outputs within 1e-4, and
 * the same losses over a few training steps from one seed. Both backends live in this one process;
 * models are built from the same host-side seeded initialisation on each. Runs where `npm ci` built
 * the native binding (CI's machines).
 */
const BACKENDS: readonly BackendName[] = ['wasm', 'tensorflow'];
const CLASSES = 10;

async function onBackend<T>(name: BackendName, run: () => T): Promise<T> {
  expect(await tf.setBackend(name)).toBe(true);
  return run();
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
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

describe.runIf(nativeBuildInstalled())('native TensorFlow agrees with wasm', () => {
  beforeAll(async () => {
    await initBackend('wasm'); // locates the wasm binaries
    expect(loadNativeBinding()).toBe(true);
    await registerGradients();
  });

  describe.each([
    ['deit_pico_distilled_patch4_28', 3],
    ['deit_tiny_distilled_patch4_32', 4],
  ] as const)('%s', (preset: DeitPresetName, seed) => {
    it('forward outputs of both heads within 1e-4', async () => {
      const outputs = [];
      for (const backend of BACKENDS) {
        outputs.push(
          await onBackend(backend, async () => {
            const model = createDeit({ preset, seed });
            const { imgSize } = model.config;
            const x = tf.tensor4d(randomPixels(4 * 3 * imgSize * imgSize, seed), [4, 3, imgSize, imgSize]);
            const out = model.forward(x, { training: false });
            const result = { cls: await out.cls.data(), dist: await out.dist!.data() };
            tf.dispose([x, out.cls, out.dist!]);
            model.dispose();
            return result;
          }),
        );
      }
      const [wasm, native] = outputs;
      expect(maxAbsDiff(wasm.cls, native.cls)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(wasm.dist, native.dist)).toBeLessThanOrEqual(1e-4);
    });
  });

  it.each([['regnety_fmnist_28'], ['regnety_002']] as const)(
    '%s: forward logits within 1e-4',
    async (preset: RegNetPresetName) => {
      const outputs = [];
      for (const backend of BACKENDS) {
        outputs.push(
          await onBackend(backend, async () => {
            const model = createRegNet({ preset, config: { numClasses: CLASSES }, seed: 5 });
            const imgSize = preset === 'regnety_002' ? 64 : model.config.imgSize;
            const x = tf.tensor4d(randomPixels(2 * 3 * imgSize * imgSize, 6), [2, 3, imgSize, imgSize]);
            const logits = model.forward(x, { training: false });
            const data = await logits.data();
            tf.dispose([x, logits]);
            model.dispose();
            return data;
          }),
        );
      }
      expect(maxAbsDiff(outputs[0], outputs[1])).toBeLessThanOrEqual(1e-4);
    },
  );

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
