import { InvalidArgumentError, Rng } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import {
  augmentImage,
  cutmixBox,
  fullBox,
  mixBatch,
  mixTargets,
  paddedCropBox,
  randomErasing,
  randomResizedCropBox,
  resizedCrop,
  resolveAugment,
  type ByteImage,
} from './augment';

/** Pixel (x, y, c) = (x + 7y + 50c) mod 256: every pixel differs, so moves are visible. */
function ramp(width: number, height: number, channels: 1 | 3): ByteImage {
  const pixels = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) pixels[(y * width + x) * channels + c] = (x + 7 * y + 50 * c) % 256;
    }
  }
  return { pixels, width, height, channels };
}

const at = (img: ByteImage, x: number, y: number, c = 0): number =>
  img.pixels[(y * img.width + x) * img.channels + c];

describe('resolveAugment', () => {
  it('fills in timm defaults and turns everything off by default', () => {
    expect(resolveAugment()).toEqual({
      crop: { kind: 'none' },
      hflip: 0,
      randomErasing: undefined,
      mixup: undefined,
      labelSmoothing: 0,
    });
    const r = resolveAugment({
      crop: { kind: 'random-resized' },
      randomErasing: { probability: 0.25 },
      mixup: { mixupAlpha: 0.8, cutmixAlpha: 1 },
    });
    expect(r.crop).toEqual({ kind: 'random-resized', scale: [0.08, 1], ratio: [3 / 4, 4 / 3] });
    expect(r.randomErasing).toEqual({
      probability: 0.25,
      minArea: 0.02,
      maxArea: 1 / 3,
      minAspect: 0.3,
      maxAspect: 1 / 0.3,
      count: 1,
    });
    expect(r.mixup).toEqual({ mixupAlpha: 0.8, cutmixAlpha: 1, prob: 1, switchProb: 0.5, correctLam: true });
  });

  it('lists every bad field in one error', () => {
    let error: unknown;
    try {
      resolveAugment({
        crop: { kind: 'padded', padding: -1 },
        hflip: 2,
        mixup: {},
        labelSmoothing: 1,
        randomErasing: { probability: 0.5, minArea: 0.5, maxArea: 0.1 },
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const message = (error as Error).message;
    for (const field of ['crop.padding', 'hflip', 'mixup needs', 'labelSmoothing', 'randomErasing area']) {
      expect(message).toContain(field);
    }
  });
});

describe('crop boxes', () => {
  it('random-resized boxes lie inside the image with area and aspect in range (up to rounding)', () => {
    const rng = new Rng(3);
    for (let i = 0; i < 500; i++) {
      const box = randomResizedCropBox(rng, 40, 30);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.top).toBeGreaterThanOrEqual(0);
      expect(box.left + box.width).toBeLessThanOrEqual(40);
      expect(box.top + box.height).toBeLessThanOrEqual(30);
      const area = box.width * box.height;
      expect(area).toBeGreaterThanOrEqual(Math.floor((Math.sqrt(0.08 * 1200) - 1) ** 2));
      const aspect = box.width / box.height;
      // w and h are each rounded, so the aspect can leave [3/4, 4/3] by a rounding step.
      expect(aspect).toBeGreaterThan((3 / 4) * 0.8);
      expect(aspect).toBeLessThan((4 / 3) * 1.25);
    }
  });

  it('falls back to the central crop clamped to the ratio when no try fits', () => {
    // scale (1, 1) on a 100×10 image: every try wants more height than there is.
    const box = randomResizedCropBox(new Rng(1), 100, 10, [1, 1], [3 / 4, 4 / 3]);
    expect(box).toEqual({ left: 43, top: 0, width: 13, height: 10 });
  });

  it('padded crop offsets stay within ±padding', () => {
    const rng = new Rng(9);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const box = paddedCropBox(rng, 28, 28, 4);
      expect(box.width).toBe(28);
      expect(Math.abs(box.left)).toBeLessThanOrEqual(4);
      expect(Math.abs(box.top)).toBeLessThanOrEqual(4);
      seen.add(box.left);
    }
    expect(seen.size).toBe(9);
  });
});

describe('resizedCrop', () => {
  it('copies an S×S box exactly and mirrors it exactly', () => {
    const img = ramp(10, 8, 3);
    const box = { left: 2, top: 1, width: 6, height: 6 };
    const out = resizedCrop(img, box, 6);
    const flipped = resizedCrop(img, box, 6, true);
    for (let y = 0; y < 6; y++) {
      for (let x = 0; x < 6; x++) {
        for (let c = 0; c < 3; c++) {
          expect(out[(y * 6 + x) * 3 + c]).toBe(at(img, x + 2, y + 1, c));
          expect(flipped[(y * 6 + x) * 3 + c]).toBe(at(img, 2 + 5 - x, y + 1, c));
        }
      }
    }
  });

  it('reads zeros outside the image (padded crop)', () => {
    const img = ramp(5, 5, 1);
    const out = resizedCrop(img, { left: -2, top: 1, width: 5, height: 5 }, 5);
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 5; x++) {
        const sx = x - 2;
        const sy = y + 1;
        expect(out[y * 5 + x]).toBe(sx < 0 || sy >= 5 ? 0 : at(img, sx, sy));
      }
    }
  });

  it('keeps a constant image constant when resampling up and down', () => {
    const img: ByteImage = {
      pixels: new Uint8Array(30 * 20 * 3).fill(173),
      width: 30,
      height: 20,
      channels: 3,
    };
    for (const size of [7, 20, 64]) {
      expect(new Set(resizedCrop(img, fullBox(img), size))).toEqual(new Set([173]));
      expect(new Set(resizedCrop(img, { left: 3, top: 2, width: 11, height: 13 }, size))).toEqual(
        new Set([173]),
      );
    }
  });

  it('matches PIL bilinear on a 2× downscale (average of 4 pixels with the widened triangle)', () => {
    // A 4×1 row [0, 100, 200, 40] → 2 pixels. PIL's antialiased triangle at scale 2 weighs
    // neighbours 1/8, 3/8, 3/8, 1/8 (clipped at the border and renormalised).
    const img: ByteImage = { pixels: Uint8Array.from([0, 100, 200, 40]), width: 4, height: 1, channels: 1 };
    const out = resizedCrop(img, fullBox(img), 2);
    // Left: taps 0, 1, 2 with weights 3/8, 3/8, 1/8 over 7/8 → (0·3 + 100·3 + 200) / 7 = 71.4 → 71.
    // Right: taps 1, 2, 3 with 1/8, 3/8, 3/8 → (100 + 600 + 120) / 7 = 117.1 → 117.
    expect([...out.subarray(0, 2)]).toEqual([71, 117]);
  });

  it('augmentImage is deterministic for a seed and flips with hflip 1', () => {
    const img = ramp(28, 28, 1);
    const options = resolveAugment({ crop: { kind: 'random-resized' }, hflip: 0.5 });
    const a = augmentImage(img, 16, options, new Rng(5));
    expect(augmentImage(img, 16, options, new Rng(5))).toEqual(a);
    expect(augmentImage(img, 16, options, new Rng(6))).not.toEqual(a);
    const plain = augmentImage(img, 28, resolveAugment(), new Rng(1));
    expect(plain).toEqual(img.pixels);
    const mirrored = augmentImage(img, 28, resolveAugment({ hflip: 1 }), new Rng(1));
    expect(mirrored[3]).toBe(at(img, 24, 0));
  });
});

describe('randomErasing', () => {
  const options = resolveAugment({ randomErasing: { probability: 1 } }).randomErasing!;

  it('erases one rectangle of 2%–33% of the area with N(0, 1) noise, leaving the rest', () => {
    const rng = new Rng(11);
    const [h, w] = [60, 50];
    for (let trial = 0; trial < 50; trial++) {
      const data = new Float32Array(3 * h * w).fill(5);
      const rects = randomErasing(rng, data, 0, 3, h, w, options);
      expect(rects).toHaveLength(1);
      const r = rects[0];
      expect(r.top + r.height).toBeLessThanOrEqual(h);
      expect(r.left + r.width).toBeLessThanOrEqual(w);
      const fraction = (r.height * r.width) / (h * w);
      expect(fraction).toBeGreaterThanOrEqual(0.02 * 0.8);
      expect(fraction).toBeLessThanOrEqual((1 / 3) * 1.1);
      const aspect = r.height / r.width;
      expect(aspect).toBeGreaterThan(0.3 * 0.8);
      expect(aspect).toBeLessThan((1 / 0.3) * 1.25);
      let wrong = 0;
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const v = data[c * h * w + y * w + x];
            const inside = y >= r.top && y < r.top + r.height && x >= r.left && x < r.left + r.width;
            // Inside: N(0, 1) noise, never the fill value; outside: untouched.
            if (inside ? Math.abs(v) >= 6 : v !== 5) wrong++;
          }
        }
      }
      expect(wrong).toBe(0);
    }
  });

  it('never erases with probability 0, and erases in place at an offset', () => {
    const never = { ...options, probability: 0 };
    const data = new Float32Array(2 * 3 * 8 * 8).fill(1);
    expect(randomErasing(new Rng(1), data, 0, 3, 8, 8, never)).toEqual([]);
    expect(new Set(data)).toEqual(new Set([1]));
    randomErasing(new Rng(1), data, 3 * 64, 3, 8, 8, options);
    expect(new Set(data.subarray(0, 3 * 64))).toEqual(new Set([1]));
    expect(new Set(data.subarray(3 * 64)).size).toBeGreaterThan(1);
  });
});

describe('mixup and cutmix', () => {
  const dims = [4, 3, 6, 6] as const;
  const imageLength = 3 * 36;
  const batch = (): Float32Array =>
    Float32Array.from({ length: 4 * imageLength }, (_, i) => Math.floor(i / imageLength) + 1);
  const labels = [0, 2, 1, 2];

  it('mixes image i with image B−1−i by λ and gives targets λ·y1 + (1−λ)·y2 that sum to 1', () => {
    const mixup = resolveAugment({ mixup: { mixupAlpha: 0.8 } }).mixup!;
    const pixels = batch();
    const result = mixBatch(new Rng(2), pixels, dims, mixup);
    expect(result.kind).toBe('mixup');
    const lam = result.lambda;
    expect(lam).toBeGreaterThan(0);
    expect(lam).toBeLessThan(1);
    for (let i = 0; i < 4; i++) {
      const expected = lam * (i + 1) + (1 - lam) * (4 - i);
      expect(pixels[i * imageLength + 17]).toBeCloseTo(expected, 5);
    }
    const smoothing = 0.1;
    const targets = mixTargets(labels, 3, lam, smoothing);
    const off = smoothing / 3;
    const on = 1 - smoothing + off;
    for (let i = 0; i < 4; i++) {
      let sum = 0;
      for (let c = 0; c < 3; c++) {
        const y1 = c === labels[i] ? on : off;
        const y2 = c === labels[3 - i] ? on : off;
        expect(targets[i * 3 + c]).toBeCloseTo(lam * y1 + (1 - lam) * y2, 6);
        sum += targets[i * 3 + c];
      }
      expect(sum).toBeCloseTo(1, 6);
    }
  });

  it('cutmix swaps one box between partners and corrects λ to the box area', () => {
    const cutmix = resolveAugment({ mixup: { cutmixAlpha: 1 } }).mixup!;
    for (let seed = 0; seed < 20; seed++) {
      const pixels = batch();
      const result = mixBatch(new Rng(seed), pixels, dims, cutmix);
      if (result.kind === 'none') continue;
      expect(result.kind).toBe('cutmix');
      const box = result.box!;
      expect(result.lambda).toBeCloseTo(1 - (box.height * box.width) / 36, 12);
      for (let i = 0; i < 4; i++) {
        for (let y = 0; y < 6; y++) {
          for (let x = 0; x < 6; x++) {
            const inside =
              y >= box.top && y < box.top + box.height && x >= box.left && x < box.left + box.width;
            expect(pixels[i * imageLength + 2 * 36 + y * 6 + x]).toBe(inside ? 4 - i : i + 1);
          }
        }
      }
    }
  });

  it('cutmix boxes stay inside the image', () => {
    const rng = new Rng(4);
    for (let i = 0; i < 200; i++) {
      const { box, lambda } = cutmixBox(rng, 10, 7, rng.float());
      expect(box.top).toBeGreaterThanOrEqual(0);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.top + box.height).toBeLessThanOrEqual(10);
      expect(box.left + box.width).toBeLessThanOrEqual(7);
      expect(lambda).toBeGreaterThanOrEqual(0);
      expect(lambda).toBeLessThanOrEqual(1);
    }
  });

  it('switches between mixup and cutmix when both are on, deterministically per seed', () => {
    const both = resolveAugment({ mixup: { mixupAlpha: 0.8, cutmixAlpha: 1 } }).mixup!;
    const kinds = new Set<string>();
    for (let seed = 0; seed < 40; seed++) kinds.add(mixBatch(new Rng(seed), batch(), dims, both).kind);
    expect(kinds).toEqual(new Set(['mixup', 'cutmix']));
    const a = batch();
    const b = batch();
    expect(mixBatch(new Rng(9), a, dims, both)).toEqual(mixBatch(new Rng(9), b, dims, both));
    expect(a).toEqual(b);
  });

  it('leaves the batch alone with prob 0; targets are then plain (smoothed) one-hot', () => {
    const never = { ...resolveAugment({ mixup: { mixupAlpha: 1 } }).mixup!, prob: 0 };
    const pixels = batch();
    expect(mixBatch(new Rng(1), pixels, dims, never)).toEqual({ kind: 'none', lambda: 1 });
    expect(pixels).toEqual(batch());
    expect([...mixTargets([1, 0], 2)]).toEqual([0, 1, 1, 0]);
    expect([...mixTargets([1], 4, 1, 0.2)]).toEqual([0.05, 0.85, 0.05, 0.05].map(Math.fround));
  });
});
