import { describe, expect, it } from 'vitest';
import { countParameters, parameterShapes } from './deit';
import { DEFAULT_STUDENT_PRESET, DEIT_PRESET_NAMES, DEIT_PRESETS, validateDeitConfig } from './presets';

describe('DeiT presets', () => {
  it.each([
    ['deit_tiny_distilled_patch16_224', 5_910_800],
    ['deit_small_distilled_patch16_224', 22_436_432],
    ['deit_base_distilled_patch16_224', 87_338_192],
    // timm's non-distilled counts
    ['deit_tiny_patch16_224', 5_717_416],
    ['deit_small_patch16_224', 22_050_664],
    ['deit_base_patch16_224', 86_567_656],
  ] as const)('%s has %i parameters', (name, count) => {
    expect(countParameters(DEIT_PRESETS[name])).toBe(count);
  });

  it('keeps every preset consistent with its name', () => {
    for (const name of DEIT_PRESET_NAMES) {
      const p = DEIT_PRESETS[name];
      expect(p.name).toBe(name);
      validateDeitConfig(p);
      const match = /^deit_(\w+?)(_distilled)?_patch(\d+)_(\d+)$/.exec(name);
      expect(match, name).not.toBeNull();
      expect(p.distilled).toBe(match?.[2] !== undefined);
      expect(p.patchSize).toBe(Number(match?.[3]));
      expect(p.imgSize).toBe(Number(match?.[4]));
      expect(p.mlpRatio).toBe(4);
      expect(p.inChans).toBe(3);
    }
  });

  it('has small-image presets for CPU training', () => {
    const tiny32 = DEIT_PRESETS.deit_tiny_distilled_patch4_32;
    expect([tiny32.embedDim, tiny32.depth, tiny32.numHeads, tiny32.imgSize, tiny32.patchSize]).toEqual([
      192, 12, 3, 32, 4,
    ]);
    expect(DEFAULT_STUDENT_PRESET).toBe('deit_pico_distilled_patch4_28');
    const pico = DEIT_PRESETS[DEFAULT_STUDENT_PRESET];
    expect(pico.imgSize).toBe(28);
    expect(pico.numClasses).toBe(10);
    expect(countParameters(pico)).toBeLessThan(1_000_000);
  });

  it('lists timm names with PyTorch shapes', () => {
    const shapes = new Map(
      parameterShapes(DEIT_PRESETS.deit_tiny_distilled_patch16_224).map((s) => [s.name, s.shape]),
    );
    expect(shapes.get('cls_token')).toEqual([1, 1, 192]);
    expect(shapes.get('dist_token')).toEqual([1, 1, 192]);
    expect(shapes.get('pos_embed')).toEqual([1, 198, 192]);
    expect(shapes.get('patch_embed.proj.weight')).toEqual([192, 3, 16, 16]);
    expect(shapes.get('blocks.11.attn.qkv.weight')).toEqual([576, 192]);
    expect(shapes.get('blocks.11.attn.proj.bias')).toEqual([192]);
    expect(shapes.get('blocks.0.mlp.fc1.weight')).toEqual([768, 192]);
    expect(shapes.get('blocks.0.mlp.fc2.weight')).toEqual([192, 768]);
    expect(shapes.get('norm.weight')).toEqual([192]);
    expect(shapes.get('head.weight')).toEqual([1000, 192]);
    expect(shapes.get('head_dist.bias')).toEqual([1000]);
    expect(shapes.size).toBe(7 + 12 * 12 + 4);
  });

  it('reports every problem of an invalid config at once', () => {
    expect(() =>
      validateDeitConfig({ ...DEIT_PRESETS.deit_tiny_patch16_224, imgSize: 30, numHeads: 5 }),
    ).toThrow(/imgSize 30 is not a multiple of patchSize 16.*embedDim 192 is not divisible by numHeads 5/);
  });
});
