/**
 * Small deterministic random source for weight initialisation and stochastic depth. The same seed
 * gives the same numbers on every platform (integer arithmetic only up to the final conversion).
 * Not cryptographic.
 */

/** 32-bit mixing step of SplitMix32-style hashing (Murmur3 finaliser constants). */
function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Derives an independent 32-bit seed from a base seed and a label (e.g. a weight name). */
export function deriveSeed(seed: number, label: string): number {
  // FNV-1a over the UTF-16 code units of the label, then mixed with the seed.
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  }
  return mix32(h ^ mix32((seed >>> 0) + 0x9e3779b9));
}

/** xoshiro128** generator seeded through SplitMix32. */
export class SeededRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | undefined;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      return mix32(x);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  uniform(low: number, high: number): number {
    return low + (high - low) * this.nextFloat();
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const value = this.spareNormal;
      this.spareNormal = undefined;
      return value;
    }
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * Normal(mean, std) truncated to [low, high] by rejection, like timm's `trunc_normal_` whose bounds
   * are absolute values (default ±2), not multiples of std.
   */
  truncNormal(mean: number, std: number, low = -2, high = 2): number {
    if (!(low < high)) throw new Error(`truncNormal: empty interval [${low}, ${high}]`);
    for (let attempt = 0; attempt < 1000; attempt++) {
      const value = mean + std * this.normal();
      if (value >= low && value <= high) return value;
    }
    // Only reachable when the interval lies far in a tail; fall back to a uniform draw inside it.
    return this.uniform(low, high);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
