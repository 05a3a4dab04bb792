/**
 * The one seeded random source of the repository: xoshiro128** seeded through splitmix32. Every
 * random draw of training (weight init, stochastic depth, splits, shuffles, augmentations) comes from
 * an `Rng`, never from `Math.random`, so a run replays bit for bit from its seed. The same seed gives
 * the same numbers on every platform (32-bit integer arithmetic up to the final conversion). Not
 * cryptographic.
 *
 * Two ways in, each pinned by what its users reproduce (a fine-tune resumed at any batch, a model
 * initialised from a seed), so neither may change its numbers:
 * - `new Rng(seed)` and `Rng.derive(...words)`: any non-negative safe integer, both 32-bit halves
 *   hashed into the state. Streams are derived, not advanced: `Rng.derive(seed, epoch, stream, batch)`
 *   depends only on its words, not on how many numbers other streams consumed.
 * - `Rng.fromUint32(word)`, usually with `deriveSeed(seed, label)` (one stream per weight name): the
 *   32-bit word itself starts splitmix32, and Box–Muller's u is drawn from (0, 1) by rejecting 0
 *   instead of taken as 1 − float.
 */

/** murmur3's finaliser: a bijection on 32-bit words with full avalanche. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function checkWord(word: number): void {
  if (!Number.isSafeInteger(word) || word < 0) {
    throw new RangeError(`random seeds and stream ids must be non-negative safe integers, got ${word}`);
  }
}

const TWO_POW_32 = 0x1_0000_0000;

/** Derives an independent 32-bit seed from a base seed and a label (e.g. a weight name). */
export function deriveSeed(seed: number, label: string): number {
  // FNV-1a over the UTF-16 code units of the label, then mixed with the seed.
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  }
  return fmix32(h ^ fmix32((seed >>> 0) + 0x9e3779b9));
}

/** How the generator was seeded; see the file header. */
type Seeding = 'safe-integer' | 'uint32';

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private seeding: Seeding = 'safe-integer';
  /** Box–Muller yields normals in pairs; the second is kept for the next call. */
  private spareNormal: number | undefined;

  /** A generator for `seed` (a non-negative safe integer). */
  constructor(seed: number) {
    checkWord(seed);
    this.seedSplitMix(fmix32((seed % TWO_POW_32) ^ fmix32(Math.floor(seed / TWO_POW_32) + 0x6a09e667)));
  }

  /** A generator whose splitmix32 state starts at `word` (taken modulo 2^32, as `word >>> 0`). */
  static fromUint32(word: number): Rng {
    const rng = new Rng(0);
    rng.seeding = 'uint32';
    rng.seedSplitMix(word >>> 0);
    return rng;
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

  private seedSplitMix(state: number): void {
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      state = (state + 0x9e3779b9) >>> 0;
      words.push(fmix32(state));
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    // xoshiro's state must not be all zero; splitmix32 makes that practically impossible, but be sure.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform 32-bit unsigned integer. */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
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

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const value = this.spareNormal;
      this.spareNormal = undefined;
      return value;
    }
    let u: number;
    if (this.seeding === 'uint32') {
      u = 0;
      while (u === 0) u = this.float();
    } else {
      u = 1 - this.float(); // (0, 1]: log(u) is finite
    }
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * Normal(mean, std) truncated to [low, high] by rejection, like timm's `trunc_normal_` whose bounds
   * are absolute values (default ±2), not multiples of std.
   */
  truncNormal(mean: number, std: number, low = -2, high = 2): number {
    if (!(low < high)) throw new RangeError(`truncNormal: empty interval [${low}, ${high}]`);
    for (let attempt = 0; attempt < 1000; attempt++) {
      const value = mean + std * this.normal();
      if (value >= low && value <= high) return value;
    }
    // Only reachable when the interval lies far in a tail; fall back to a uniform draw inside it.
    return this.uniform(low, high);
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
