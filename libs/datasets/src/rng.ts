/**
 * The one source of randomness for splits, shuffles and augmentations: xoshiro128** seeded through
 * splitmix32. Every draw in this library comes from an `Rng`, never from `Math.random`, so a job
 * replays bit for bit from its seed.
 *
 * Streams are derived, not advanced: `Rng.derive(seed, epoch, stream, batch)` hashes its words into
 * a fresh state. A batch's augmentations therefore depend only on (seed, epoch, batch index), not
 * on how many numbers earlier batches consumed, which is what lets a resumed job start at any batch.
 */

/** Numbers that identify independent streams; part of the reproducibility contract, so never renumber. */
export const STREAMS = {
  shuffle: 1,
  augment: 2,
  mix: 3,
  split: 4,
} as const;

function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** murmur3's finaliser: a bijection on 32-bit words with full avalanche. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function checkWord(word: number): void {
  if (!Number.isSafeInteger(word) || word < 0) {
    throw new RangeError(`random seeds and stream ids must be non-negative safe integers, got ${word}`);
  }
}

const TWO_POW_32 = 0x1_0000_0000;

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** Box–Muller yields normals in pairs; the second is kept for the next call. */
  private spareNormal: number | undefined;

  /** A generator for `seed` (a non-negative safe integer). */
  constructor(seed: number) {
    checkWord(seed);
    let state = fmix32((seed % TWO_POW_32) ^ fmix32(Math.floor(seed / TWO_POW_32) + 0x6a09e667));
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(state);
      state = next;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    // xoshiro's state must not be all zero; splitmix32 makes that practically impossible, but be sure.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** An independent generator for a tuple of non-negative integers, e.g. (seed, epoch, stream, batch). */
  static derive(...words: number[]): Rng {
    let h = 0x243f6a88;
    for (const word of words) {
      checkWord(word);
      h = fmix32(h ^ fmix32((word % TWO_POW_32) + Math.imul(h, 31)));
      h = fmix32(h ^ fmix32(Math.floor(word / TWO_POW_32) ^ 0x5bd1e995));
    }
    return new Rng(h);
  }

  /** Uniform 32-bit unsigned integer. */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.uint32() >>> 5; // 27 bits
    const lo = this.uint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [low, high) (Python's `random.uniform`, up to the open end). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.float();
  }

  /** Uniform integer in [low, high) without modulo bias (numpy `randint(low, high)`). */
  int(low: number, high: number): number {
    const n = high - low;
    if (!Number.isInteger(low) || !Number.isInteger(high) || n < 1 || n > TWO_POW_32) {
      throw new RangeError(`int(${low}, ${high}) needs integers with 1 ≤ high − low ≤ 2^32`);
    }
    if (n === 1) return low;
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    let x = this.uint32();
    while (x >= limit) x = this.uint32();
    return low + (x % n);
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.float() < p;
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const value = this.spareNormal;
      this.spareNormal = undefined;
      return value;
    }
    const u = 1 - this.float(); // (0, 1]: log(u) is finite
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, 1) by Marsaglia–Tsang; shapes below 1 use the u^(1/shape) boost. */
  gamma(shape: number): number {
    if (!(shape > 0) || !Number.isFinite(shape))
      throw new RangeError(`gamma shape must be > 0, got ${shape}`);
    if (shape < 1) {
      const u = 1 - this.float();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = 1 - this.float();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    const sum = x + y;
    // Both underflow to 0 only for tiny shapes; either endpoint is then equally likely.
    return sum > 0 ? x / sum : this.float() < 0.5 ? 0 : 1;
  }

  /** Fisher–Yates, in place. */
  shuffle<T extends { length: number; [i: number]: number }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
