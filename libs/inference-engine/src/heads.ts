/**
 * What a distilled DeiT's two heads say about one input. Pure math on logits, in float64. Which head
 * answers (`HeadChoice`, `headLogits`) is defined once in `@deit-serve/core`.
 */

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

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * The k most probable classes, most probable first; ties keep the lower index first. A selection
 * (O(n·k)) rather than a sort of all n classes: k is small and this runs for every response.
 */
export function topK(logits: Float32Array, k: number): Prediction[] {
  const probabilities = softmax(logits);
  const count = Math.min(k, logits.length);
  const chosen: number[] = [];
  // `chosen` stays ordered by (probability desc, index asc); a later index never beats an equal one.
  for (let i = 0; i < logits.length; i++) {
    const p = probabilities[i];
    if (chosen.length === count && !(p > probabilities[chosen[count - 1]])) continue;
    let at = chosen.length === count ? count - 1 : chosen.length;
    while (at > 0 && p > probabilities[chosen[at - 1]]) {
      chosen[at] = chosen[at - 1];
      at--;
    }
    chosen[at] = i;
  }
  chosen.length = count;
  return chosen.map((index) => ({ index, probability: probabilities[index], logit: logits[index] }));
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
