import { InvalidArgumentError } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import { inputSpecFromManifest, validateInputSpec } from './input-spec';

const DEIT = {
  imageSize: 224,
  channels: 3,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  interpolation: 'bicubic',
  cropPct: 0.9,
};

describe('validateInputSpec', () => {
  it('accepts timm’s DeiT cfg and returns a copy', () => {
    const spec = validateInputSpec(DEIT);
    expect(spec).toEqual(DEIT);
    expect(spec.mean).not.toBe(DEIT.mean);
  });

  it('accepts a single-channel spec', () => {
    expect(
      validateInputSpec({ ...DEIT, channels: 1, mean: [0.286], std: [0.353], cropPct: 1 }).channels,
    ).toBe(1);
  });

  it('lists every problem in one InvalidArgumentError', () => {
    let err: unknown;
    try {
      validateInputSpec({
        imageSize: 0,
        channels: 2,
        mean: [0.5],
        std: [0, 1, 1],
        interpolation: 'lanczos',
        cropPct: 1.2,
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const message = (err as Error).message;
    for (const part of [
      'imageSize',
      'channels must be 1 or 3',
      'std entries must be > 0',
      'interpolation must be one of bicubic, bilinear, nearest',
      'cropPct must be a number in (0, 1]',
    ]) {
      expect(message).toContain(part);
    }
  });

  it('requires one mean and std per channel', () => {
    expect(() => validateInputSpec({ ...DEIT, mean: [0.5] })).toThrow(
      /mean must have one entry per channel \(3\), got 1/,
    );
    expect(() => validateInputSpec({ ...DEIT, std: [1, 1, Number.NaN] })).toThrow(
      /std must be an array of finite numbers/,
    );
    expect(() => validateInputSpec(null)).toThrow(InvalidArgumentError);
  });
});

describe('inputSpecFromManifest', () => {
  const manifestInput = {
    name: 'pixel_values',
    image_size: 224,
    channels: 3,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    interpolation: 'bicubic' as const,
    crop_pct: 0.9,
  };

  it('maps the manifest fields to the spec, copying the statistics', () => {
    const spec = inputSpecFromManifest(manifestInput);
    expect(spec).toEqual(DEIT);
    expect(validateInputSpec(spec)).toEqual(spec);
    expect(spec.mean).not.toBe(manifestInput.mean);
  });

  it('keeps single-channel models single-channel and reads other counts as RGB', () => {
    const grey = { ...manifestInput, channels: 1, mean: [0.286], std: [0.353] };
    expect(inputSpecFromManifest(grey).channels).toBe(1);
    expect(inputSpecFromManifest({ ...manifestInput, channels: 4 }).channels).toBe(3);
  });
});
