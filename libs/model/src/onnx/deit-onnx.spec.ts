import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { WeightMismatchError } from '../weights/validate';
import { deitOnnxWeightShapes, exportDeitOnnx, type DeitOnnxConfig } from './deit-onnx';
import { BATCH_DIM, ONNX_IR_VERSION, ONNX_OPSET_VERSION, OnnxIoName } from './names';
import { decodeModel } from './proto/codec';
import { readOnnxWeights } from './read-weights';
import { randomPixels, randomWeights, referenceDeitForward } from './testing';
import { maxAbsDiff } from '@deit-serve/core';

const TOLERANCE = 1e-4;

const tinyDistilled: DeitOnnxConfig = {
  embedDim: 8,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
  patchSize: 4,
  imgSize: 16,
  numClasses: 5,
  distilled: true,
};
const tinyPlain: DeitOnnxConfig = { ...tinyDistilled, distilled: false, numHeads: 4 };

async function run(
  bytes: Uint8Array,
  pixels: Float32Array,
  batch: number,
  size: number,
): Promise<InferenceSession.OnnxValueMapType> {
  const session = await InferenceSession.create(bytes);
  try {
    return await session.run({
      [OnnxIoName.pixelValues]: new Tensor('float32', pixels, [batch, 3, size, size]),
    });
  } finally {
    await session.release();
  }
}

describe('exportDeitOnnx', () => {
  it.each([1, 8])('matches the Float64 reference for a tiny distilled DeiT (batch %i)', async (batch) => {
    const weights = randomWeights(deitOnnxWeightShapes(tinyDistilled), 1);
    const bytes = exportDeitOnnx(tinyDistilled, weights, { preset: 'tiny_test' });
    const pixels = randomPixels(batch * 3 * 16 * 16, 100 + batch);
    const out = await run(bytes, pixels, batch, 16);
    const ref = referenceDeitForward(tinyDistilled, weights, pixels, batch);
    expect(out[OnnxIoName.clsLogits].dims).toEqual([batch, 5]);
    expect(out[OnnxIoName.distLogits].dims).toEqual([batch, 5]);
    expect(maxAbsDiff(out[OnnxIoName.clsLogits].data as Float32Array, ref.cls)).toBeLessThanOrEqual(
      TOLERANCE,
    );
    expect(
      maxAbsDiff(out[OnnxIoName.distLogits].data as Float32Array, ref.dist as Float64Array),
    ).toBeLessThanOrEqual(TOLERANCE);
    // The two heads must be genuinely different computations.
    expect(maxAbsDiff(ref.cls, ref.dist as Float64Array)).toBeGreaterThan(1e-2);
  });

  it('exports plain DeiT with cls_logits only', async () => {
    const weights = randomWeights(deitOnnxWeightShapes(tinyPlain), 2);
    const bytes = exportDeitOnnx(tinyPlain, weights);
    const pixels = randomPixels(2 * 3 * 16 * 16, 7);
    const out = await run(bytes, pixels, 2, 16);
    expect(Object.keys(out)).toEqual([OnnxIoName.clsLogits]);
    const ref = referenceDeitForward(tinyPlain, weights, pixels, 2);
    expect(maxAbsDiff(out[OnnxIoName.clsLogits].data as Float32Array, ref.cls)).toBeLessThanOrEqual(
      TOLERANCE,
    );
  });

  it('writes opset 17, IR 8, a symbolic batch dimension and metadata', () => {
    const weights = randomWeights(deitOnnxWeightShapes(tinyDistilled), 3);
    const model = decodeModel(
      exportDeitOnnx(tinyDistilled, weights, { preset: 'tiny_test', metadata: { crop_pct: '0.9' } }),
    );
    expect(model.irVersion).toBe(ONNX_IR_VERSION);
    expect(model.opsetImport).toEqual([{ domain: '', version: ONNX_OPSET_VERSION }]);
    const ops = new Set(model.graph?.node?.map((n) => n.opType));
    expect(ops.has('LayerNormalization')).toBe(true);
    expect(ops.has('Erf')).toBe(true);
    expect(ops.has('Gelu')).toBe(false);

    const read = readOnnxWeights(
      exportDeitOnnx(tinyDistilled, weights, { preset: 'tiny_test', metadata: { crop_pct: '0.9' } }),
    );
    expect(read.inputs).toEqual([
      { name: OnnxIoName.pixelValues, elemType: 1, shape: [BATCH_DIM, 3, 16, 16] },
    ]);
    expect(read.outputs).toEqual([
      { name: OnnxIoName.clsLogits, elemType: 1, shape: [BATCH_DIM, 5] },
      { name: OnnxIoName.distLogits, elemType: 1, shape: [BATCH_DIM, 5] },
    ]);
    expect(read.metadata).toMatchObject({
      architecture: 'deit',
      preset: 'tiny_test',
      num_classes: '5',
      image_size: '16',
      patch_size: '4',
      embed_dim: '8',
      depth: '2',
      num_heads: '2',
      distilled: 'true',
      crop_pct: '0.9',
      outputs: JSON.stringify([OnnxIoName.clsLogits, OnnxIoName.distLogits]),
    });
  });

  it('round-trips the weights byte for byte through readOnnxWeights', () => {
    const weights = randomWeights(deitOnnxWeightShapes(tinyDistilled), 4);
    const read = readOnnxWeights(exportDeitOnnx(tinyDistilled, weights));
    expect(read.ignored).toEqual([]);
    expect([...read.weights.keys()].sort()).toEqual([...weights.keys()].sort());
    for (const [name, t] of weights) {
      const back = read.weights.get(name);
      expect(back?.shape, name).toEqual(t.shape);
      expect(
        Buffer.from((back?.data ?? new Float32Array()).buffer).equals(Buffer.from(t.data.buffer)),
        name,
      ).toBe(true);
    }
  });

  it('rejects weights that do not fit the config, listing every problem', () => {
    const weights = randomWeights(deitOnnxWeightShapes(tinyDistilled), 5);
    weights.delete('head_dist.bias');
    weights.set('blocks.0.attn.qkv.weight', { shape: [8, 8], data: new Float32Array(64) });
    weights.set('extra.weight', { shape: [1], data: new Float32Array(1) });
    let error: unknown;
    try {
      exportDeitOnnx(tinyDistilled, weights);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WeightMismatchError);
    const m = error as WeightMismatchError;
    expect(m.missing).toEqual(['head_dist.bias']);
    expect(m.unexpected).toEqual(['extra.weight']);
    expect(m.misshaped).toEqual([{ name: 'blocks.0.attn.qkv.weight', expected: [24, 8], actual: [8, 8] }]);
  });

  it.each([
    ['deit_tiny_distilled_patch16_224', 192, 3, 5_910_800],
    ['deit_small_distilled_patch16_224', 384, 6, 22_436_432],
    ['deit_base_distilled_patch16_224', 768, 12, 87_338_192],
  ] as const)('%s has the documented parameter count', (_name, embedDim, numHeads, params) => {
    const shapes = deitOnnxWeightShapes({
      embedDim,
      numHeads,
      depth: 12,
      mlpRatio: 4,
      patchSize: 16,
      imgSize: 224,
      numClasses: 1000,
      distilled: true,
    });
    let n = 0;
    for (const shape of shapes.values()) n += shape.reduce((a, b) => a * b, 1);
    expect(n).toBe(params);
  });

  it('rejects inconsistent configs and metadata overrides', () => {
    expect(() => deitOnnxWeightShapes({ ...tinyDistilled, numHeads: 3 })).toThrow(
      /not divisible by numHeads/,
    );
    expect(() => deitOnnxWeightShapes({ ...tinyDistilled, imgSize: 18 })).toThrow(
      /not divisible by patchSize/,
    );
    const weights = randomWeights(deitOnnxWeightShapes(tinyDistilled), 6);
    expect(() => exportDeitOnnx(tinyDistilled, weights, { metadata: { num_classes: '7' } })).toThrow(
      /num_classes/,
    );
  });
});
