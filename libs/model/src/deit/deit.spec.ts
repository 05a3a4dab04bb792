import * as tf from '@tensorflow/tfjs-core';
// Gradients of the stock ops between the custom-gradient blocks (the test runner can load this ES tree).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AVERAGE_HEAD_WEIGHT, averageHeads, Rng } from '@deit-serve/core';
import { initBackend } from '../backend';
import { hostTensor, type NamedWeights } from '../weights/named-weights';
import {
  combineHeads,
  createDeit,
  DeiT,
  DeitWeightsError,
  initDeitWeights,
  isNoWeightDecay,
  parameterShapes,
} from './deit';
import { type DeitConfig } from './presets';
import { plainDeitForward } from './testing/plain-deit';

/** Small enough for fast tests, big enough to exercise heads, several blocks and a 3×3 grid. */
const TINY: DeitConfig = {
  imgSize: 12,
  patchSize: 4,
  inChans: 3,
  embedDim: 16,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
  numClasses: 5,
  distilled: true,
};

function randomPixels(batch: number, size: number, seed: number): tf.Tensor4D {
  const rng = Rng.fromUint32(seed);
  const data = Float32Array.from({ length: batch * 3 * size * size }, () => rng.normal());
  return tf.tensor4d(data, [batch, 3, size, size]);
}

/** Weights with non-trivial norms and biases so every parameter influences the output. */
function randomWeights(config: DeitConfig, seed: number): NamedWeights {
  const rng = Rng.fromUint32(seed);
  const weights: NamedWeights = new Map();
  for (const spec of parameterShapes(config)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: size }, () =>
      spec.kind === 'norm.weight' ? 1 + 0.2 * rng.normal() : 0.3 * rng.normal(),
    );
    weights.set(spec.name, hostTensor(spec.shape, data));
  }
  return weights;
}

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('DeiT forward', () => {
  let model: DeiT;
  beforeAll(() => {
    model = createDeit({ preset: TINY, seed: 1 });
  });
  afterAll(() => model.dispose());

  it.each([1, 8])('gives [B, C] logits from both heads at batch %i', (batch) => {
    const x = randomPixels(batch, TINY.imgSize, batch);
    const out = model.forward(x);
    expect(out.cls.shape).toEqual([batch, TINY.numClasses]);
    expect(out.dist?.shape).toEqual([batch, TINY.numClasses]);
    tf.dispose([x, out.cls, out.dist as tf.Tensor]);
  });

  it('leaks no tensors', () => {
    const x = randomPixels(2, TINY.imgSize, 3);
    const before = tf.memory().numTensors;
    const out = model.forward(x, { training: true, dropPathRate: 0.5 });
    tf.dispose([out.cls, out.dist as tf.Tensor]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('has no dist head when not distilled', () => {
    const plain = createDeit({ preset: { ...TINY, distilled: false } });
    const x = randomPixels(2, TINY.imgSize, 4);
    const out = plain.forward(x);
    expect(out.dist).toBeNull();
    expect(out.cls.shape).toEqual([2, TINY.numClasses]);
    expect(() => combineHeads(out, 'dist')).toThrow(/no distillation head/);
    tf.dispose([x, out.cls]);
    plain.dispose();
  });

  it('rejects pixel_values of the wrong shape', () => {
    const x = tf.zeros<tf.Rank.R4>([1, 1, TINY.imgSize, TINY.imgSize]);
    expect(() => model.forward(x)).toThrow(/pixel_values must be \[B, 3, 12, 12\]/);
    x.dispose();
  });

  it('averages logits (not probabilities) in combineHeads', () => {
    const x = randomPixels(3, TINY.imgSize, 5);
    const out = model.forward(x);
    const avg = combineHeads(out, 'average');
    const expected = tf.div(tf.add(out.cls, out.dist as tf.Tensor), 2);
    expect(Array.from(avg.dataSync())).toEqual(Array.from(expected.dataSync()));
    tf.dispose([x, out.cls, out.dist as tf.Tensor, avg, expected]);
  });

  it('combines heads in tfjs exactly as the host-array rule of @deit-serve/core', () => {
    expect(AVERAGE_HEAD_WEIGHT).toBe(0.5);
    const x = randomPixels(3, TINY.imgSize, 7);
    const out = model.forward(x);
    const avg = combineHeads(out, 'average');
    const cls = out.cls.dataSync() as Float32Array;
    const dist = (out.dist as tf.Tensor2D).dataSync() as Float32Array;
    expect(avg.dataSync()).toEqual(averageHeads(cls, dist));
    tf.dispose([x, out.cls, out.dist as tf.Tensor, avg]);
  });

  it('runs deit_tiny_distilled_patch16_224 at batch 1', () => {
    const big = createDeit({ preset: 'deit_tiny_distilled_patch16_224' });
    expect(big.numParameters).toBe(5_910_800);
    const x = randomPixels(1, 224, 6);
    const out = big.forward(x);
    expect(out.cls.shape).toEqual([1, 1000]);
    expect(out.dist?.shape).toEqual([1, 1000]);
    const values = out.cls.dataSync();
    expect(values.every(Number.isFinite)).toBe(true);
    tf.dispose([x, out.cls, out.dist as tf.Tensor]);
    big.dispose();
  });
});

describe('DeiT matches an independent float64 implementation', () => {
  it.each([true, false])('logits agree to 1e-4 (distilled: %s)', (distilled) => {
    const config: DeitConfig = { ...TINY, embedDim: 8, numHeads: 2, imgSize: 8, numClasses: 3, distilled };
    const weights = randomWeights(config, 11);
    const model = new DeiT(config, { weights });
    const batch = 2;
    const x = randomPixels(batch, config.imgSize, 12);
    const pixels = x.dataSync() as Float32Array;
    const out = model.forward(x);
    const cls = out.cls.arraySync();
    const dist = out.dist?.arraySync() ?? null;
    const perImage = 3 * config.imgSize * config.imgSize;
    for (let b = 0; b < batch; b++) {
      const ref = plainDeitForward(config, weights, pixels.subarray(b * perImage, (b + 1) * perImage));
      for (let c = 0; c < config.numClasses; c++) {
        expect(Math.abs(cls[b][c] - ref.cls[c])).toBeLessThan(1e-4);
        if (distilled)
          expect(Math.abs((dist as number[][])[b][c] - (ref.dist as Float64Array)[c])).toBeLessThan(1e-4);
      }
    }
    tf.dispose([x, out.cls]);
    if (out.dist) out.dist.dispose();
    model.dispose();
  });
});

describe('DeiT weights', () => {
  it('round-trips getWeights → setWeights → getWeights exactly, in timm names and layouts', () => {
    const weights = randomWeights(TINY, 21);
    const model = new DeiT(TINY, { weights });
    const back = model.getWeights();
    expect([...back.keys()]).toEqual(parameterShapes(TINY).map((s) => s.name));
    for (const [name, tensor] of weights) {
      expect(back.get(name)?.shape, name).toEqual(tensor.shape);
      expect(back.get(name)?.data, name).toEqual(tensor.data);
    }
    expect(back.get('patch_embed.proj.weight')?.shape).toEqual([16, 3, 4, 4]);
    expect(back.get('blocks.0.attn.qkv.weight')?.shape).toEqual([48, 16]);

    const other = randomWeights(TINY, 22);
    model.setWeights(other);
    const again = model.getWeights();
    for (const [name, tensor] of other) expect(again.get(name)?.data, name).toEqual(tensor.data);
    model.dispose();
  });

  it('names every missing, unexpected and mis-shaped key in one error', () => {
    const model = createDeit({ preset: TINY });
    const weights = model.getWeights();
    weights.delete('blocks.1.mlp.fc2.bias');
    weights.set('blocks.0.attn.proj.weight', hostTensor([16, 15], new Float32Array(16 * 15)));
    weights.set('fc_norm.weight', hostTensor([16], new Float32Array(16)));
    let error: unknown;
    try {
      model.setWeights(weights);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DeitWeightsError);
    const message = (error as Error).message;
    expect(message).toContain('missing: blocks.1.mlp.fc2.bias');
    expect(message).toContain('unexpected: fc_norm.weight');
    expect(message).toMatch(/blocks\.0\.attn\.proj\.weight is \[16, 15\].*expected \[16, 16\]/);
    expect((error as DeitWeightsError).missing).toEqual(['blocks.1.mlp.fc2.bias']);
    model.dispose();
  });

  it('adapts checkpoint weights to a new image size and class count', () => {
    const source = initDeitWeights(TINY, 3);
    const model = createDeit({ preset: TINY, weights: source, imgSize: 16, numClasses: 7, seed: 4 });
    const w = model.getWeights();
    expect(w.get('pos_embed')?.shape).toEqual([1, 2 + 16, 16]);
    expect(w.get('head.weight')?.shape).toEqual([7, 16]);
    expect(w.get('head_dist.bias')?.data).toEqual(new Float32Array(7));
    expect(w.get('blocks.1.mlp.fc1.weight')?.data).toEqual(source.get('blocks.1.mlp.fc1.weight')?.data);
    model.dispose();
  });

  it('lists the weight-decay exclusions of DeiT', () => {
    const excluded = parameterShapes(TINY)
      .filter((s) => isNoWeightDecay(s.name))
      .map((s) => s.name);
    for (const s of parameterShapes(TINY)) {
      expect(isNoWeightDecay(s.name), s.name).toBe(
        s.shape.length <= 1 || ['cls_token', 'dist_token', 'pos_embed'].includes(s.name),
      );
    }
    expect(excluded).toContain('norm.weight');
    expect(excluded).toContain('blocks.0.norm1.weight');
    expect(excluded).not.toContain('blocks.0.attn.qkv.weight');
  });
});

describe('DeiT initialisation', () => {
  it('follows timm and is deterministic in the seed', () => {
    const config: DeitConfig = { ...TINY, embedDim: 64, numHeads: 4, numClasses: 10 };
    const a = initDeitWeights(config, 7);
    const b = initDeitWeights(config, 7);
    const c = initDeitWeights(config, 8);
    expect(a.get('blocks.0.mlp.fc1.weight')?.data).toEqual(b.get('blocks.0.mlp.fc1.weight')?.data);
    expect(a.get('blocks.0.mlp.fc1.weight')?.data).not.toEqual(c.get('blocks.0.mlp.fc1.weight')?.data);
    const std = (name: string): number => {
      const d = a.get(name)?.data ?? new Float32Array();
      const mean = d.reduce((s, v) => s + v, 0) / d.length;
      return Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length);
    };
    expect(std('blocks.0.mlp.fc1.weight')).toBeCloseTo(0.02, 3);
    expect(std('pos_embed')).toBeCloseTo(0.02, 2);
    expect(std('cls_token')).toBeLessThan(1e-5);
    expect(std('cls_token')).toBeGreaterThan(0);
    expect(a.get('blocks.0.attn.qkv.bias')?.data.every((v) => v === 0)).toBe(true);
    expect(a.get('norm.weight')?.data.every((v) => v === 1)).toBe(true);
    const bound = 1 / Math.sqrt(3 * 4 * 4);
    const conv = a.get('patch_embed.proj.weight')?.data ?? new Float32Array();
    expect(Math.max(...conv.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...conv.map(Math.abs))).toBeGreaterThan(0.9 * bound);
  });
});

describe('DeiT training mode', () => {
  it('sends gradients to every parameter and applies stochastic depth only when training', () => {
    const model = createDeit({ preset: TINY, seed: 5 });
    const x = randomPixels(4, TINY.imgSize, 31);
    const variables = model.namedVariables();
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forward(x, { training: true, dropPathRate: 0.1, dropPathSeed: 1 });
      return tf.add(tf.sum(tf.square(out.cls)), tf.sum(tf.mul(out.dist as tf.Tensor, 0.5)));
    }, [...variables.values()]);
    const names = new Map([...variables].map(([name, v]) => [v.name, name]));
    expect(
      Object.keys(grads)
        .map((n) => names.get(n))
        .sort(),
    ).toEqual([...variables.keys()].sort());
    for (const [tfName, grad] of Object.entries(grads)) {
      const timmName = names.get(tfName) as string;
      expect(grad.shape, timmName).toEqual((variables.get(timmName) as tf.Variable).shape);
      expect(tf.sum(tf.abs(grad)).dataSync()[0], timmName).toBeGreaterThan(0);
    }
    tf.dispose([value, ...Object.values(grads)]);

    const evalA = model.forward(x);
    const evalB = model.forward(x, { training: false, dropPathRate: 0.5 });
    expect(evalA.cls.dataSync()).toEqual(evalB.cls.dataSync());
    const trainA = model.forward(x, { training: true, dropPathRate: 0.5, dropPathSeed: 2 });
    const trainB = model.forward(x, { training: true, dropPathRate: 0.5, dropPathSeed: 2 });
    expect(trainA.cls.dataSync()).toEqual(trainB.cls.dataSync());
    expect(trainA.cls.dataSync()).not.toEqual(evalA.cls.dataSync());
    tf.dispose(
      [
        x,
        evalA.cls,
        evalA.dist,
        evalB.cls,
        evalB.dist,
        trainA.cls,
        trainA.dist,
        trainB.cls,
        trainB.dist,
      ].filter((t) => t !== null),
    );
    model.dispose();
    expect(model.isDisposed).toBe(true);
    expect(() => model.getWeights()).toThrow(/disposed/);
  });
});
