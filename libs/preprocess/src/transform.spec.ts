import { InvalidArgumentError } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import type { InputSpec } from './input-spec';
import {
  evalGeometry,
  normalizationTable,
  preprocess,
  tensorFromImageBatch,
  type RgbImage,
} from './transform';

const DEIT: InputSpec = {
  imageSize: 224,
  channels: 3,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  interpolation: 'bicubic',
  cropPct: 0.9,
};

function solid(width: number, height: number, colour: [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(colour, i * 3);
  return { data, width, height };
}

function noise(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, width, height };
}

/** torch's float32 chain for one byte: ((v / 255) − mean) / std, each step rounded to float32. */
function torchNormalise(v: number, mean: number, std: number): number {
  const f = Math.fround;
  return f(f(f(v / 255) - f(mean)) / f(std));
}

describe('evalGeometry (torchvision Resize(int) + CenterCrop)', () => {
  it('resizes the shorter side to floor(S / crop_pct) and truncates the longer', () => {
    // 248 × 640/480 = 330.67 → 330; crop offsets (330−224)/2 = 53, (248−224)/2 = 12.
    expect(evalGeometry(640, 480, DEIT)).toEqual({
      resizeWidth: 330,
      resizeHeight: 248,
      cropLeft: 53,
      cropTop: 12,
      size: 224,
    });
    expect(evalGeometry(375, 500, DEIT)).toEqual({
      resizeWidth: 248,
      resizeHeight: 330,
      cropLeft: 12,
      cropTop: 53,
      size: 224,
    });
    expect(evalGeometry(300, 300, { imageSize: 224, cropPct: 0.875 })).toMatchObject({
      resizeWidth: 256,
      resizeHeight: 256,
    });
    expect(evalGeometry(1000, 90, DEIT)).toMatchObject({ resizeWidth: 2755, resizeHeight: 248 });
  });

  it('rounds crop offsets half to even, like Python round()', () => {
    const s = { imageSize: 224, cropPct: 1 };
    expect(evalGeometry(225, 224, s).cropLeft).toBe(0); // 0.5 → 0
    expect(evalGeometry(227, 224, s).cropLeft).toBe(2); // 1.5 → 2
    expect(evalGeometry(229, 224, s).cropLeft).toBe(2); // 2.5 → 2
    expect(evalGeometry(231, 224, s).cropLeft).toBe(4); // 3.5 → 4
  });
});

describe('normalizationTable', () => {
  it('equals torch’s float32 ToTensor + Normalize for every byte', () => {
    const table = normalizationTable(DEIT);
    for (let c = 0; c < 3; c++) {
      for (let v = 0; v < 256; v++) {
        expect(table[c * 256 + v]).toBe(torchNormalise(v, DEIT.mean[c], DEIT.std[c]));
        expect(table[c * 256 + v]).toBeCloseTo((v / 255 - DEIT.mean[c]) / DEIT.std[c], 5);
      }
    }
  });
});

describe('preprocess', () => {
  it('gives [3, S, S] with exactly (c/255 − mean)/std for a constant-colour image', () => {
    const colour: [number, number, number] = [200, 100, 30];
    for (const interpolation of ['bicubic', 'bilinear', 'nearest'] as const) {
      const out = preprocess(solid(300, 200, colour), { ...DEIT, interpolation });
      expect(out).toBeInstanceOf(Float32Array);
      expect(out.length).toBe(3 * 224 * 224);
      for (let c = 0; c < 3; c++) {
        const expected = torchNormalise(colour[c], DEIT.mean[c], DEIT.std[c]);
        const plane = out.subarray(c * 224 * 224, (c + 1) * 224 * 224);
        expect(plane.every((v) => v === expected)).toBe(true);
      }
    }
    // Hand-checked: (200/255 − 0.485)/0.229 = 1.30703…
    expect(preprocess(solid(300, 200, colour), DEIT)[0]).toBeCloseTo(1.30703, 4);
  });

  it('lays channels out planar (CHW) in RGB order', () => {
    // 2×2 at S = 2, crop_pct 1: no resize, so pixels map 1:1.
    const image: RgbImage = {
      data: new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]),
      width: 2,
      height: 2,
    };
    const spec: InputSpec = {
      imageSize: 2,
      channels: 3,
      mean: [0, 0, 0],
      std: [1, 1, 1],
      interpolation: 'bicubic',
      cropPct: 1,
    };
    const f = Math.fround;
    expect(Array.from(preprocess(image, spec))).toEqual(
      [255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 255, 30].map((v) => f(v / 255)),
    );
  });

  it('takes the centre crop unchanged when no resize is needed (fast path)', () => {
    // Shorter side 224 = floor(224 / 1): no resampling, only the crop (offset round(6/2) = 3).
    const image = noise(230, 224, 7);
    const spec: InputSpec = { ...DEIT, cropPct: 1 };
    const out = preprocess(image, spec);
    const table = normalizationTable(spec);
    for (const [x, y] of [
      [0, 0],
      [223, 223],
      [100, 17],
    ]) {
      for (let c = 0; c < 3; c++) {
        const byte = image.data[(y * 230 + x + 3) * 3 + c];
        expect(out[c * 224 * 224 + y * 224 + x]).toBe(table[c * 256 + byte]);
      }
    }
  });

  it('still resizes an S×S image when crop_pct < 1, as timm does', () => {
    const image = noise(224, 224, 3);
    const direct = preprocess(image, { ...DEIT, cropPct: 1 });
    const timm = preprocess(image, DEIT);
    expect(timm).not.toEqual(direct);
  });

  it('gives one channel of PIL luma for single-channel models', () => {
    const spec: InputSpec = { ...DEIT, channels: 1, mean: [0.5], std: [0.5] };
    const out = preprocess(solid(50, 40, [200, 100, 30]), spec);
    expect(out.length).toBe(224 * 224);
    // PIL convert('L'): (200·19595 + 100·38470 + 30·7471 + 32768) >> 16 = 122 (checked with Pillow)
    expect(out[0]).toBe(torchNormalise(122, 0.5, 0.5));
  });

  it('batches into NCHW with the dims an ONNX tensor needs', () => {
    const spec: InputSpec = { ...DEIT, imageSize: 32 };
    const images = [noise(40, 50, 1), noise(64, 33, 2), solid(32, 32, [1, 2, 3])];
    const batch = tensorFromImageBatch(images, spec);
    expect(batch.dims).toEqual([3, 3, 32, 32]);
    images.forEach((image, i) => {
      expect(batch.data.subarray(i * 3 * 32 * 32, (i + 1) * 3 * 32 * 32)).toEqual(preprocess(image, spec));
    });
  });

  it('refuses pixel buffers that do not match their size, and invalid specs', () => {
    expect(() => preprocess({ data: new Uint8Array(10), width: 2, height: 2 }, DEIT)).toThrow(
      InvalidArgumentError,
    );
    expect(() => preprocess({ data: new Uint8Array(0), width: 0, height: 0 }, DEIT)).toThrow(/positive/);
    expect(() => preprocess(solid(4, 4, [0, 0, 0]), { ...DEIT, std: [0.2, 0, 0.2] })).toThrow(
      /std entries must be > 0/,
    );
  });
});
