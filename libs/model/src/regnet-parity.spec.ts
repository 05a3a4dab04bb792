import * as tf from '@tensorflow/tfjs-core';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend';
import { exportRegNetYOnnx, readOnnxWeights } from './onnx';
import { randomPixels, seededRandom } from './onnx/testing';
import { createRegNet, type RegNet } from './regnet';

/**
 * The exported RegNetY must compute what the tfjs model computes in eval mode (running BN
 * statistics): onnxruntime vs tfjs (wasm), random weights and statistics, batch 1 and 8.
 */
describe.each(['regnety_fmnist_28', 'regnety_002'] as const)('%s: tfjs ↔ ONNX', (preset) => {
  let model: RegNet;
  let session: InferenceSession;
  const imgSize = preset === 'regnety_002' ? 64 : 28;

  beforeAll(async () => {
    await initBackend('wasm');
    model = createRegNet({ preset, seed: 5, zeroInitLast: false, config: { imgSize } });
    // Non-trivial running statistics, so that eval-mode BatchNorm is really exercised.
    const rand = seededRandom(9);
    const weights = model.getWeights();
    for (const [name, t] of weights) {
      if (name.endsWith('running_mean')) t.data.forEach((_, i) => (t.data[i] = (rand() - 0.5) * 0.2));
      if (name.endsWith('running_var')) t.data.forEach((_, i) => (t.data[i] = 0.5 + rand()));
    }
    model.setWeights(weights);
    session = await InferenceSession.create(exportRegNetYOnnx(model.config, model.getWeights(), { preset }));
  });

  afterAll(async () => {
    model.dispose();
    await session.release();
  });

  it.each([1, 8])('onnxruntime matches tfjs at batch %i (max abs diff ≤ 1e-4)', async (batch) => {
    const pixels = randomPixels(batch * 3 * imgSize * imgSize, batch);
    const ort = await session.run({
      pixel_values: new Tensor('float32', pixels, [batch, 3, imgSize, imgSize]),
    });
    const x = tf.tensor4d(pixels, [batch, 3, imgSize, imgSize]);
    const y = model.forward(x, { training: false });
    const expected = await y.data();
    tf.dispose([x, y]);
    const actual = ort['logits'].data as Float32Array;
    expect(actual.length).toBe(expected.length);
    let worst = 0;
    for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    expect(worst).toBeLessThanOrEqual(1e-4);
  });

  it('reads its weights back from the ONNX file unchanged', () => {
    const weights = model.getWeights();
    const back = readOnnxWeights(exportRegNetYOnnx(model.config, weights, { preset })).weights;
    for (const [name, t] of weights)
      expect(Array.from(back.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
  });
});
