import { describe, expect, it } from 'vitest';
import { Rng } from './rng';

const draws = (rng: Rng, n: number): number[] => Array.from({ length: n }, () => rng.uint32());

describe('Rng', () => {
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
