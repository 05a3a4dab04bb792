/**
 * What a distilled DeiT's two heads say about one input. Pure math on logits, in float64.
 */
export type HeadChoice = 'cls' | 'dist' | 'average';

export interface Prediction {
  index: number;
  probability: number;
  logit: number;
}

export interface Disagreement {
  top1Match: boolean;
  /** KL(p_cls ‖ p_dist) in nats. */
  klDivergence: number;
  clsTop1: number;
  distTop1: number;
}

export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i] - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i] / sum;
  return out;
}

/** The chosen head's logits; `average` is the mean of the two heads' logits (timm, official DeiT). */
export function headLogits(
  choice: HeadChoice,
  cls: Float32Array,
  dist: Float32Array | undefined,
): Float32Array {
  switch (choice) {
    case 'cls':
      return cls;
    case 'dist':
      if (!dist) throw new Error('model has no distillation head');
      return dist;
    case 'average': {
      if (!dist) return cls;
      const out = new Float32Array(cls.length);
      for (let i = 0; i < cls.length; i++) out[i] = (cls[i] + dist[i]) / 2;
      return out;
    }
  }
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** The k most probable classes, most probable first; ties keep the lower index first. */
export function topK(logits: Float32Array, k: number): Prediction[] {
  const probabilities = softmax(logits);
  const order = Array.from(logits.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  return order
    .slice(0, Math.min(k, logits.length))
    .map((index) => ({ index, probability: probabilities[index], logit: logits[index] }));
}

export function disagreement(cls: Float32Array, dist: Float32Array): Disagreement {
  const p = softmax(cls);
  const q = softmax(dist);
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i];
    // 0 · log(0 / q) = 0; a q of 0 cannot happen after softmax of finite logits, but guard anyway.
    if (pi > 0) kl += pi * (Math.log(pi) - Math.log(Math.max(q[i], Number.MIN_VALUE)));
  }
  const clsTop1 = argmax(cls);
  const distTop1 = argmax(dist);
  return { top1Match: clsTop1 === distTop1, klDivergence: Math.max(0, kl), clsTop1, distTop1 };
}
