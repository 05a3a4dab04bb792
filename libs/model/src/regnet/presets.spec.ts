import { describe, expect, it } from 'vitest';
import {
  featureSides,
  REGNET_PRESETS,
  REGNETY_DESIGNS,
  pythonRound,
  regnetBlocks,
  regnetStagesFromDesign,
  validateRegNetConfig,
} from './presets';
import { countParameters, parameterShapes, stateShapes, isNoWeightDecay } from './regnet';

describe('RegNetY presets', () => {
  it.each(Object.entries(REGNETY_DESIGNS))(
    '%s matches timm generate_regnet + adjust_widths_groups_comp',
    (name, design) => {
      const preset = REGNET_PRESETS[name as keyof typeof REGNETY_DESIGNS];
      const derived = regnetStagesFromDesign(design);
      expect(derived.stageWidths).toEqual(preset.stageWidths);
      expect(derived.stageDepths).toEqual(preset.stageDepths);
      expect(derived.groupWidths).toEqual(preset.stageWidths.map(() => preset.groupWidth));
    },
  );

  it('counts trainable parameters like timm (running statistics excluded)', () => {
    expect(countParameters('regnety_002')).toBe(3_162_996);
    expect(countParameters('regnety_016')).toBe(11_202_430);
    expect(countParameters('regnety_160')).toBe(83_590_140);
    const fmnist = countParameters('regnety_fmnist_28');
    expect(fmnist).toBeGreaterThan(300_000);
    expect(fmnist).toBeLessThan(1_500_000);
  });

  it('uses Python rounding (ties to even)', () => {
    expect([0.5, 1.5, 2.5, 2.4, 2.6, 3.5].map(pythonRound)).toEqual([0, 2, 2, 2, 3, 4]);
  });

  it('sizes SE from the block input channels and puts stride 2 and the downsample in each first block', () => {
    const blocks = regnetBlocks(REGNET_PRESETS.regnety_002);
    expect(blocks.map((b) => b.name)).toEqual([
      's1.b1',
      's2.b1',
      's3.b1',
      's3.b2',
      's3.b3',
      's3.b4',
      's4.b1',
      's4.b2',
      's4.b3',
      's4.b4',
      's4.b5',
      's4.b6',
      's4.b7',
    ]);
    expect(blocks[0]).toMatchObject({
      inChs: 32,
      outChs: 24,
      stride: 2,
      groups: 3,
      seChs: 8,
      downsample: true,
    });
    expect(blocks[2]).toMatchObject({ inChs: 56, outChs: 152, seChs: 14, groups: 19 });
    expect(blocks[3]).toMatchObject({ inChs: 152, outChs: 152, stride: 1, seChs: 38, downsample: false });
    const shapes = new Map(stateShapes('regnety_002').map((s) => [s.name, s.shape]));
    expect(shapes.get('s1.b1.se.fc1.weight')).toEqual([8, 24, 1, 1]);
    expect(shapes.get('s1.b1.conv2.conv.weight')).toEqual([24, 8, 3, 3]);
    expect(shapes.get('s4.b2.se.fc2.weight')).toEqual([368, 92, 1, 1]);
    expect(shapes.get('head.fc.weight')).toEqual([1000, 368]);
  });

  it('names every tensor as timm does', () => {
    const names = stateShapes('regnety_002').map((s) => s.name);
    expect(names.slice(0, 5)).toEqual([
      'stem.conv.weight',
      'stem.bn.weight',
      'stem.bn.bias',
      'stem.bn.running_mean',
      'stem.bn.running_var',
    ]);
    for (const name of [
      's1.b1.conv1.conv.weight',
      's1.b1.conv1.bn.running_var',
      's1.b1.conv2.bn.weight',
      's1.b1.se.fc1.weight',
      's1.b1.se.fc1.bias',
      's1.b1.se.fc2.weight',
      's1.b1.se.fc2.bias',
      's1.b1.conv3.conv.weight',
      's1.b1.conv3.bn.bias',
      's1.b1.downsample.conv.weight',
      's1.b1.downsample.bn.running_mean',
      'head.fc.weight',
      'head.fc.bias',
    ]) {
      expect(names).toContain(name);
    }
    expect(names).not.toContain('s3.b2.downsample.conv.weight');
    expect(parameterShapes('regnety_002').some((s) => s.name.includes('running'))).toBe(false);
  });

  it('keeps a spatial extent at the last stage of the small-image preset', () => {
    const fmnist = REGNET_PRESETS.regnety_fmnist_28;
    const sides = featureSides(fmnist);
    expect(sides[sides.length - 1]).toBeGreaterThanOrEqual(2);
    expect(featureSides(fmnist, 32)[sides.length - 1]).toBeGreaterThanOrEqual(2);
    expect(featureSides(REGNET_PRESETS.regnety_160)).toEqual([112, 56, 28, 14, 7]);
  });

  it('excludes BatchNorm and biases from weight decay', () => {
    expect(isNoWeightDecay('s1.b1.conv1.bn.weight')).toBe(true);
    expect(isNoWeightDecay('s1.b1.se.fc1.bias')).toBe(true);
    expect(isNoWeightDecay('head.fc.bias')).toBe(true);
    expect(isNoWeightDecay('s1.b1.conv1.conv.weight')).toBe(false);
    expect(isNoWeightDecay('s1.b1.se.fc1.weight')).toBe(false);
    expect(isNoWeightDecay('head.fc.weight')).toBe(false);
  });

  it('lists every config problem in one error', () => {
    expect(() =>
      validateRegNetConfig({ ...REGNET_PRESETS.regnety_002, stageWidths: [24, 60], stemWidth: 0 }),
    ).toThrow(/stemWidth.*differ in length.*stage 2 width 60/);
  });
});
