import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { numel } from '../weights/named-weights';
import { BATCH_DIM, OnnxIoName } from './names';
import { decodeModel } from './proto/codec';
import { readOnnxWeights } from './read-weights';
import {
  exportRegNetYOnnx,
  pythonRound,
  regnetYBlocks,
  regnetYOnnxWeightShapes,
  type RegNetYOnnxConfig,
} from './regnet-onnx';
import { randomPixels, randomWeights, referenceRegNetYForward } from './testing';

const TOLERANCE = 1e-4;

/** Three stages with 1, 2 and 3 groups, an identity shortcut in s2.b2 and a downsample in every b1. */
const tiny: RegNetYOnnxConfig = {
  stemWidth: 8,
  stageWidths: [8, 16, 24],
  stageDepths: [1, 2, 1],
  groupWidth: 8,
  numClasses: 5,
  imgSize: 32,
};

function paramCount(shapes: Map<string, number[]>): number {
  let n = 0;
  for (const [name, shape] of shapes) if (!name.includes('running_')) n += numel(shape);
  return n;
}

describe('exportRegNetYOnnx', () => {
  it.each([1, 8])('matches the Float64 reference for a tiny RegNetY (batch %i)', async (batch) => {
    const weights = randomWeights(regnetYOnnxWeightShapes(tiny), 11);
    const bytes = exportRegNetYOnnx(tiny, weights, { preset: 'tiny_regnety' });
    const pixels = randomPixels(batch * 3 * 32 * 32, 200 + batch);
    const session = await InferenceSession.create(bytes);
    try {
      const out = await session.run({
        [OnnxIoName.pixelValues]: new Tensor('float32', pixels, [batch, 3, 32, 32]),
      });
      const logits = out[OnnxIoName.logits];
      expect(logits.dims).toEqual([batch, 5]);
      const ref = referenceRegNetYForward(tiny, weights, pixels, batch);
      const got = logits.data as Float32Array;
      let diff = 0;
      for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(got[i] - ref[i]));
      expect(diff).toBeLessThanOrEqual(TOLERANCE);
    } finally {
      await session.release();
    }
  });

  it('follows timm block structure: strides, groups, SE width from the block input, downsample only when needed', () => {
    expect(regnetYBlocks(tiny)).toEqual([
      {
        name: 's1.b1',
        inChs: 8,
        outChs: 8,
        stride: 2,
        bottleneckChs: 8,
        groups: 1,
        seChs: 2,
        downsample: true,
      },
      {
        name: 's2.b1',
        inChs: 8,
        outChs: 16,
        stride: 2,
        bottleneckChs: 16,
        groups: 2,
        seChs: 2,
        downsample: true,
      },
      {
        name: 's2.b2',
        inChs: 16,
        outChs: 16,
        stride: 1,
        bottleneckChs: 16,
        groups: 2,
        seChs: 4,
        downsample: false,
      },
      {
        name: 's3.b1',
        inChs: 16,
        outChs: 24,
        stride: 2,
        bottleneckChs: 24,
        groups: 3,
        seChs: 4,
        downsample: true,
      },
    ]);
    const shapes = regnetYOnnxWeightShapes(tiny);
    expect(shapes.get('stem.conv.weight')).toEqual([8, 3, 3, 3]);
    expect(shapes.get('s2.b1.conv2.conv.weight')).toEqual([16, 8, 3, 3]);
    expect(shapes.get('s2.b1.se.fc1.weight')).toEqual([2, 16, 1, 1]);
    expect(shapes.get('s2.b1.downsample.conv.weight')).toEqual([16, 8, 1, 1]);
    expect(shapes.has('s2.b2.downsample.conv.weight')).toBe(false);
    expect(shapes.get('head.fc.weight')).toEqual([5, 24]);
    expect([...shapes.keys()].some((k) => k.endsWith('num_batches_tracked'))).toBe(false);
  });

  it('rounds SE widths half-to-even like Python and caps the group width at the bottleneck width', () => {
    expect([0.5, 1.5, 2.5, 14.5, 3.4, 3.6].map(pythonRound)).toEqual([0, 2, 2, 14, 3, 4]);
    const blocks = regnetYBlocks({
      stemWidth: 10,
      stageWidths: [6],
      stageDepths: [1],
      groupWidth: 8,
      numClasses: 2,
      imgSize: 8,
    });
    expect(blocks[0]).toMatchObject({ seChs: 2, groups: 1 }); // round(10 × 0.25 = 2.5) = 2; group width min(8, 6)
  });

  it.each([
    ['regnety_002', [24, 56, 152, 368], [1, 1, 4, 7], 8, 3.2],
    ['regnety_016', [48, 120, 336, 888], [2, 6, 17, 2], 24, 11.2],
    ['regnety_160', [224, 448, 1232, 3024], [2, 4, 11, 1], 112, 83.6],
  ] as const)('%s has the documented parameter count', (_name, widths, depths, gw, millions) => {
    const shapes = regnetYOnnxWeightShapes({
      stageWidths: widths,
      stageDepths: depths,
      groupWidth: gw,
      numClasses: 1000,
      imgSize: 224,
    });
    expect(Math.round(paramCount(shapes) / 1e5) / 10).toBe(millions);
  });

  it('writes Conv/BatchNormalization with timm initializer names and round-trips them', () => {
    const weights = randomWeights(regnetYOnnxWeightShapes(tiny), 12);
    const bytes = exportRegNetYOnnx(tiny, weights);
    const graph = decodeModel(bytes).graph;
    const bn = graph?.node?.find((n) => n.opType === 'BatchNormalization');
    expect(bn?.input?.slice(1)).toEqual([
      'stem.bn.weight',
      'stem.bn.bias',
      'stem.bn.running_mean',
      'stem.bn.running_var',
    ]);
    const read = readOnnxWeights(bytes);
    expect(read.outputs).toEqual([{ name: OnnxIoName.logits, elemType: 1, shape: [BATCH_DIM, 5] }]);
    expect(read.metadata).toMatchObject({
      architecture: 'regnety',
      stage_widths: '[8,16,24]',
      group_width: '8',
      se_ratio: '0.25',
    });
    expect(read.weights.size).toBe(weights.size);
    for (const [name, t] of weights) {
      expect(
        Buffer.from(read.weights.get(name)?.data.buffer ?? new ArrayBuffer(0)).equals(
          Buffer.from(t.data.buffer),
        ),
        name,
      ).toBe(true);
    }
  });

  it('rejects bad configs', () => {
    expect(() => regnetYBlocks({ ...tiny, stageDepths: [1, 2] })).toThrow(
      /3 stage widths but 2 stage depths/,
    );
    expect(() => regnetYBlocks({ ...tiny, stageWidths: [8, 12, 24] })).toThrow(
      /not a multiple of group width/,
    );
    expect(() =>
      regnetYBlocks({ ...tiny, stageWidths: [8, 8, 8, 8, 8], stageDepths: [1, 1, 1, 1, 1] }),
    ).toThrow(/1–4 stages/);
  });
});
