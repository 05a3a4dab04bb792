/**
 * DeiT building blocks written for the tfjs wasm backend, each with a hand-written gradient.
 *
 * Why custom gradients: XNNPACK (the fast matmul) is used only for 2-D operands without transpose
 * flags, and the stock gradients of matMul use transpose flags. So every matmul here, forward and
 * backward, is plain 2-D `a @ b` with explicit rank ≤ 4 transposes, and the per-head products of
 * attention run as depthwise convolutions (XNNPACK too; wasm's batched matMul is a scalar loop and
 * the conv gradients it would need do not exist on wasm, hence the hand-written backward). The custom
 * gradients also keep fewer intermediates alive for the backward pass (LayerNorm saves x̂ and 1/σ,
 * GELU recomputes its derivative, attention keeps qkv and the probabilities).
 *
 * Layouts: activations are 2-D [tokens, features]; Linear weights are stored pre-transposed
 * [in, out] (PyTorch stores [out, in]).
 */
import * as tf from '@tensorflow/tfjs-core';
import { onNativeTensorflow } from '../backend';

export const LAYER_NORM_EPS = 1e-6;

type Saver = (tensors: tf.Tensor[]) => void;
type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];
type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

/**
 * tf.customGrad with the variadic `save` argument typed for fixed arities, the forward pass in its own
 * tidy (only the value and the saved tensors outlive it) and the gradient function in another: tfjs
 * otherwise keeps every intermediate of a custom op until the whole backward pass ends (a DeiT-Ti step
 * at batch 64 on native TensorFlow: peak RSS 4.9 GiB before, 3.5 GiB after).
 */
function customGrad3(
  f: (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, save: Saver) => GradResult,
): (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor {
  const g = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, save: Saver) => {
    let saved: tf.Tensor[] = [];
    let gradFunc: GradResult['gradFunc'] | undefined;
    const [value] = tf.tidy(() => {
      const result = f(a, b, c, (tensors) => {
        saved = tensors;
      });
      gradFunc = result.gradFunc;
      return [result.value, ...saved];
    });
    save(saved);
    const backward = gradFunc as GradResult['gradFunc'];
    return { value, gradFunc: (dy: tf.Tensor, kept: tf.Tensor[]) => tf.tidy(() => backward(dy, kept)) };
  }) as CustomGradientFunc);
  return (a, b, c) => g(a, b, c);
}

// ---------------------------------------------------------------------------------------------
// Linear

/** Gradients of y = x @ w + b for 2-D x [n, in], w [in, out], as plain 2-D matmuls. */
function linearBackward(dy: tf.Tensor, x: tf.Tensor, w: tf.Tensor): tf.Tensor[] {
  const dx = tf.matMul(dy, tf.transpose(w, [1, 0]));
  const dw = tf.matMul(tf.transpose(x, [1, 0]), dy);
  const db = tf.sum(dy, 0);
  return [dx, dw, db];
}

const linearOp = customGrad3((x, w, b, save) => {
  save([x, w]);
  const value = tf.fused.matMul({ a: x, b: w, bias: b });
  return {
    value,
    gradFunc: (dy, [savedX, savedW]) => linearBackward(dy, savedX, savedW),
  };
});

/** y = x @ w + b with x [n, in], w [in, out] (pre-transposed), b [out]. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return linearOp(x, w, b) as tf.Tensor2D;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact GELU: x · Φ(x) = 0.5 x (1 + erf(x / √2)). */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, SQRT1_2)), 1)));
}

const linearGeluOp = customGrad3((x, w, b, save) => {
  const h = tf.fused.matMul({ a: x, b: w, bias: b });
  const erfTerm = tf.erf(tf.mul(h, SQRT1_2));
  save([x, w, h, erfTerm]);
  return {
    value: tf.mul(tf.mul(h, 0.5), tf.add(erfTerm, 1)),
    gradFunc: (dy, saved) => {
      const [savedX, savedW, savedH, savedErf] = saved;
      // d gelu / dh = Φ(h) + h φ(h), with Φ(h) = (1 + erf(h / √2)) / 2 saved from the forward pass.
      const cdf = tf.add(tf.mul(savedErf, 0.5), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(savedH), -0.5)), INV_SQRT_2PI);
      return linearBackward(tf.mul(dy, tf.add(cdf, tf.mul(savedH, pdf))), savedX, savedW);
    },
  };
});

/** gelu(x @ w + b); the MLP's first layer. */
export function linearGelu(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return linearGeluOp(x, w, b) as tf.Tensor2D;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

function makeLayerNorm(eps: number): (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  return customGrad3((x, gamma, beta, save) => {
    const mean = tf.mean(x, 1, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), 1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(centered, rstd);
    save([xhat, rstd, gamma]);
    return {
      value: tf.add(tf.mul(xhat, gamma), beta),
      gradFunc: (dy, [savedXhat, savedRstd, savedGamma]) => {
        const xh = savedXhat;
        const g = tf.mul(dy, savedGamma);
        const meanG = tf.mean(g, 1, true);
        const meanGx = tf.mean(tf.mul(g, xh), 1, true);
        const dx = tf.mul(tf.sub(tf.sub(g, meanG), tf.mul(xh, meanGx)), savedRstd);
        const dgamma = tf.sum(tf.mul(dy, xh), 0);
        const dbeta = tf.sum(dy, 0);
        return [dx, dgamma, dbeta];
      },
    };
  });
}

const layerNormOps = new Map<number, (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor>();

/** LayerNorm over the last axis of x [n, d] (biased variance, like PyTorch). */
export function layerNorm(
  x: tf.Tensor2D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps = LAYER_NORM_EPS,
): tf.Tensor2D {
  let op = layerNormOps.get(eps);
  if (op === undefined) {
    op = makeLayerNorm(eps);
    layerNormOps.set(eps, op);
  }
  return op(x, gamma, beta) as tf.Tensor2D;
}

// ---------------------------------------------------------------------------------------------
// Multi-head self-attention core

export interface AttentionShape {
  readonly batch: number;
  readonly tokens: number;
  readonly heads: number;
  readonly headDim: number;
}

/**
 * Multi-head self-attention up to (not including) the output projection: from tokens x [B·T, D],
 * the qkv weight [D, 3D] (pre-transposed) and bias [3D] to softmax(q kᵀ · headDim^-0.5) v [B·T, D].
 *
 * The 3D qkv features split as (3, heads, headDim) in that order, as in timm. q, k and v come from
 * three matmuls against column blocks of the weight (slicing the small weight instead of the large
 * activation); the per-head products run as depthwise convolutions (see groupedMatMul), 5–10× faster
 * on wasm than batched matMul. The backward pass keeps x, q, k, v and the probabilities and brings
 * them into the layouts it needs with rank-3/4 transposes.
 */
export function selfAttention(
  x: tf.Tensor2D,
  qkvWeight: tf.Tensor2D,
  qkvBias: tf.Tensor1D,
  shape: AttentionShape,
): tf.Tensor2D {
  if (onNativeTensorflow()) return nativeSelfAttention(x, qkvWeight, qkvBias, shape);
  return attentionOp(shape)(x, qkvWeight, qkvBias) as tf.Tensor2D;
}

/**
 * The same attention on native TensorFlow, whose batched matMul (BatchMatMulV2, transpose flags
 * folded into the kernel) is fast: the per-head products as [B, H, T, ·] batched matmuls with the
 * stock gradients. The depthwise-convolution formulation above is wasm's; on TensorFlow (whose
 * depthwise kernel is not made for a 1×K filter with channel multiplier T) it took a DeiT-Ti step at
 * micro-batch 16 from 3.5 s to 6.1 s.
 */
function nativeSelfAttention(
  x: tf.Tensor2D,
  qkvWeight: tf.Tensor2D,
  qkvBias: tf.Tensor1D,
  { batch: B, tokens: T, heads: H, headDim: hd }: AttentionShape,
): tf.Tensor2D {
  return tf.tidy(() => {
    const qkv = tf.fused.matMul({ a: x, b: qkvWeight, bias: qkvBias }); // [B·T, 3D]
    // [B, T, 3, H, hd] → [3, B, H, T, hd]
    const heads = tf.transpose(tf.reshape(qkv, [B, T, 3, H, hd]), [2, 0, 3, 1, 4]);
    const [q, k, v] = tf.unstack(heads, 0) as tf.Tensor4D[];
    const p = tf.softmax(tf.matMul(tf.mul(q, hd ** -0.5), k, false, true)); // [B, H, T, T]
    const out = tf.matMul(p, v); // [B, H, T, hd]
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, H * hd]);
  });
}

/**
 * G independent products a[g] @ b[g] as one depthwise convolution, which wasm runs through XNNPACK;
 * its batched matMul has only a scalar loop. With a in layout [M, K, G] as an NHWC image (height M,
 * width K, G channels) and b in layout [K, G, N] as a 1×K depthwise filter with channel multiplier
 * N, a 'valid' convolution yields [M, 1, G·N] = the products in layout [M, G, N].
 */
export function groupedMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [M, K, G] = a.shape;
  const [K2, G2, N] = b.shape;
  if (K !== K2 || G !== G2)
    throw new Error(`groupedMatMul: [${a.shape.join(', ')}] and [${b.shape.join(', ')}] do not match`);
  const out = tf.depthwiseConv2d(
    tf.reshape<tf.Rank.R4>(a, [1, M, K, G]),
    tf.reshape<tf.Rank.R4>(b, [1, K, G, N]),
    1,
    'valid',
  );
  return tf.reshape(out, [M, G, N]);
}

type Ternary = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor;

const attentionOps = new Map<string, Ternary>();

function attentionOp(shape: AttentionShape): Ternary {
  const key = `${shape.batch}x${shape.tokens}x${shape.heads}x${shape.headDim}`;
  let op = attentionOps.get(key);
  if (op === undefined) {
    op = makeAttention(shape);
    attentionOps.set(key, op);
  }
  return op;
}

function makeAttention({ batch: B, tokens: T, heads: H, headDim: hd }: AttentionShape): Ternary {
  const scale = hd ** -0.5;
  const D = H * hd;
  const G = B * H; // groups ordered (b, h)
  // Layouts of a [B·T, D] = [B, T, H, hd] tensor for groupedMatMul (a: [M, K, G], b: [K, G, N]).
  const tokensByDim = (t: tf.Tensor): tf.Tensor3D =>
    tf.reshape<tf.Rank.R3>(tf.transpose(tf.reshape(t, [B, T, H, hd]), [1, 3, 0, 2]), [T, hd, G]);
  const dimByTokens = (t: tf.Tensor): tf.Tensor3D =>
    tf.reshape<tf.Rank.R3>(tf.transpose(tf.reshape(t, [B, T, H, hd]), [3, 0, 2, 1]), [hd, G, T]);
  const tokensFirst = (t: tf.Tensor): tf.Tensor3D =>
    tf.reshape<tf.Rank.R3>(tf.transpose(tf.reshape(t, [B, T, H, hd]), [1, 0, 2, 3]), [T, G, hd]);
  // [T, G, hd] → [B·T, D]
  const rowsFirst = (t: tf.Tensor): tf.Tensor2D =>
    tf.reshape<tf.Rank.R2>(tf.transpose(tf.reshape(t, [T, B, H, hd]), [1, 0, 2, 3]), [B * T, D]);

  return customGrad3((x, w, b, save) => {
    const project = (index: number): tf.Tensor =>
      tf.fused.matMul({
        a: x,
        b: tf.slice(w as tf.Tensor2D, [0, index * D], [D, D]),
        bias: tf.slice(b, [index * D], [D]),
      });
    const q = project(0);
    const k = project(1);
    const v = project(2);
    const p = tf.softmax(groupedMatMul(tokensByDim(tf.mul(q, scale)), dimByTokens(k))); // [T_i, G, T_j]
    save([x, w, q, k, v, p]);
    const out = groupedMatMul(tf.transpose(p, [0, 2, 1]), tokensFirst(v)); // [T, G, hd]
    return {
      value: rowsFirst(out),
      gradFunc: (dy, saved) => {
        const [sx, sw, sq, sk, sv, sp] = saved as [
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor3D,
        ];
        const dP = groupedMatMul(tokensByDim(dy), dimByTokens(sv)); // dO vᵀ, [T_i, G, T_j]
        const dV = groupedMatMul(tf.transpose(sp, [2, 0, 1]), tokensFirst(dy)); // pᵀ dO, [T_j, G, hd]
        // softmax backward: dS = P ⊙ (dP − rowsum(dP ⊙ P))
        const dS: tf.Tensor3D = tf.mul(sp, tf.sub(dP, tf.sum(tf.mul(dP, sp), -1, true)));
        const dQ = tf.mul(groupedMatMul(tf.transpose(dS, [0, 2, 1]), tokensFirst(sk)), scale); // dS k · scale
        const dK = groupedMatMul(tf.transpose(dS, [2, 0, 1]), tokensFirst(tf.mul(sq, scale))); // dSᵀ q · scale
        const dQkv = tf.concat([rowsFirst(dQ), rowsFirst(dK), rowsFirst(dV)], 1); // [B·T, 3D]
        return linearBackward(dQkv, sx, sw);
      },
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Patch embedding input

/**
 * pixel_values [B, C, H, W] → patches [B·N, C·P·P], patches row-major over the grid and features in
 * (c, py, px) order, i.e. the flattening of a PyTorch conv weight [D, C, P, P]. Two rank-4
 * transposes instead of one rank-6 one (rank 5–6 transposes are ~100× slower on wasm).
 */
export function patchify(pixelValues: tf.Tensor4D, patchSize: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, C, H, W] = pixelValues.shape;
    const P = patchSize;
    const gh = H / P;
    const gw = W / P;
    // [B·C·gh, P, gw, P] → [B·C·gh, gw, P, P]  (now ordered b, c, gy, gx, py, px)
    const rows = tf.transpose(tf.reshape(pixelValues, [B * C * gh, P, gw, P]), [0, 2, 1, 3]);
    // [B, C, N, P·P] → [B, N, C, P·P]
    const patches = tf.transpose(tf.reshape(rows, [B, C, gh * gw, P * P]), [0, 2, 1, 3]);
    return tf.reshape(patches, [B * gh * gw, C * P * P]);
  });
}

/**
 * The patch embedding, timm's conv with kernel = stride = P, from pixel_values [B, C, H, W] and the
 * weight pre-transposed [C·P·P, D] (features in (c, py, px) order) to tokens [B·N, D]. On native
 * TensorFlow it runs as that conv (NHWC, TensorFlow's kernels and gradients); on wasm, which has no
 * conv weight gradient, as patchify and a matmul.
 */
export function patchEmbed(
  pixelValues: tf.Tensor4D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D,
  patchSize: number,
): tf.Tensor2D {
  if (!onNativeTensorflow()) return linear(patchify(pixelValues, patchSize), weight, bias);
  return tf.tidy(() => {
    const [B, C] = pixelValues.shape;
    const P = patchSize;
    const D = weight.shape[1];
    const kernel = tf.transpose(tf.reshape(weight, [C, P, P, D]), [1, 2, 0, 3]); // HWIO
    const out = tf.conv2d(tf.transpose(pixelValues, [0, 2, 3, 1]), kernel as tf.Tensor4D, P, 'valid');
    return tf.reshape(tf.add(out, bias), [B * out.shape[1] * out.shape[2], D]);
  });
}
