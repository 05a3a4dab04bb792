import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadNativeBinding, type BackendName } from './backend';
import { createDeit } from './deit';
import type { DeitPresetName } from './deit/presets';
import { nativeBuildInstalled } from './native-testing';
import { randomPixels } from './onnx/testing';
import { createRegNet } from './regnet';
import { batchNormTrain, conv3x3 } from './regnet/layers';
import { patchEmbed, selfAttention } from './deit/layers';
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

  /** Gradients of Σ f(inputs) · r on one backend, r a fixed random weighting of the output. */
  async function gradsOn(
    backend: BackendName,
    shapes: readonly number[][],
    f: (...inputs: tf.Tensor[]) => tf.Tensor,
  ): Promise<Float32Array[]> {
    return onBackend(backend, async () => {
      const inputs = shapes.map((shape, i) =>
        tf.tensor(
          randomPixels(
            shape.reduce((a, b) => a * b, 1),
            11 + i,
          ),
          shape,
        ),
      );
      const out = f(...inputs);
      const r = tf.tensor(randomPixels(out.size, 99), out.shape);
      out.dispose();
      const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), r)))(inputs);
      const data = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
      tf.dispose([...inputs, r, ...grads]);
      return data;
    });
  }

  // The layers whose formulation differs by backend: wasm's hand-written gradients against native
  // TensorFlow's kernels and stock gradients.
  it.each([
    [1, 3],
    [2, 3],
    [2, 1],
  ] as const)(
    'conv3x3 stride %i, %i groups: input and weight gradients within 1e-4',
    async (stride, groups) => {
      const shapes = [
        [2, 8, 8, 12], // even sides: where TensorFlow's own stride-2 padding would differ from PyTorch's
        [3 * groups, 3, 12 / groups, 6 / groups],
      ];
      const conv = (x: tf.Tensor, w: tf.Tensor): tf.Tensor =>
        conv3x3(x as tf.Tensor4D, w as tf.Tensor4D, { stride, groups });
      const [wasm, native] = [await gradsOn('wasm', shapes, conv), await gradsOn('tensorflow', shapes, conv)];
      for (let i = 0; i < shapes.length; i++)
        expect(maxAbsDiff(wasm[i], native[i])).toBeLessThanOrEqual(1e-4);
    },
  );

  it('self-attention: gradients of tokens, qkv weight and bias within 1e-4', async () => {
    const shape = { batch: 2, tokens: 5, heads: 2, headDim: 4 };
    const shapes = [[10, 8], [8, 24], [24]];
    const attention = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor =>
      selfAttention(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D, shape);
    const [wasm, native] = [
      await gradsOn('wasm', shapes, attention),
      await gradsOn('tensorflow', shapes, attention),
    ];
    for (let i = 0; i < shapes.length; i++) expect(maxAbsDiff(wasm[i], native[i])).toBeLessThanOrEqual(1e-4);
  });

  it('patch embedding: gradients of pixels, weight and bias within 1e-4', async () => {
    const shapes = [[2, 3, 8, 8], [3 * 4 * 4, 5], [5]];
    const embed = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor =>
      patchEmbed(x as tf.Tensor4D, w as tf.Tensor2D, b as tf.Tensor1D, 4);
    const [wasm, native] = [await gradsOn('wasm', shapes, embed), await gradsOn('tensorflow', shapes, embed)];
    for (let i = 0; i < shapes.length; i++) expect(maxAbsDiff(wasm[i], native[i])).toBeLessThanOrEqual(1e-4);
  });

  it.each([[true], [false]])(
    'training BatchNorm (ReLU %s): gradients and running statistics within 1e-4',
    async (relu) => {
      const shapes = [[24, 6], [6], [6]];
      const results = [];
      for (const backend of BACKENDS) {
        const running = await onBackend(backend, () => ({
          runningMean: tf.variable(tf.fill([6], 0.5)),
          runningVar: tf.variable(tf.fill([6], 2)),
        }));
        const bn = (x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor =>
          batchNormTrain(
            x as tf.Tensor2D,
            { weight: weight as tf.Tensor1D, bias: bias as tf.Tensor1D, ...running },
            relu,
          );
        const grads = await gradsOn(backend, shapes, bn);
        // gradsOn ran the op twice (value, then gradients): both updates are in the statistics.
        results.push({
          grads,
          mean: await running.runningMean.data(),
          variance: await running.runningVar.data(),
        });
        tf.dispose([running.runningMean, running.runningVar]);
      }
      const [wasm, native] = results;
      for (let i = 0; i < shapes.length; i++)
        expect(maxAbsDiff(wasm.grads[i], native.grads[i])).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(wasm.mean, native.mean)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(wasm.variance, native.variance)).toBeLessThanOrEqual(1e-4);
      expect(wasm.variance[0]).not.toBeCloseTo(2, 3); // the statistics did move
    },
  );
});
