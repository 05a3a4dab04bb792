import * as tf from '@tensorflow/tfjs-core';
// Gradients of the stock ops between the custom-gradient blocks (the test runner can load this ES tree).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@deit-serve/core';
import { initBackend } from '../backend';
import { hostTensor, type NamedWeights } from '../weights/named-weights';
import { WeightMismatchError } from '../weights/validate';
import { type RegNetConfig } from './presets';
import { createRegNet, initRegNetWeights, parameterShapes, RegNet, stateShapes } from './regnet';
import { plainRegNetForward } from './testing/plain-regnet';

/** Every feature of the real presets (groups > 1, SE, downsample and identity blocks) at toy size. */
const TINY: RegNetConfig = {
  stemWidth: 8,
  stemStride: 1,
  stageWidths: [8, 16],
  stageDepths: [1, 2],
  groupWidth: 4,
  seRatio: 0.25,
  numClasses: 5,
  imgSize: 12,
  inChans: 3,
};

const rng = Rng.fromUint32(3);
const randn = (shape: number[], scale = 1): tf.Tensor =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()),
    shape,
  );

/** The same weights with every value perturbed (so BN and zero-initialised tensors are not trivial). */
function perturbed(weights: NamedWeights, seed: number): NamedWeights {
  const r = Rng.fromUint32(seed);
  return new Map(
    [...weights].map(([name, t]) => {
      const data = t.data.map((v) =>
        name.endsWith('running_var') ? 1 + 0.5 * r.float() : v + 0.2 * r.normal(),
      );
      return [name, hostTensor(t.shape, data)];
    }),
  );
}

beforeAll(async () => {
  await initBackend('wasm');
  expect(tf.getBackend()).toBe('wasm');
});

describe('RegNet model', () => {
  let model: RegNet;
  beforeAll(() => {
    model = new RegNet(TINY, { seed: 1 });
  });
  afterAll(() => model.dispose());

  it.each([1, 8])('maps pixel_values [%i, 3, H, W] to logits [B, classes]', (batch) => {
    tf.tidy(() => {
      const logits = model.forward(randn([batch, 3, 12, 12]) as tf.Tensor4D);
      expect(logits.shape).toEqual([batch, 5]);
      expect(Array.from(logits.dataSync()).every(Number.isFinite)).toBe(true);
      // Any input size works for a CNN.
      expect(model.forward(randn([batch, 3, 9, 10]) as tf.Tensor4D).shape).toEqual([batch, 5]);
    });
  });

  it.each([
    ['12×12', 12, 12],
    ['odd 9×11', 9, 11],
  ])('matches a plain-JS NCHW reference on timm-layout weights in eval mode (%s)', (_, H, W) => {
    const weights = perturbed(initRegNetWeights(TINY, { seed: 21 }), 22);
    const m = new RegNet(TINY, { weights });
    const pixels = randn([3, 3, H, W]);
    const want = plainRegNetForward(TINY, weights, pixels.dataSync() as Float32Array, 3, H, W).flat();
    const got = tf.tidy(() => m.forward(pixels as tf.Tensor4D).dataSync());
    const scale = Math.max(1, ...want.map(Math.abs));
    want.forEach((v, i) => expect(Math.abs(got[i] - v) / scale).toBeLessThan(1e-4));
    pixels.dispose();
    m.dispose();
  });

  it('rejects pixel_values that are not [B, 3, H, W]', () => {
    tf.tidy(() => {
      expect(() => model.forward(tf.zeros<tf.Rank.R4>([1, 12, 12, 3]))).toThrow(
        /pixel_values must be \[B, 3, H, W\]/,
      );
    });
  });

  it('forward shapes of the Fashion-MNIST preset at batch 1 and 8', () => {
    const fmnist = createRegNet({ preset: 'regnety_fmnist_28' });
    tf.tidy(() => {
      for (const batch of [1, 8]) {
        expect(fmnist.forward(tf.zeros<tf.Rank.R4>([batch, 3, 28, 28])).shape).toEqual([batch, 10]);
      }
      expect(fmnist.forward(tf.zeros<tf.Rank.R4>([2, 3, 32, 32]), { training: true }).shape).toEqual([2, 10]);
    });
    fmnist.dispose();
  });

  it('runs a real ImageNet preset (regnety_002: 46 groups of 8 in stage 4)', () => {
    const m = createRegNet({ preset: 'regnety_002' });
    expect(m.numParameters).toBe(3_162_996);
    tf.tidy(() => {
      const logits = m.forward(randn([1, 3, 64, 64]) as tf.Tensor4D);
      expect(logits.shape).toEqual([1, 1000]);
      expect(Array.from(logits.dataSync()).every(Number.isFinite)).toBe(true);
    });
    m.dispose();
  });

  it('round-trips weights exactly through getWeights/setWeights (running statistics included)', () => {
    const source = perturbed(initRegNetWeights(TINY, { seed: 5 }), 11);
    const other = new RegNet(TINY, { seed: 2 });
    other.setWeights(source);
    const back = other.getWeights();
    expect([...back.keys()]).toEqual(stateShapes(TINY).map((s) => s.name));
    for (const [name, t] of source) {
      expect(back.get(name)?.shape, name).toEqual(t.shape);
      expect(Array.from(back.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
    }
    // Same weights → same outputs, in both modes' eval path.
    const fromCtor = new RegNet(TINY, { weights: source });
    tf.tidy(() => {
      const x = randn([2, 3, 12, 12]) as tf.Tensor4D;
      expect(Array.from(fromCtor.forward(x).dataSync())).toEqual(Array.from(other.forward(x).dataSync()));
    });
    other.dispose();
    fromCtor.dispose();
  });

  it('setWeights names every missing, unexpected and mis-shaped key in one error and changes nothing', () => {
    const weights = new Map(model.getWeights());
    const before = model.getWeights();
    weights.delete('s1.b1.se.fc1.bias');
    weights.delete('stem.bn.running_var');
    weights.set('s9.b1.conv1.conv.weight', hostTensor([1], new Float32Array(1)));
    weights.set('head.fc.weight', hostTensor([4, 16], new Float32Array(64)));
    weights.set('s1.b1.conv1.bn.num_batches_tracked', hostTensor([], new Float32Array(1)));
    let error: unknown;
    try {
      model.setWeights(weights);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WeightMismatchError);
    const message = (error as Error).message;
    expect(message).toMatch(/missing: +s1\.b1\.se\.fc1\.bias/);
    expect(message).toMatch(/missing: +stem\.bn\.running_var/);
    expect(message).toMatch(/unexpected: +s9\.b1\.conv1\.conv\.weight/);
    expect(message).toMatch(/mis-shaped: +head\.fc\.weight expected \[5, 16\], got \[4, 16\]/);
    expect(message).not.toMatch(/num_batches_tracked/);
    const after = model.getWeights();
    for (const [name, t] of before)
      expect(Array.from(after.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
  });

  it('initialises like timm: seeded, fan-out normal convs, zeroed last BN, small head', () => {
    const a = initRegNetWeights(TINY, { seed: 4 });
    const b = initRegNetWeights(TINY, { seed: 4 });
    const c = initRegNetWeights(TINY, { seed: 5 });
    for (const [name, t] of a) expect(Array.from(b.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
    expect(Array.from(c.get('stem.conv.weight')?.data ?? [])).not.toEqual(
      Array.from(a.get('stem.conv.weight')?.data ?? []),
    );
    const std = (data: Float32Array): number => Math.sqrt(data.reduce((s, v) => s + v * v, 0) / data.length);
    // s2.b1.conv2: 16 out, 4 groups → fan_out 9·16/4 = 36.
    expect(std(a.get('s2.b1.conv2.conv.weight')?.data ?? new Float32Array(1))).toBeCloseTo(
      Math.sqrt(2 / 36),
      1,
    );
    expect(Array.from(a.get('s2.b2.conv3.bn.weight')?.data ?? [])).toEqual(new Array(16).fill(0));
    expect(Array.from(a.get('s2.b2.conv2.bn.weight')?.data ?? [])).toEqual(new Array(16).fill(1));
    expect(Array.from(a.get('stem.bn.running_var')?.data ?? [])).toEqual(new Array(8).fill(1));
    expect(std(a.get('head.fc.weight')?.data ?? new Float32Array(1))).toBeLessThan(0.02);
    expect(Array.from(a.get('s1.b1.se.fc1.bias')?.data ?? [])).toEqual([0, 0]);
    const plain = initRegNetWeights(TINY, { seed: 4, zeroInitLast: false });
    expect(Array.from(plain.get('s2.b2.conv3.bn.weight')?.data ?? [])).toEqual(new Array(16).fill(1));
  });

  it('uses batch statistics and updates running statistics only in training mode', () => {
    const m = new RegNet(TINY, { weights: perturbed(initRegNetWeights(TINY), 13) });
    tf.tidy(() => {
      const x = randn([4, 3, 12, 12]) as tf.Tensor4D;
      const running = (): number[] =>
        Array.from(m.getWeights().get('s2.b2.conv1.bn.running_mean')?.data ?? []);
      const r0 = running();
      const eval1 = m.forward(x).dataSync();
      expect(running()).toEqual(r0);
      const train1 = m.forward(x, { training: true }).dataSync();
      const r1 = running();
      expect(r1).not.toEqual(r0);
      // Training output depends on the batch: the first sample alone gives a different result.
      const trainAlone = m.forward(tf.slice(x, [0, 0, 0, 0], [2, 3, 12, 12]), { training: true }).dataSync();
      expect(Math.abs(trainAlone[0] - train1[0])).toBeGreaterThan(1e-6);
      // Eval output does not depend on the batch, and changed with the running statistics.
      const eval2 = m.forward(x).dataSync();
      const evalAlone = m.forward(tf.slice(x, [0, 0, 0, 0], [1, 3, 12, 12])).dataSync();
      for (let i = 0; i < 5; i++) expect(evalAlone[i]).toBeCloseTo(eval2[i], 5);
      expect(Array.from(eval2)).not.toEqual(Array.from(eval1));
    });
    m.dispose();
  });

  it('recomputes BatchNorm statistics as the plain mean over batches, whatever they were before', () => {
    const m = new RegNet(TINY, { weights: perturbed(initRegNetWeights(TINY), 17) });
    const x1 = randn([4, 3, 12, 12]) as tf.Tensor4D;
    const x2 = tf.mul<tf.Tensor4D>(randn([4, 3, 12, 12]), 3);
    const buffers = (): Map<string, Float32Array> =>
      new Map([...m.getWeights()].filter(([n]) => n.includes('.running_')).map(([n, t]) => [n, t.data]));
    expect(m.recomputeBatchNormStatistics([x1])).toBe(1);
    const only1 = buffers();
    m.recomputeBatchNormStatistics([x2]);
    const only2 = buffers();
    expect(m.recomputeBatchNormStatistics([x1, x2])).toBe(2);
    const both = buffers();
    expect(both.size).toBeGreaterThan(4);
    for (const [name, values] of both) {
      const a = only1.get(name) as Float32Array;
      const b = only2.get(name) as Float32Array;
      values.forEach((v, i) => expect(v).toBeCloseTo((a[i] + b[i]) / 2, 4));
      // The two batches differ in scale, so the average is not either one.
      if (name.endsWith('running_var')) expect(Array.from(values)).not.toEqual(Array.from(a));
    }
    // Later training-mode calls use PyTorch's momentum again (0.1).
    const before = buffers().get('stem.bn.running_mean') as Float32Array;
    tf.dispose(m.forward(x2, { training: true }));
    const after = buffers().get('stem.bn.running_mean') as Float32Array;
    const stat2 = only2.get('stem.bn.running_mean') as Float32Array;
    after.forEach((v, i) => expect(v).toBeCloseTo(0.9 * before[i] + 0.1 * stat2[i], 4));
    tf.dispose([x1, x2]);
    m.dispose();
  });

  it('has a gradient for every trainable variable on wasm, and one SGD step lowers the loss', () => {
    // No zeroed last BN (it would zero most gradients at step 0), and positive SE fc1 biases: with
    // only 2 reduction channels both ReLUs can be off for a whole toy batch.
    const weights = initRegNetWeights(TINY, { seed: 9, zeroInitLast: false });
    for (const [name, t] of weights) if (name.endsWith('.se.fc1.bias')) t.data.fill(0.5);
    const m = new RegNet(TINY, { weights });
    const named = m.namedVariables();
    expect([...named.keys()]).toEqual(parameterShapes(TINY).map((s) => s.name));
    const x = randn([6, 3, 12, 12]) as tf.Tensor4D;
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 0], 'int32'), 5);
    const loss = (): tf.Scalar => tf.losses.softmaxCrossEntropy(labels, m.forward(x, { training: true }));
    const { value, grads } = tf.variableGrads(loss, [...named.values()]);
    const loss0 = value.dataSync()[0];
    for (const [name, variable] of named) {
      const g = grads[variable.name];
      expect(g, name).toBeDefined();
      expect(g.shape, name).toEqual(variable.shape);
      const values = g.dataSync();
      expect(values.every(Number.isFinite), name).toBe(true);
      expect(
        values.some((v) => v !== 0),
        `${name} has an all-zero gradient`,
      ).toBe(true);
    }
    const optimizer = tf.train.sgd(0.1);
    optimizer.applyGradients(grads);
    const loss1 = tf.tidy(loss).dataSync()[0];
    expect(loss1).toBeLessThan(loss0);
    tf.dispose([value, x, labels, ...Object.values(grads)]);
    optimizer.dispose();
    m.dispose();
  });

  it('does not leak tensors in inference or in a gradient step', () => {
    const m = new RegNet(TINY, { seed: 9 });
    const x = randn([2, 3, 12, 12]) as tf.Tensor4D;
    // Warm-up: the group-selector matrices are created once per shape and kept (see layers.ts).
    tf.dispose(m.forward(x));
    const before = tf.memory().numTensors;
    tf.dispose(m.forward(x));
    tf.dispose(m.forward(x, { training: true }));
    const { value, grads } = tf.variableGrads(() => tf.mean<tf.Scalar>(m.forward(x, { training: true })));
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    m.dispose();
  });

  it('refuses use after dispose', () => {
    const m = new RegNet(TINY);
    m.dispose();
    expect(() => m.getWeights()).toThrow(/disposed/);
  });
});
