import { hostTensor, numel, type NamedWeights } from '../../weights/named-weights';

/** mulberry32: a tiny seeded PRNG so test models are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random weights for the given shapes: uniform(-scale, scale) by default, norm scales around 1 and
 * BatchNorm running variances in [0.5, 1.5] so that every layer stays well-conditioned.
 */
export function randomWeights(
  shapes: ReadonlyMap<string, readonly number[]>,
  seed: number,
  scale = 0.5,
): NamedWeights {
  const rand = seededRandom(seed);
  const weights: NamedWeights = new Map();
  for (const [name, shape] of shapes) {
    const data = new Float32Array(numel(shape));
    const isNormScale = /(^|\.)(norm\d*|norm|bn)\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) {
      if (name.endsWith('running_var')) data[i] = 0.5 + rand();
      else if (isNormScale) data[i] = 1 + (rand() - 0.5) * 0.4;
      else data[i] = (rand() * 2 - 1) * scale;
    }
    weights.set(name, hostTensor(shape, data));
  }
  return weights;
}

export function randomPixels(count: number, seed: number): Float32Array {
  const rand = seededRandom(seed);
  return Float32Array.from({ length: count }, () => rand() * 4 - 2);
}
