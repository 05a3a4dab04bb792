import * as tf from '@tensorflow/tfjs-core';
// Gradients of the stock ops between the custom-gradient blocks (the test runner can load this ES tree).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@deit-serve/core';
import { initBackend } from '../backend';
import {
  batchNormEval,
  batchNormTrain,
  BN_EPS,
  conv3x3,
  conv3x3NoInputGrad,
  dilate2,
  globalAvgPool,
  linear,
  squeezeExcite,
  subsample2,
  type BatchNormParams,
} from './layers';
import { naiveConv3x3, naiveConv3x3Grads } from './testing/naive-conv';

const rng = Rng.fromUint32(7);
const randData = (size: number, scale = 1): Float32Array =>
  Float32Array.from({ length: size }, () => scale * rng.normal());
const randn = (shape: number[], scale = 1): tf.Tensor =>
  tf.tensor(
    randData(
      shape.reduce((a, b) => a * b, 1),
      scale,
    ),
    shape,
  );

function maxAbsDiff(a: tf.Tensor | Float32Array, b: tf.Tensor | Float32Array): number {
  const av = a instanceof tf.Tensor ? a.dataSync() : a;
  const bv = b instanceof tf.Tensor ? b.dataSync() : b;
  expect(av.length).toBe(bv.length);
  let m = 0;
  for (let i = 0; i < av.length; i++) m = Math.max(m, Math.abs(av[i] - bv[i]));
  return m;
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('conv3x3 (XNNPACK forward, conv-based gradients) equals a plain-JS conv', () => {
  it.each([
    // B, H, W, C, Cout, stride, groups
    [2, 5, 5, 4, 6, 1, 1],
    [2, 6, 6, 4, 6, 2, 1],
    [2, 7, 5, 6, 6, 2, 3],
    [1, 4, 4, 8, 8, 1, 4],
    [2, 8, 7, 6, 9, 2, 3],
    [3, 3, 3, 2, 2, 2, 2],
    // Wide groups (≥ 32 channels) take the slice/concat path instead of selector matmuls.
    [2, 5, 4, 64, 96, 2, 2],
  ] as const)('x[%i, %i, %i, %i] → %i channels, stride %i, %i groups', (B, H, W, C, Cout, stride, groups) => {
    tf.tidy(() => {
      const x = randn([B, H, W, C]) as tf.Tensor4D;
      // Reference kernel HWIO [3, 3, C/groups, Cout]; conv3x3 takes the groups stacked on axis 0.
      // Unit-variance outputs (fan-in scaling), so that 1e-5 is a meaningful absolute tolerance.
      const hwio = randn([3, 3, C / groups, Cout], 1 / Math.sqrt((9 * C) / groups)) as tf.Tensor4D;
      const w = tf.reshape<tf.Rank.R4>(
        tf.transpose(tf.reshape(hwio, [3, 3, C / groups, groups, Cout / groups]), [3, 0, 1, 2, 4]),
        [3 * groups, 3, C / groups, Cout / groups],
      );
      const y = conv3x3(x, w, { stride, groups });
      const xHost = { shape: x.shape, data: x.dataSync() as Float32Array };
      const wHost = { shape: hwio.shape, data: hwio.dataSync() as Float32Array };
      const want = naiveConv3x3(xHost, wHost, stride, groups);
      expect(y.shape).toEqual(want.shape);
      expect(maxAbsDiff(y, want.data as Float32Array)).toBeLessThan(1e-5);

      const probe = randn(y.shape);
      const [dx, dw] = tf.grads((xs: tf.Tensor, ws: tf.Tensor) =>
        tf.sum(tf.mul(conv3x3(xs as tf.Tensor4D, ws as tf.Tensor4D, { stride, groups }), probe)),
      )([x, w]);
      const grads = naiveConv3x3Grads(
        xHost,
        wHost,
        { shape: probe.shape, data: probe.dataSync() as Float32Array },
        stride,
        groups,
      );
      expect(dx.shape).toEqual(x.shape);
      expect(dw.shape).toEqual(w.shape);
      expect(maxAbsDiff(dx, grads.dx.data as Float32Array)).toBeLessThan(1e-5);
      const dwHwio = tf.reshape(
        tf.transpose(tf.reshape(dw, [groups, 3, 3, C / groups, Cout / groups]), [1, 2, 3, 0, 4]),
        [3, 3, C / groups, Cout],
      );
      expect(maxAbsDiff(dwHwio, grads.dw.data as Float32Array)).toBeLessThan(1e-5);

      // The stem variant: same value and weight gradient, no input gradient.
      const dwStem = tf.grad((ws: tf.Tensor) =>
        tf.sum(tf.mul(conv3x3NoInputGrad(x, ws as tf.Tensor4D, { stride, groups }), probe)),
      )(w);
      expect(maxAbsDiff(conv3x3NoInputGrad(x, w, { stride, groups }), y)).toBe(0);
      expect(maxAbsDiff(dwStem, dw)).toBe(0);
    });
  });

  it('rejects a weight that does not fit the input', () => {
    tf.tidy(() => {
      expect(() => conv3x3(tf.zeros([1, 4, 4, 6]), tf.zeros([6, 3, 4, 3]), { stride: 1, groups: 2 })).toThrow(
        /does not fit/,
      );
    });
  });
});

/**
 * Value and input gradients of a custom-gradient op against tfjs autograd of a stock-op reference,
 * for a random linear functional of the output (so every output element matters).
 */
function expectSameGradients(
  custom: (...xs: tf.Tensor[]) => tf.Tensor,
  reference: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  tolerance = 1e-5,
): void {
  tf.tidy(() => {
    const probe = randn(reference(...inputs).shape);
    const loss =
      (f: (...xs: tf.Tensor[]) => tf.Tensor) =>
      (...xs: tf.Tensor[]): tf.Tensor =>
        tf.sum(tf.mul(f(...xs), probe));
    expect(maxAbsDiff(custom(...inputs), reference(...inputs))).toBeLessThan(tolerance);
    const got = tf.grads(loss(custom))(inputs);
    const want = tf.grads(loss(reference))(inputs);
    got.forEach((g, i) => {
      expect(g.shape, `input ${i}`).toEqual(inputs[i].shape);
      expect(maxAbsDiff(g, want[i]), `gradient of input ${i}`).toBeLessThan(tolerance);
    });
  });
}

describe('pooling and squeeze-excitation', () => {
  it('globalAvgPool matches autograd of tf.mean over H, W', () => {
    expectSameGradients(
      (x) => globalAvgPool(x as tf.Tensor4D),
      (x) => tf.mean(x, [1, 2]),
      [randn([3, 5, 4, 6])],
    );
  });

  it('squeezeExcite matches autograd of the stock-op SE module', () => {
    const [C, rd] = [8, 3];
    expectSameGradients(
      (x, w1, b1, w2, b2) =>
        squeezeExcite(x as tf.Tensor4D, {
          fc1Weight: w1 as tf.Tensor2D,
          fc1Bias: b1 as tf.Tensor1D,
          fc2Weight: w2 as tf.Tensor2D,
          fc2Bias: b2 as tf.Tensor1D,
        }),
      (x, w1, b1, w2, b2) => {
        const pooled = tf.mean(x, [1, 2]);
        const hidden = tf.relu(tf.add(tf.matMul(pooled as tf.Tensor2D, w1 as tf.Tensor2D), b1));
        const gate = tf.sigmoid(tf.add(tf.matMul(hidden, w2 as tf.Tensor2D), b2));
        return tf.mul(x, tf.reshape(gate, [x.shape[0], 1, 1, C]));
      },
      [randn([4, 3, 5, C]), randn([C, rd]), tf.add(randn([rd], 0.1), 0.3), randn([rd, C]), randn([C])],
    );
  });
});

describe('sampling helpers', () => {
  it.each([
    [2, 6, 6, 3],
    [1, 7, 5, 2],
  ])('subsample2 of [%i, %i, %i, %i] is x[:, ::2, ::2] with a gradient', (B, H, W, C) => {
    tf.tidy(() => {
      const x = randn([B, H, W, C]) as tf.Tensor4D;
      const want = tf.stridedSlice(x, [0, 0, 0, 0], [B, H, W, C], [1, 2, 2, 1]);
      expect(subsample2(x).shape).toEqual(want.shape);
      expect(maxAbsDiff(subsample2(x), want)).toBe(0);
      // Autograd reference: pad to even sides, view pixel pairs, slice the first of each.
      const Ho = Math.ceil(H / 2);
      const Wo = Math.ceil(W / 2);
      const reference = (xs: tf.Tensor): tf.Tensor => {
        const even = tf.pad(xs, [
          [0, 0],
          [0, 2 * Ho - H],
          [0, 2 * Wo - W],
          [0, 0],
        ]);
        return tf.reshape(tf.slice(tf.reshape(even, [B * Ho, 2, Wo, 2 * C]), 0, [B * Ho, 1, Wo, C]), [
          B,
          Ho,
          Wo,
          C,
        ]);
      };
      expectSameGradients((xs) => subsample2(xs as tf.Tensor4D), reference, [x]);
    });
  });

  it('dilate2 interleaves zeros', () => {
    tf.tidy(() => {
      const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
      expect(Array.from(dilate2(x).dataSync())).toEqual([1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0]);
    });
  });
});

describe('linear', () => {
  it.each([
    [9, 4, 6],
    [9, 6, 4],
  ])('x[%i, %i] @ w[., %i] matches autograd of tf.matMul', (n, inDim, outDim) => {
    tf.tidy(() => {
      const x = randn([n, inDim]);
      const w = randn([inDim, outDim]);
      const probe = randn([n, outDim]);
      const got = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(linear(a as tf.Tensor2D, b as tf.Tensor2D), probe)),
      )([x, w]);
      const want = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), probe)),
      )([x, w]);
      expect(maxAbsDiff(got[0], want[0])).toBeLessThan(1e-5);
      expect(maxAbsDiff(got[1], want[1])).toBeLessThan(1e-5);
    });
  });
});

describe('BatchNorm', () => {
  const n = 24;
  const c = 5;
  const makeParams = (): BatchNormParams => ({
    weight: tf.tensor1d(randData(c, 0.5).map((v) => v + 1)),
    bias: tf.tensor1d(randData(c, 0.5)),
    runningMean: tf.variable(tf.tensor1d(randData(c, 0.1)), false),
    runningVar: tf.variable(tf.tensor1d(randData(c, 0.1).map((v) => 1 + Math.abs(v))), false),
  });
  const dispose = (p: BatchNormParams): void => tf.dispose([p.weight, p.bias, p.runningMean, p.runningVar]);

  /** Training-mode BN from stock ops (autograd through the batch statistics). */
  const stockBn = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, relu: boolean): tf.Tensor => {
    const { mean, variance } = tf.moments(x, 0);
    const y = tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, BN_EPS))), gamma), beta);
    return relu ? tf.relu(y) : y;
  };

  it.each([true, false])(
    'training mode (relu %s) matches autograd of the batch-statistics formula',
    (relu) => {
      const p = makeParams();
      tf.tidy(() => {
        const x = tf.add(randn([n, c], 2), 0.7);
        const probe = randn([n, c]);
        const loss =
          (f: (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
          (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
            tf.sum(tf.mul(f(a, g, b), probe));
        const custom = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor =>
          batchNormTrain(a as tf.Tensor2D, { ...p, weight: g as tf.Tensor1D, bias: b as tf.Tensor1D }, relu);
        const stock = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => stockBn(a, g, b, relu);
        expect(maxAbsDiff(custom(x, p.weight, p.bias), stock(x, p.weight, p.bias))).toBeLessThan(1e-5);
        const got = tf.grads(loss(custom))([x, p.weight, p.bias]);
        const want = tf.grads(loss(stock))([x, p.weight, p.bias]);
        got.forEach((g, i) => expect(maxAbsDiff(g, want[i]), `gradient ${i}`).toBeLessThan(1e-5));
      });
      dispose(p);
    },
  );

  it('training mode updates the running statistics like PyTorch (momentum 0.1, unbiased variance)', () => {
    const p = makeParams();
    tf.tidy(() => {
      const x = tf.add(randn([n, c], 3), 1.5);
      const oldMean = p.runningMean.dataSync().slice();
      const oldVar = p.runningVar.dataSync().slice();
      const { mean, variance } = tf.moments(x, 0);
      const unbiased = tf.mul(variance, n / (n - 1));
      batchNormTrain(x as tf.Tensor2D, p, false);
      const m = mean.dataSync();
      const v = unbiased.dataSync();
      const wantMean = oldMean.map((o, i) => 0.9 * o + 0.1 * m[i]);
      const wantVar = oldVar.map((o, i) => 0.9 * o + 0.1 * v[i]);
      expect(maxAbsDiff(p.runningMean, Float32Array.from(wantMean))).toBeLessThan(1e-5);
      expect(maxAbsDiff(p.runningVar, Float32Array.from(wantVar))).toBeLessThan(1e-5);
    });
    dispose(p);
  });

  it('eval mode uses the running statistics and leaves them alone', () => {
    const p = makeParams();
    tf.tidy(() => {
      const x = randn([n, c]);
      const before = p.runningMean.dataSync().slice();
      const y = batchNormEval(x as tf.Tensor2D, p, true);
      const want = tf.relu(
        tf.add(
          tf.mul(tf.div(tf.sub(x, p.runningMean), tf.sqrt(tf.add(p.runningVar, BN_EPS))), p.weight),
          p.bias,
        ),
      );
      expect(maxAbsDiff(y, want)).toBeLessThan(1e-5);
      expect(Array.from(p.runningMean.dataSync())).toEqual(Array.from(before));
    });
    dispose(p);
  });

  it('refuses batch statistics over a single value, as PyTorch does', () => {
    const p = makeParams();
    tf.tidy(() => {
      expect(() => batchNormTrain(tf.zeros<tf.Rank.R2>([1, c]), p, false)).toThrow(/more than 1 value/);
    });
    dispose(p);
  });
});
