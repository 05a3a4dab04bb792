import { describe, expect, it } from 'vitest';
import { disagreement, softmax, topK } from './heads';

describe('heads', () => {
  const cls = new Float32Array([2, 1, 0]);
  const dist = new Float32Array([0, 3, 1]);

  it('softmax matches the closed form', () => {
    const p = softmax([1, 2, 3]);
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    expect(p[0]).toBeCloseTo(Math.exp(1) / z, 12);
    expect(p[2]).toBeCloseTo(Math.exp(3) / z, 12);
  });

  it('top-k orders by probability and caps k at the class count', () => {
    const top = topK(dist, 10);
    expect(top.map((p) => p.index)).toEqual([1, 2, 0]);
    expect(top[0]?.logit).toBe(3);
    expect(top.reduce((s, p) => s + p.probability, 0)).toBeCloseTo(1, 12);
    expect(topK(dist, 1)).toHaveLength(1);
  });

  it('top-k selects what a full sort by (probability desc, index asc) puts first, ties included', () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(next() * 40);
      // Few distinct values, so ties are common.
      const logits = Float32Array.from({ length: n }, () => Math.floor(next() * 6) - 3);
      const p = softmax(logits);
      const sorted = Array.from(logits.keys()).sort((a, b) => p[b] - p[a] || a - b);
      for (const k of [1, 3, 5, n, n + 2]) {
        expect(topK(logits, k).map((t) => t.index)).toEqual(sorted.slice(0, Math.min(k, n)));
      }
    }
  });

  it('disagreement reports top-1 match and KL(p_cls ‖ p_dist) computed by hand', () => {
    const d = disagreement(cls, dist);
    const p = softmax(cls);
    const q = softmax(dist);
    let kl = 0;
    for (let i = 0; i < 3; i++) kl += p[i] * Math.log(p[i] / q[i]);
    expect(d.klDivergence).toBeCloseTo(kl, 12);
    expect(d).toMatchObject({ top1Match: false, clsTop1: 0, distTop1: 1 });
    expect(disagreement(cls, cls)).toMatchObject({ top1Match: true, klDivergence: 0 });
  });
});
