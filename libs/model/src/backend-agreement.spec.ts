import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadNativeBinding, type BackendName } from './backend';
import { createDeit } from './deit';
import type { DeitPresetName } from './deit/presets';
import { nativeBuildInstalled } from './native-testing';
import { randomPixels } from './onnx/testing';
import { createRegNet } from './regnet';
import type { RegNetPresetName } from './regnet/presets';
import { maxAbsDiff } from '@deit-serve/core';

/**
 * Native TensorFlow (tfjs-node) and wasm compute the same models: forward outputs within 1e-4 (the
 * training library checks the same for training losses). Both backends live in this one process;
 * models are built from the same host-side seeded initialisation on each. Runs where `npm ci` built
 * the native binding (CI's machines).
 */
const BACKENDS: readonly BackendName[] = ['wasm', 'tensorflow'];
const CLASSES = 10;

async function onBackend<T>(name: BackendName, run: () => T): Promise<T> {
  expect(await tf.setBackend(name)).toBe(true);
  return run();
}

describe.runIf(nativeBuildInstalled())('native TensorFlow agrees with wasm', () => {
  beforeAll(async () => {
    await initBackend('wasm'); // locates the wasm binaries
    expect(loadNativeBinding()).toBe(true);
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
});
