import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@deit-serve/model';
import { registerGradients } from './register-gradients';
import { DISTILLATION_LOSS_DEFAULTS, distillationLoss, type DistillationLossOptions } from './losses';

// Expectations are computed here in float64 plain JS, independently of tfjs.
const CLS = [
  [1.0, -0.5, 0.25, 2.0],
  [-1.5, 0.3, 0.8, 0.1],
  [0.0, 0.0, 3.0, -2.0],
];
const DIST = [
  [0.2, 1.1, -0.7, 0.4],
  [2.2, -0.3, 0.5, -1.0],
  [-0.6, 0.9, 1.4, 0.0],
];
const TEACHER = [
  [0.5, 2.5, -1.0, 0.0], // argmax 1
  [3.0, 0.1, 0.2, -0.4], // argmax 0
  [-1.0, 0.5, 0.4, 1.7], // argmax 3
];
const LABELS = [3, 2, 2];
const B = 3;
const C = 4;

function logSoftmax(row: readonly number[]): number[] {
  const max = Math.max(...row);
  const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
  return row.map((v) => v - logSum);
}
function crossEntropy(logits: number[][], targets: number[][]): number {
  let total = 0;
  logits.forEach((row, b) => logSoftmax(row).forEach((lp, c) => (total -= targets[b][c] * lp)));
  return total / logits.length;
}
function oneHot(index: number, smoothing = 0): number[] {
  return Array.from({ length: C }, (_, c) => (c === index ? 1 - smoothing : 0) + smoothing / C);
}
function softKlSum(student: number[][], teacher: number[][], tau: number): number {
  let total = 0;
  student.forEach((row, b) => {
    const s = logSoftmax(row.map((v) => v / tau));
    const t = logSoftmax(teacher[b].map((v) => v / tau));
    t.forEach((lt, c) => (total += Math.exp(lt) * (lt - s[c])));
  });
  return total;
}
function argmax(row: readonly number[]): number {
  return row.indexOf(Math.max(...row));
}

function run(
  options: DistillationLossOptions,
  labels: tf.Tensor1D | tf.Tensor2D = tf.tensor1d(LABELS, 'int32'),
) {
  return tf.tidy(() => {
    const value = distillationLoss(
      {
        clsLogits: tf.tensor2d(CLS),
        distLogits: tf.tensor2d(DIST),
        teacherLogits: tf.tensor2d(TEACHER),
        labels,
      },
      options,
    );
    return {
      total: value.total.arraySync(),
      base: value.base.arraySync(),
      distillation: value.distillation.arraySync(),
    };
  });
}

const TOLERANCE = 5; // decimal places: float32 arithmetic on O(1) values

describe('distillationLoss', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    await registerGradients();
  });

  it('documents its defaults: α 0.5, τ 1, numel normalisation, no smoothing', () => {
    expect(DISTILLATION_LOSS_DEFAULTS).toEqual({
      alpha: 0.5,
      tau: 1,
      softNormalization: 'numel',
      labelSmoothing: 0,
    });
    const base = crossEntropy(
      CLS,
      LABELS.map((l) => oneHot(l)),
    );
    const soft = softKlSum(DIST, TEACHER, 1) / (B * C);
    const value = run({ type: 'soft' });
    expect(value.base).toBeCloseTo(base, TOLERANCE);
    expect(value.distillation).toBeCloseTo(soft, TOLERANCE);
    expect(value.total).toBeCloseTo(0.5 * base + 0.5 * soft, TOLERANCE);
  });

  it('none: total is the base CE on the CLS logits, whatever α', () => {
    const base = crossEntropy(
      CLS,
      LABELS.map((l) => oneHot(l)),
    );
    const value = run({ type: 'none', alpha: 0.9 });
    expect(value.base).toBeCloseTo(base, TOLERANCE);
    expect(value.total).toBeCloseTo(base, TOLERANCE);
    expect(value.distillation).toBe(0);
  });

  it('soft with numel normalisation: Σ KL · τ² / (batch·classes), weighted (1−α)/α', () => {
    const tau = 3;
    const alpha = 0.1;
    const base = crossEntropy(
      CLS,
      LABELS.map((l) => oneHot(l)),
    );
    const soft = (softKlSum(DIST, TEACHER, tau) * tau * tau) / (B * C);
    const value = run({ type: 'soft', alpha, tau, softNormalization: 'numel' });
    expect(value.distillation).toBeCloseTo(soft, TOLERANCE);
    expect(value.total).toBeCloseTo((1 - alpha) * base + alpha * soft, TOLERANCE);
  });

  it('soft with batchmean normalisation: Σ KL · τ² / batch', () => {
    const tau = 2;
    const soft = (softKlSum(DIST, TEACHER, tau) * tau * tau) / B;
    const value = run({ type: 'soft', alpha: 0.7, tau, softNormalization: 'batchmean' });
    expect(value.distillation).toBeCloseTo(soft, TOLERANCE);
    const base = crossEntropy(
      CLS,
      LABELS.map((l) => oneHot(l)),
    );
    expect(value.total).toBeCloseTo(0.3 * base + 0.7 * soft, TOLERANCE);
  });

  it('hard: CE of the dist logits against argmax(teacher), unsmoothed even with label smoothing', () => {
    const smoothing = 0.1;
    const base = crossEntropy(
      CLS,
      LABELS.map((l) => oneHot(l, smoothing)),
    );
    const hard = crossEntropy(
      DIST,
      TEACHER.map((row) => oneHot(argmax(row))),
    );
    const value = run({ type: 'hard', alpha: 0.5, labelSmoothing: smoothing, tau: 5 /* ignored */ });
    expect(value.base).toBeCloseTo(base, TOLERANCE);
    expect(value.distillation).toBeCloseTo(hard, TOLERANCE);
    expect(value.total).toBeCloseTo(0.5 * base + 0.5 * hard, TOLERANCE);
  });

  it('label smoothing: target (1−ε)·onehot + ε/C on the base term', () => {
    const smoothing = 0.1;
    const smoothed = crossEntropy(
      CLS,
      LABELS.map((l) => oneHot(l, smoothing)),
    );
    const plain = crossEntropy(
      CLS,
      LABELS.map((l) => oneHot(l)),
    );
    expect(Math.abs(smoothed - plain)).toBeGreaterThan(1e-2); // the case actually discriminates
    expect(run({ type: 'none', labelSmoothing: smoothing }).base).toBeCloseTo(smoothed, TOLERANCE);
  });

  it('soft targets (mixup) are smoothed the same way as indices', () => {
    const lambda = 0.7;
    const mixed = LABELS.map((l, b) =>
      oneHot(l).map((v, c) => lambda * v + (1 - lambda) * oneHot(LABELS[(b + 1) % B])[c]),
    );
    const smoothing = 0.1;
    const expected = crossEntropy(
      CLS,
      mixed.map((row) => row.map((v) => (1 - smoothing) * v + smoothing / C)),
    );
    const value = run({ type: 'none', labelSmoothing: smoothing }, tf.tensor2d(mixed));
    expect(value.base).toBeCloseTo(expected, TOLERANCE);
    // Indices and their one-hot rows give the same loss.
    const fromOneHot = run(
      { type: 'none', labelSmoothing: smoothing },
      tf.tensor2d(LABELS.map((l) => oneHot(l))),
    );
    expect(fromOneHot.base).toBeCloseTo(run({ type: 'none', labelSmoothing: smoothing }).base, 6);
  });

  it('none: the distillation head gets no gradient; soft/hard: it does', () => {
    const cls = tf.variable(tf.tensor2d(CLS), true, 'test_cls_logits');
    const dist = tf.variable(tf.tensor2d(DIST), true, 'test_dist_logits');
    const gradsFor = (type: DistillationLossOptions['type']) =>
      tf.variableGrads(
        () =>
          distillationLoss(
            {
              clsLogits: cls,
              distLogits: dist,
              teacherLogits: tf.tensor2d(TEACHER),
              labels: tf.tensor1d(LABELS, 'int32'),
            },
            { type, alpha: 0.5 },
          ).total,
        [cls, dist],
      ).grads;
    const none = gradsFor('none');
    expect(Object.keys(none)).toEqual(['test_cls_logits']);
    for (const type of ['soft', 'hard'] as const) {
      const grads = gradsFor(type);
      expect(Object.keys(grads).sort()).toEqual(['test_cls_logits', 'test_dist_logits']);
      const distGrad = grads['test_dist_logits'];
      expect(tf.max(tf.abs(distGrad)).arraySync()).toBeGreaterThan(1e-3);
    }
    // d(CE)/d(logits) = (softmax − target)/B: a hand check of the cls gradient for one entry.
    const p = logSoftmax(CLS[0]).map(Math.exp);
    const expected = ((p[3] - 1) / B) * 1; // α does not touch base for 'none'
    expect((none['test_cls_logits'] as tf.Tensor2D).arraySync()[0]?.[3]).toBeCloseTo(expected, TOLERANCE);
    cls.dispose();
    dist.dispose();
  });

  it('lists every invalid input in one error', () => {
    expect(() =>
      distillationLoss(
        {
          clsLogits: tf.zeros([2, 3]),
          distLogits: tf.zeros([2, 4]),
          labels: tf.tensor1d([0, 1, 2], 'int32'),
        },
        { type: 'soft', alpha: 2, tau: 0 },
      ),
    ).toThrow(/distLogits.*labels.*teacherLogits.*alpha.*tau/);
  });
});
