/**
 * A distilled DeiT's two heads and how one prediction is made of them: `head` on the class token,
 * `head_dist` on the distillation token, or their average. The average is of **logits**, as timm and
 * the DeiT code evaluate (the paper's text adds softmaxes); a model without a distillation head
 * answers `average` with its class head alone.
 */

/** Which head a prediction or an accuracy comes from. */
export type HeadChoice = 'cls' | 'dist' | 'average';

/** Weight of each head's logits in `average`; the tfjs form (libs/model `combineHeads`) scales by it too. */
export const AVERAGE_HEAD_WEIGHT = 0.5;

/** `average` of two logit arrays of the same length (any batch layout: element by element). */
export function averageHeads(cls: Float32Array, dist: Float32Array): Float32Array {
  if (cls.length !== dist.length) {
    throw new RangeError(`head logits differ in length: cls ${cls.length}, dist ${dist.length}`);
  }
  const out = new Float32Array(cls.length);
  for (let i = 0; i < cls.length; i++) out[i] = (cls[i] + dist[i]) * AVERAGE_HEAD_WEIGHT;
  return out;
}

/** The chosen head's logits (the arrays themselves for `cls` and `dist`, a new array for `average`). */
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
    case 'average':
      return dist ? averageHeads(cls, dist) : cls;
  }
}
