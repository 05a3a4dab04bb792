import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@deit-serve/core';
import { initBackend } from '../backend';
import { gelu, groupedMatMul, layerNorm, linear, linearGelu, patchify, selfAttention } from './layers';
import { erf64 } from './testing/plain-deit';

const rng = Rng.fromUint32(99);
const randn = (shape: number[], scale = 1): tf.Tensor =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()),
    shape,
  );

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/**
 * Compares value and input gradients of a custom-gradient op with tfjs autograd of a stock-op
 * reference, for a random linear functional of the output (so every output element matters).
 */
function expectSameGradients(
  custom: (...xs: tf.Tensor[]) => tf.Tensor,
  reference: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  tolerance = 2e-5,
): void {
  tf.tidy(() => {
    const probe = randn(custom(...inputs).shape);
    const loss =
      (f: (...xs: tf.Tensor[]) => tf.Tensor) =>
      (...xs: tf.Tensor[]) =>
        tf.sum(tf.mul(f(...xs), probe));
    const got = tf.grads(loss(custom))(inputs);
    const want = tf.grads(loss(reference))(inputs);
    expect(maxAbsDiff(custom(...inputs), reference(...inputs))).toBeLessThan(tolerance);
    got.forEach((g, i) => {
      expect(g.shape, `input ${i}`).toEqual(inputs[i].shape);
      const scale = Math.max(1, tf.max(tf.abs(want[i])).dataSync()[0]);
      expect(maxAbsDiff(g, want[i]) / scale, `gradient of input ${i}`).toBeLessThan(tolerance);
    });
  });
}

const stockGelu = (h: tf.Tensor): tf.Tensor =>
  tf.mul(tf.mul(h, 0.5), tf.add(tf.erf(tf.div(h, Math.SQRT2)), 1));

beforeAll(async () => {
  await initBackend('wasm');
});

describe('custom-gradient layers agree with tfjs autograd', () => {
  it.each([
    [7, 4, 6],
    [7, 6, 4],
  ])('linear x[%i, %i] @ w[., %i] + b', (n, inDim, outDim) => {
    expectSameGradients(
      (x, w, b) => linear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      (x, w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b),
      [randn([n, inDim]), randn([inDim, outDim]), randn([outDim])],
    );
  });

  it('linear + exact GELU', () => {
    expectSameGradients(
      (x, w, b) => linearGelu(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      (x, w, b) => stockGelu(tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b)),
      [randn([9, 5]), randn([5, 12]), randn([12])],
    );
  });

  it('layer norm (eps 1e-6, biased variance)', () => {
    expectSameGradients(
      (x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D),
      (x, g, b) => {
        const { mean, variance } = tf.moments(x, 1, true);
        return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-6))), g), b);
      },
      [randn([6, 10], 3), randn([10]), randn([10])],
    );
  });

  it('multi-head self-attention with the (3, heads, head_dim) qkv split', () => {
    const [B, T, H, hd] = [2, 5, 2, 3];
    const D = H * hd;
    const reference = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const qkv = tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b);
      // timm: qkv.reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4), here with stock ops and transpose flags.
      const heads = (i: number) =>
        tf.transpose(tf.reshape(tf.slice(qkv, [0, i * D], [B * T, D]), [B, T, H, hd]), [0, 2, 1, 3]);
      const [q, k, v] = [heads(0), heads(1), heads(2)];
      const p = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)));
      return tf.reshape(tf.transpose(tf.matMul(p, v), [0, 2, 1, 3]), [B * T, D]);
    };
    expectSameGradients(
      (x, w, b) =>
        selfAttention(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D, {
          batch: B,
          tokens: T,
          heads: H,
          headDim: hd,
        }),
      reference,
      [randn([B * T, D]), randn([D, 3 * D], 0.5), randn([3 * D])],
    );
  });

  it('groupedMatMul multiplies G matrices in conv layouts', () => {
    const [M, K, G, N] = [4, 3, 5, 2];
    const a = randn([G, M, K]) as tf.Tensor3D;
    const b = randn([G, K, N]) as tf.Tensor3D;
    tf.tidy(() => {
      const got = groupedMatMul(tf.transpose(a, [1, 2, 0]), tf.transpose(b, [1, 0, 2])); // [M, G, N]
      expect(maxAbsDiff(tf.transpose(got, [1, 0, 2]), tf.matMul(a, b))).toBeLessThan(1e-5);
    });
  });
});

describe('GELU', () => {
  it('is the exact erf form to 1e-6 (the backend has an Erf kernel)', () => {
    const xs = Float32Array.from({ length: 4001 }, (_, i) => -10 + i * 0.005);
    const got = tf.tidy(() => gelu(tf.tensor1d(xs)).dataSync());
    let worst = 0;
    xs.forEach((x, i) => {
      worst = Math.max(worst, Math.abs(got[i] - 0.5 * x * (1 + erf64(x / Math.SQRT2))));
    });
    expect(worst).toBeLessThan(1e-6);
    // The tanh approximation differs by up to ~4e-4: make sure that is not what runs.
    const approx = (x: number): number =>
      0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    expect(Math.abs(got[2200] - approx(xs[2200]))).toBeGreaterThan(1e-5);
  });
});

describe('patchify', () => {
  it('orders patches row-major and features as a conv weight [D, C, P, P] flattens', () => {
    const [B, C, S, P] = [2, 3, 6, 3];
    const data = Float32Array.from({ length: B * C * S * S }, (_, i) => i);
    const patches = tf.tidy(() => patchify(tf.tensor4d(data, [B, C, S, S]), P).arraySync());
    const grid = S / P;
    expect(patches.length).toBe(B * grid * grid);
    for (let b = 0; b < B; b++) {
      for (let gy = 0; gy < grid; gy++) {
        for (let gx = 0; gx < grid; gx++) {
          const row = patches[(b * grid + gy) * grid + gx];
          for (let c = 0; c < C; c++) {
            for (let py = 0; py < P; py++) {
              for (let px = 0; px < P; px++) {
                const pixel = data[((b * C + c) * S + gy * P + py) * S + gx * P + px];
                expect(row[(c * P + py) * P + px]).toBe(pixel);
              }
            }
          }
        }
      }
    }
  });
});
