import { describe, expect, it } from 'vitest';
import { cropRaster, resizeWindow, verticalPassFirst, type Raster } from './resample';

function noise(width: number, height: number, channels: number, seed: number): Raster {
  const data = new Uint8Array(width * height * channels);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, width, height, channels };
}

const full = (w: number, h: number) => ({ left: 0, top: 0, width: w, height: h });

describe('resizeWindow (Pillow Resample.c port)', () => {
  it('reproduces a hand-computed antialiased bilinear downscale', () => {
    // 4 → 2: scale 2, triangle widened to support 2. Output 0 is centred on 1.0 and sees inputs
    // 0, 1, 2 at distances 0.5, 0.5, 1.5 → weights 0.75, 0.75, 0.25 (÷1.75 = 3/7, 3/7, 1/7):
    // 0·3/7 + 70·3/7 + 140·1/7 = 50. Output 1 symmetric: 70·1/7 + 140·3/7 + 210·3/7 = 160.
    const src: Raster = { data: new Uint8Array([0, 70, 140, 210]), width: 4, height: 1, channels: 1 };
    expect(Array.from(resizeWindow(src, 2, 1, 'bilinear', full(2, 1)))).toEqual([50, 160]);
  });

  it('reproduces a hand-computed bicubic upscale (a = −0.5)', () => {
    // 2 → 4, no widening at upscale. Output 1 is centred on 0.75 and sees inputs 0 and 1 at
    // distances 0.25 and 0.75: Keys' k(0.25) = 0.8671875, k(0.75) = 0.2265625, sum 1.09375, so
    // 255 · 0.2265625 / 1.09375 = 52.8 → 53 (Pillow rounds in 22-bit fixed point; same here).
    // Output 0 (centre 0.25) gets k(1.25) = −0.0703125 for the 255 → negative → clipped to 0.
    const src: Raster = { data: new Uint8Array([0, 255]), width: 2, height: 1, channels: 1 };
    expect(Array.from(resizeWindow(src, 4, 1, 'bicubic', full(4, 1)))).toEqual([0, 53, 202, 255]);
  });

  it('gives the same pixels through a window as a full resize followed by a crop', () => {
    for (const channels of [1, 3]) {
      const src = noise(53, 41, channels, channels);
      for (const interpolation of ['bicubic', 'bilinear', 'nearest'] as const) {
        for (const [w, h] of [
          [31, 24],
          [80, 61],
          [53, 30],
          [20, 41],
        ]) {
          const whole = resizeWindow(src, w, h, interpolation, full(w, h));
          const win = {
            left: Math.floor(w / 4),
            top: Math.floor(h / 3),
            width: Math.ceil(w / 2),
            height: Math.ceil(h / 2),
          };
          const expected = cropRaster({ data: whole, width: w, height: h, channels }, win);
          expect(
            resizeWindow(src, w, h, interpolation, win),
            `${interpolation} ${w}×${h}×${channels}`,
          ).toEqual(expected);
        }
      }
    }
  });

  it('gives the same pixels through a window when the vertical pass runs first', () => {
    for (const channels of [1, 3]) {
      const src = noise(30, 120, channels, 10 + channels);
      for (const interpolation of ['bicubic', 'bilinear'] as const) {
        for (const [w, h] of [
          [20, 40], // vertical first
          [45, 60], // vertical first, width upscaled
          [12, 100], // horizontal first
        ]) {
          const whole = resizeWindow(src, w, h, interpolation, full(w, h));
          const win = { left: 3, top: Math.floor(h / 5), width: w - 5, height: Math.ceil(h / 3) };
          const expected = cropRaster({ data: whole, width: w, height: h, channels }, win);
          expect(
            resizeWindow(src, w, h, interpolation, win),
            `${interpolation} ${w}×${h}×${channels}`,
          ).toEqual(expected);
        }
      }
    }
  });

  it('orders the passes as Pillow 13: vertical first when the height shrinks by > 2× the width’s shrink', () => {
    expect(verticalPassFirst(100, 400, 32, 128)).toBe(true);
    expect(verticalPassFirst(100, 400, 50, 299)).toBe(true);
    expect(verticalPassFirst(100, 400, 150, 300)).toBe(true); // width grows
    expect(verticalPassFirst(100, 400, 50, 300)).toBe(false); // exactly twice: horizontal first
    expect(verticalPassFirst(400, 100, 128, 32)).toBe(false);
    expect(verticalPassFirst(375, 500, 256, 341)).toBe(false);
    expect(verticalPassFirst(80, 60, 200, 150)).toBe(false); // upscale
    expect(verticalPassFirst(100, 400, 50, 400)).toBe(false); // height kept
  });

  it('is the identity at the same size', () => {
    const src = noise(9, 7, 3, 5);
    expect(resizeWindow(src, 9, 7, 'bicubic', full(9, 7))).toEqual(src.data);
  });

  it('picks nearest pixels at Pillow’s positions, trunc((i + 0.5) · in/out)', () => {
    const src: Raster = {
      data: Uint8Array.from({ length: 17 }, (_, i) => i),
      width: 17,
      height: 1,
      channels: 1,
    };
    expect(Array.from(resizeWindow(src, 7, 1, 'nearest', full(7, 1)))).toEqual([1, 3, 6, 8, 10, 13, 15]);
  });
});
