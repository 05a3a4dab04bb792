import * as tf from '@tensorflow/tfjs-core';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend';
import { createDeit, type DeiT } from './deit';
import { exportDeitOnnx, readOnnxWeights } from './onnx';
import { randomPixels } from './onnx/testing';
import { readSafetensors, writeSafetensors } from './weights/safetensors';
import type { NamedWeights } from './weights/named-weights';

/**
 * The exported file must compute what the tfjs model computes: onnxruntime vs tfjs (wasm) on random
 * weights and random inputs, batch 1 and 8, max abs diff ≤ 1e-4.
 */
async function maxAbsDiff(
  model: DeiT,
  session: InferenceSession,
  batch: number,
  seed: number,
): Promise<number> {
  const { imgSize } = model.config;
  const pixels = randomPixels(batch * 3 * imgSize * imgSize, seed);
  const [ortOut, tfOut] = await Promise.all([
    session.run({ pixel_values: new Tensor('float32', pixels, [batch, 3, imgSize, imgSize]) }),
    (async () => {
      const x = tf.tensor4d(pixels, [batch, 3, imgSize, imgSize]);
      const out = model.forward(x, { training: false });
      const cls = await out.cls.data();
      const dist = out.dist ? await out.dist.data() : undefined;
      tf.dispose([x, out.cls, ...(out.dist ? [out.dist] : [])]);
      return { cls, dist };
    })(),
  ]);
  let worst = 0;
  const compare = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    expect(a.length).toBe(b.length);
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  };
  compare(ortOut['cls_logits'].data as Float32Array, tfOut.cls);
  if (tfOut.dist) compare(ortOut['dist_logits'].data as Float32Array, tfOut.dist);
  return worst;
}

function expectSameWeights(a: NamedWeights, b: NamedWeights): void {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [name, t] of a) {
    const other = b.get(name)!;
    expect(other.shape, name).toEqual(t.shape);
    expect(
      Buffer.from(other.data.buffer, other.data.byteOffset, other.data.byteLength).equals(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      ),
      name,
    ).toBe(true);
  }
}

describe.each([
  ['deit_tiny_distilled_patch16_224', 11],
  ['deit_pico_distilled_patch4_28', 12],
] as const)('%s: tfjs ↔ ONNX', (preset, seed) => {
  let model: DeiT;
  let session: InferenceSession;
  let onnx: Uint8Array;

  beforeAll(async () => {
    await initBackend('wasm');
    model = createDeit({ preset, seed });
    onnx = exportDeitOnnx(model.config, model.getWeights(), { preset });
    session = await InferenceSession.create(onnx);
  });

  afterAll(async () => {
    model.dispose();
    await session.release();
  });

  it.each([1, 8])('onnxruntime matches tfjs at batch %i (max abs diff ≤ 1e-4)', async (batch) => {
    expect(await maxAbsDiff(model, session, batch, seed * 100 + batch)).toBeLessThanOrEqual(1e-4);
  });

  it('round-trips safetensors → tfjs → ONNX → tfjs with identical weights', () => {
    const weights = model.getWeights();
    const fromFile = readSafetensors(writeSafetensors(weights)).weights;
    const a = createDeit({ preset, weights: fromFile });
    const exported = exportDeitOnnx(a.config, a.getWeights(), { preset });
    const b = createDeit({ preset, weights: readOnnxWeights(exported).weights });
    try {
      expectSameWeights(weights, a.getWeights());
      expectSameWeights(weights, b.getWeights());
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

describe('weight loading errors name the key', () => {
  beforeAll(() => initBackend('wasm'));

  it('a missing and a mis-shaped key are both reported', () => {
    const model = createDeit({ preset: 'deit_pico_distilled_patch4_28', seed: 1 });
    const weights = model.getWeights();
    model.dispose();
    weights.delete('blocks.0.attn.qkv.bias');
    const fc1 = weights.get('blocks.1.mlp.fc1.weight')!;
    weights.set('blocks.1.mlp.fc1.weight', { shape: [fc1.shape[1], fc1.shape[0]], data: fc1.data });
    const bytes = writeSafetensors(weights);
    expect(() =>
      createDeit({ preset: 'deit_pico_distilled_patch4_28', weights: readSafetensors(bytes).weights }),
    ).toThrow(
      /blocks\.0\.attn\.qkv\.bias[\s\S]*blocks\.1\.mlp\.fc1\.weight|blocks\.1\.mlp\.fc1\.weight[\s\S]*blocks\.0\.attn\.qkv\.bias/,
    );
  });
});
