import { describe, expect, it } from 'vitest';
import { deriveSeed, Rng } from './rng';

const draws = (rng: Rng, n: number): number[] => Array.from({ length: n }, () => rng.uint32());

describe('Rng', () => {
  // Values produced by the generators this one replaced (libs/datasets' Rng and libs/model's
  // SeededRandom): changing any of them changes every seeded split, augmentation and initial weight.
  it('pins the first values of a safe-integer seed and of derived streams', () => {
    expect(draws(new Rng(42), 4)).toEqual([2753723502, 4119727487, 3683126503, 3420859988]);
    expect(draws(new Rng(2 ** 53 - 1), 2)).toEqual([2502917378, 361317537]);
    const derived = Rng.derive(42, 3, 2, 17);
    expect(derived.uint32()).toBe(187588229);
    expect(derived.float()).toBe(0.1117977086558899);
    expect(Rng.derive(42).uint32()).toBe(3821183610);
    expect(Rng.derive(42, 2 ** 40).uint32()).toBe(2090638842);
    const normals = new Rng(42);
    draws(normals, 60);
    const expected = [1.4737588695314956, -0.25613740259074147, 2.2885222449786107];
    for (const value of expected) expect(normals.normal()).toBeCloseTo(value, 12);
  });

  it('pins the first values of a 32-bit word seed (weight init) and of deriveSeed', () => {
    expect(draws(Rng.fromUint32(42), 4)).toEqual([2837322924, 544945897, 479756282, 3500138142]);
    const rng = Rng.fromUint32(42);
    draws(rng, 20);
    expect([rng.float(), rng.float()]).toEqual([0.15794549143200243, 0.2582335184477217]);
    draws(rng, 36);
    const expected = [-0.10005603758811894, -0.49078252075433815, 0.9616245411052722];
    for (const value of expected) expect(rng.normal()).toBeCloseTo(value, 12);
    expect(deriveSeed(0, '')).toBe(3301261163);
    expect(deriveSeed(0, 'blocks.0.attn.qkv.weight')).toBe(3959766273);
    expect(deriveSeed(42, 'résumé/3/4')).toBe(4280198654);
    // The word is taken modulo 2^32, so a seed from deriveSeed or a plain integer both work.
    expect(draws(Rng.fromUint32(2 ** 32 + 42), 4)).toEqual(draws(Rng.fromUint32(42), 4));
  });

  it('keeps the two seedings apart: a word seed is not a safe-integer seed', () => {
    expect(draws(Rng.fromUint32(42), 4)).not.toEqual(draws(new Rng(42), 4));
  });

  it('truncates normals to absolute bounds and refuses an empty interval', () => {
    const rng = Rng.fromUint32(7);
    for (let i = 0; i < 2000; i++) {
      const v = rng.truncNormal(0, 3, -0.5, 0.5);
      expect(v).toBeGreaterThanOrEqual(-0.5);
      expect(v).toBeLessThanOrEqual(0.5);
    }
    expect(() => rng.truncNormal(0, 1, 1, 1)).toThrow(RangeError);
  });

  it('replays the same sequence for the same seed and differs across seeds', () => {
    expect(draws(new Rng(42), 8)).toEqual(draws(new Rng(42), 8));
    expect(draws(new Rng(42), 8)).not.toEqual(draws(new Rng(43), 8));
    // Seeds above 2^32 are not truncated to their low word.
    expect(draws(new Rng(2 ** 32 + 1), 4)).not.toEqual(draws(new Rng(1), 4));
  });

  it('derives independent streams from tuples, order-sensitively', () => {
    expect(draws(Rng.derive(1, 2, 3), 4)).toEqual(draws(Rng.derive(1, 2, 3), 4));
    expect(draws(Rng.derive(1, 2, 3), 4)).not.toEqual(draws(Rng.derive(1, 3, 2), 4));
    expect(draws(Rng.derive(1, 2), 4)).not.toEqual(draws(Rng.derive(1, 2, 0), 4));
  });

  it('refuses negative or fractional seeds', () => {
    expect(() => new Rng(-1)).toThrow(RangeError);
    expect(() => Rng.derive(1, 0.5)).toThrow(RangeError);
  });

  it('draws integers in [low, high) covering every value', () => {
    const rng = new Rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = rng.int(-3, 4);
      expect(v).toBeGreaterThanOrEqual(-3);
      expect(v).toBeLessThan(4);
      seen.add(v);
    }
    expect(seen.size).toBe(7);
    expect(() => rng.int(2, 2)).toThrow(RangeError);
  });

  it('has the right moments for uniform, normal and beta draws', () => {
    const rng = new Rng(1);
    const n = 20000;
    const mean = (f: () => number): [number, number] => {
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        const v = f();
        s += v;
        s2 += v * v;
      }
      return [s / n, s2 / n - (s / n) ** 2];
    };
    const [um, uv] = mean(() => rng.float());
    expect(um).toBeCloseTo(0.5, 1);
    expect(uv).toBeCloseTo(1 / 12, 2);
    const [nm, nv] = mean(() => rng.normal());
    expect(Math.abs(nm)).toBeLessThan(0.03);
    expect(nv).toBeCloseTo(1, 1);
    // Beta(a, a): mean 1/2, variance 1 / (4(2a + 1)); 0.8 is DeiT's mixup alpha (shape < 1 path).
    for (const a of [0.8, 1, 3]) {
      const [bm, bv] = mean(() => rng.beta(a, a));
      expect(bm).toBeCloseTo(0.5, 1);
      expect(bv).toBeCloseTo(1 / (4 * (2 * a + 1)), 2);
    }
  });

  it('shuffles into a permutation, deterministically', () => {
    const a = new Rng(5).shuffle(Int32Array.from({ length: 50 }, (_, i) => i));
    const b = new Rng(5).shuffle(Int32Array.from({ length: 50 }, (_, i) => i));
    expect(a).toEqual(b);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect([...a]).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
