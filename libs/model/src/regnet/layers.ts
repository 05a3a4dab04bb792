/**
 * RegNet building blocks written for the tfjs wasm backend, each with a hand-written gradient.
 *
 * Why: the wasm backend has no `Conv2DBackpropFilter` (so tf.conv2d cannot be trained there), its
 * `Conv2DBackpropInput` is a scalar loop (~10× slower than a forward conv), XNNPACK is used only for
 * 2-D matmuls without transpose flags and for the forward `Conv2D`/pooling, and `Slice` copies its
 * whole input to the JavaScript heap before copying one innermost run per call. Measured here
 * (batch 64, 14×14×64, 3×3): XNNPACK conv 30 ms; im2col by pad/slice/concat + 2-D matmul 66 ms (the
 * im2col alone 40 ms); tf.conv2dTranspose 350 ms. So:
 *
 * - 3×3 conv forward: XNNPACK `tf.conv2d`, once per group (tfjs has no grouped conv); groups are
 *   split by one-hot selector matmuls and merged by a transpose (see splitGroups).
 * - input gradient: the forward conv again, on dy (zero-dilated for stride 2) with the kernel
 *   flipped and in/out swapped.
 * - weight gradient: also a forward conv: the padded input transposed to [C, H, W, B] correlated
 *   with dy transposed to [Ho, Wo, B, Cout] (dilated by the stride) gives [C, 3, 3, Cout]; the batch
 *   is the contraction axis. All transposes are rank ≤ 4.
 * - 1×1 convs and linears: 2-D matmuls on [B·H·W, C] with weights stored pre-transposed [in, out].
 * - reductions over rows or pixels (BatchNorm statistics, SE and head pooling): XNNPACK average
 *   pools, with closed-form gradients.
 *
 * Layouts: activations are NHWC (4-D) or their 2-D view [B·H·W, C]; 3×3 conv weights are the
 * groups' HWIO kernels stacked on the first axis, [groups·kh, kw, in/groups, out/groups], so each
 * group's kernel is a contiguous slice.
 */
import * as tf from '@tensorflow/tfjs-core';
import { onNativeTensorflow } from '../backend';

/** PyTorch BatchNorm2d defaults, used by timm's RegNet. */
export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

type Saver = (tensors: tf.Tensor[]) => void;
interface GradResult {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
}

/**
 * tf.customGrad with the trailing `save` argument typed, and the gradient function run in its own
 * tidy: otherwise its temporaries live until the whole backward pass ends (3.8 GiB for
 * regnety_160 at batch 2, past the wasm heap limit).
 */
function customGrad(
  f: (inputs: tf.Tensor[], save: Saver) => GradResult,
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const g = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as Saver;
    const { value, gradFunc } = f(args.slice(0, -1) as tf.Tensor[], save);
    return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => gradFunc(dy, saved)) };
  });
  return (...inputs) => g(...inputs);
}

const transpose2d = (t: tf.Tensor): tf.Tensor2D => tf.transpose(t as tf.Tensor2D, [1, 0]);

/*
 * Native TensorFlow (tfjs-node) has what wasm lacks: conv gradients (Conv2DBackpropInput/Filter),
 * cheap slices and axis reductions. There the convs, pools and reductions below use plain ops and
 * the stock gradients instead of the wasm formulations (splitGroups, mergeGroups and colMean below are
 * wasm's only): the zoo's teacher step at batch 128 went from 930–990 ms to ≈ 580 ms
 * (`npm run bench:train-step`).
 */

// ---------------------------------------------------------------------------------------------
// Linear / 1×1 conv

/** aᵀ @ b for a [n, p], b [n, q], transposing whichever operand is smaller. */
function matMulTN(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  const p = a.shape[1] as number;
  const q = b.shape[1] as number;
  return p <= q ? tf.matMul(transpose2d(a), b) : transpose2d(tf.matMul(transpose2d(b), a));
}

const linearOp = customGrad(([x, w], save) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy, [sx, sw]) => [tf.matMul(dy, transpose2d(sw)), matMulTN(sx, dy)],
  };
});

/** y = x @ w for x [n, in], w [in, out] (pre-transposed); a 1×1 conv on the 2-D view of NHWC. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return linearOp(x, w) as tf.Tensor2D;
}

/** y = x @ w + b. */
export function linearBias(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return tf.add(linear(x, w), b);
}

// ---------------------------------------------------------------------------------------------
// 3×3 conv, padding 1, stride 1 or 2, grouped

type Pad4 = [[number, number], [number, number], [number, number], [number, number]];
const PAD_SAME_3X3: Pad4 = [
  [0, 0],
  [1, 1],
  [1, 1],
  [0, 0],
];

/**
 * One-hot [C, C/groups] matrices selecting each group's channels, cached per (C, groups) and kept
 * for the life of the process (XNNPACK packs a matmul's right operand once per tensor).
 */
const selectors = new Map<string, tf.Tensor2D[]>();

function groupSelectors(channels: number, groups: number): tf.Tensor2D[] {
  const key = `${channels}/${groups}`;
  let found = selectors.get(key);
  if (found === undefined) {
    const g = channels / groups;
    found = [];
    for (let i = 0; i < groups; i++) {
      const data = new Float32Array(channels * g);
      for (let k = 0; k < g; k++) data[(i * g + k) * g + k] = 1;
      found.push(tf.keep(tf.tensor2d(data, [channels, g])));
    }
    selectors.set(key, found);
  }
  return found;
}

/** Channels per group from which slicing beats the selector matmuls (whose cost grows with g). */
const WIDE_GROUP = 32;

/**
 * Channel groups of NHWC x as separate tensors. The wasm Slice kernel first copies its whole input to
 * the JavaScript heap, then copies one innermost run (g floats) per call: G slices cost G full copies
 * plus B·H·W·G calls. That is fine for wide groups; narrow groups are instead split by a 2-D matmul
 * with a one-hot selector, which streams x once per group through XNNPACK (exact: one product by 1
 * per output) and is ~4× faster at 28×28×48 in 3 groups, batch 64.
 */
function splitGroups(x: tf.Tensor4D, groups: number): tf.Tensor4D[] {
  if (groups === 1) return [x];
  const [B, H, W, C] = x.shape;
  const g = C / groups;
  if (g >= WIDE_GROUP) {
    return Array.from({ length: groups }, (_, i) => tf.slice(x, [0, 0, 0, i * g], [B, H, W, g]));
  }
  const flat = tf.reshape(x, [B * H * W, C]);
  return groupSelectors(C, groups).map((e) => tf.reshape(tf.matMul(flat, e), [B, H, W, g]));
}

/** Inverse of splitGroups; narrow groups by a contiguous concat to [groups, n, g] and one transpose. */
function mergeGroups(parts: readonly tf.Tensor4D[]): tf.Tensor4D {
  if (parts.length === 1) return parts[0];
  const [B, H, W, g] = parts[0].shape;
  if (g >= WIDE_GROUP) return tf.concat(parts as tf.Tensor4D[], 3);
  const n = B * H * W;
  const major = tf.concat(
    parts.map((p) => tf.reshape(p, [1, n, g])),
    0,
  );
  return tf.reshape(tf.transpose(major, [1, 0, 2]), [B, H, W, parts.length * g]);
}

/** The kernel of group g from the stacked layout [groups·kh, kw, gIn, gOut] (a small slice). */
function groupKernel(w: tf.Tensor4D, g: number, groups: number): tf.Tensor4D {
  if (groups === 1) return w;
  const [rows, kw, gIn, gOut] = w.shape;
  const kh = rows / groups;
  return tf.slice(w, [g * kh, 0, 0, 0], [kh, kw, gIn, gOut]);
}

/** Inserts a zero after every row and column: [B, H, W, C] → [B, 2H, 2W, C]. */
export function dilate2(x: tf.Tensor4D): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  const cols = tf.pad(tf.reshape(x, [B * H * W, 1, C]), [
    [0, 0],
    [0, 1],
    [0, 0],
  ]);
  const rows = tf.pad(tf.reshape(cols, [B * H, 1, 2 * W * C]), [
    [0, 0],
    [0, 1],
    [0, 0],
  ]);
  return tf.reshape(rows, [B, 2 * H, 2 * W, C]);
}

/**
 * Gradients of one group's conv. xg [B, H, W, gIn], dyg [B, Ho, Wo, gOut], wg [3, 3, gIn, gOut].
 *
 * dW[kh, kw, c, o] = Σ_{b,i,j} xpad[b, s·i+kh, s·j+kw, c] · dy[b, i, j, o] is a valid conv of the
 * padded input with batch and channels swapped ([gIn, Hp, Wp, B]) and dy as a filter dilated by the
 * stride ([Ho, Wo, B, gOut]); the bottom/right padding is trimmed so that the output is 3×3.
 * dx is the correlation of dy, zero-dilated by the stride, with the kernel flipped and in/out swapped.
 */
function groupConvGrads(
  xg: tf.Tensor4D,
  dyg: tf.Tensor4D,
  wg: tf.Tensor4D,
  stride: 1 | 2,
  inputGrad: boolean,
): { dx: tf.Tensor4D | null; dw: tf.Tensor4D } {
  const [, H, W] = xg.shape;
  const [, Ho, Wo] = dyg.shape;
  const xt = tf.transpose(
    tf.pad(xg, [
      [0, 0],
      [1, stride * (Ho - 1) + 2 - H],
      [1, stride * (Wo - 1) + 2 - W],
      [0, 0],
    ]),
    [3, 1, 2, 0],
  );
  const filter = tf.transpose(dyg, [1, 2, 0, 3]);
  const dw = tf.transpose(tf.conv2d(xt, filter, 1, 'valid', 'NHWC', stride), [1, 2, 0, 3]);
  if (!inputGrad) return { dx: null, dw };
  const pad: Pad4 = [
    [0, 0],
    [1, H + 1 - stride * Ho],
    [1, W + 1 - stride * Wo],
    [0, 0],
  ];
  const flipped = tf.transpose(tf.reverse(wg, [0, 1]), [0, 1, 3, 2]);
  const dx = tf.conv2d(stride === 2 ? dilate2(dyg) : dyg, flipped, 1, pad);
  return { dx, dw };
}

export interface Conv3x3Options {
  readonly stride: 1 | 2;
  readonly groups: number;
}

/**
 * 3×3 conv with padding 1 (timm's `get_padding`) of x [B, H, W, C] NHWC with the groups' HWIO kernels
 * stacked on the first axis: w [groups·3, 3, C/groups, Cout/groups]. Output side
 * ⌊(H − 1)/stride⌋ + 1, as PyTorch.
 */
export function conv3x3(x: tf.Tensor4D, w: tf.Tensor4D, options: Conv3x3Options): tf.Tensor4D {
  checkConv(x, w, options);
  if (onNativeTensorflow()) return nativeConv3x3(x, w, options);
  const { stride, groups } = options;
  const op = customGrad(([xIn, wIn], save) => {
    const xs = splitGroups(xIn as tf.Tensor4D, groups);
    // The split input is what the backward pass needs, so it is saved instead of x.
    save([wIn, ...xs]);
    const value = mergeGroups(
      xs.map((xg, g) => tf.conv2d(xg, groupKernel(wIn as tf.Tensor4D, g, groups), stride, PAD_SAME_3X3)),
    );
    return {
      value,
      gradFunc: (dy, [sw, ...sxs]) => {
        const grads = splitGroups(dy as tf.Tensor4D, groups).map((dyg, g) =>
          groupConvGrads(sxs[g] as tf.Tensor4D, dyg, groupKernel(sw as tf.Tensor4D, g, groups), stride, true),
        );
        const dx = mergeGroups(grads.map((r) => r.dx as tf.Tensor4D));
        return [
          dx,
          groups === 1
            ? grads[0].dw
            : tf.concat(
                grads.map((r) => r.dw),
                0,
              ),
        ];
      },
    };
  });
  return op(x, w) as tf.Tensor4D;
}

/**
 * The same conv for an input that needs no gradient (the stem's pixels): x is closed over, so the
 * backward pass skips the input-gradient convolution.
 */
export function conv3x3NoInputGrad(x: tf.Tensor4D, w: tf.Tensor4D, options: Conv3x3Options): tf.Tensor4D {
  checkConv(x, w, options);
  if (onNativeTensorflow()) return nativeConv3x3(x, w, options);
  const { stride, groups } = options;
  const op = customGrad(([wIn], save) => {
    const xs = splitGroups(x, groups);
    // Saved: the caller's tidy may dispose x before the backward pass.
    save([wIn, ...xs]);
    const value = mergeGroups(
      xs.map((xg, g) => tf.conv2d(xg, groupKernel(wIn as tf.Tensor4D, g, groups), stride, PAD_SAME_3X3)),
    );
    return {
      value,
      gradFunc: (dy, [sw, ...sxs]) => {
        const dws = splitGroups(dy as tf.Tensor4D, groups).map(
          (dyg, g) =>
            groupConvGrads(
              sxs[g] as tf.Tensor4D,
              dyg,
              groupKernel(sw as tf.Tensor4D, g, groups),
              stride,
              false,
            ).dw,
        );
        return [groups === 1 ? dws[0] : tf.concat(dws, 0)];
      },
    };
  });
  return op(w) as tf.Tensor4D;
}

/**
 * The grouped conv on native TensorFlow: one tf.conv2d per group, stock gradients. tfjs-node takes
 * only 'same' and 'valid': 'same' is PyTorch's padding 1 at stride 1; at stride 2 TensorFlow would
 * pad bottom/right only, so the input is padded explicitly and convolved 'valid'.
 */
function nativeConv3x3(x: tf.Tensor4D, w: tf.Tensor4D, { stride, groups }: Conv3x3Options): tf.Tensor4D {
  return tf.tidy(() => {
    const input: tf.Tensor4D = stride === 1 ? x : tf.pad(x, PAD_SAME_3X3);
    const pad = stride === 1 ? 'same' : 'valid';
    const xs: tf.Tensor4D[] = groups === 1 ? [input] : tf.split(input, groups, 3);
    const ys = xs.map((xg, g) => tf.conv2d(xg, groupKernel(w, g, groups), stride, pad));
    return ys.length === 1 ? ys[0] : tf.concat(ys, 3);
  });
}

function checkConv(x: tf.Tensor4D, w: tf.Tensor4D, { stride, groups }: Conv3x3Options): void {
  const C = x.shape[3];
  if (w.rank !== 4 || w.shape[0] !== 3 * groups || w.shape[1] !== 3 || w.shape[2] * groups !== C) {
    throw new Error(
      `conv3x3: weight [${w.shape.join(', ')}] does not fit input [${x.shape.join(', ')}] with ${groups} groups`,
    );
  }
  if (stride !== 1 && stride !== 2) throw new Error(`conv3x3: stride must be 1 or 2 (got ${String(stride)})`);
}

/**
 * x[:, ::2, ::2, :] (what a 1×1 stride-2 conv samples), as a 1×1 XNNPACK average pool with stride 2;
 * the gradient scatters dy back by zero-dilation (cropped for odd sides).
 */
export function subsample2(x: tf.Tensor4D): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  const op = customGrad(([xIn]) => ({
    value: tf.avgPool(xIn as tf.Tensor4D, [1, 1], [2, 2], 'valid'),
    gradFunc: (dy) => {
      const full = dilate2(dy as tf.Tensor4D);
      return [full.shape[1] === H && full.shape[2] === W ? full : tf.slice(full, [0, 0, 0, 0], [B, H, W, C])];
    },
  }));
  return op(x) as tf.Tensor4D;
}

// ---------------------------------------------------------------------------------------------
// BatchNorm (+ ReLU)

export interface BatchNormParams {
  readonly weight: tf.Tensor1D;
  readonly bias: tf.Tensor1D;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  /** Weight of this batch in the running-statistics update; default {@link BN_MOMENTUM}. */
  readonly momentum?: number;
}

/**
 * Column means of x [n, c] → [c], as one XNNPACK average pool over an n×1 window: wasm reduces a
 * non-innermost axis by transposing first, which is 5–10× slower (13 ms vs 2.7 ms at 50176×48).
 */
function colMean(x: tf.Tensor): tf.Tensor1D {
  const [n, c] = x.shape as [number, number];
  return tf.reshape(tf.avgPool(tf.reshape<tf.Rank.R4>(x, [1, n, 1, c]), [n, 1], 1, 'valid'), [c]);
}

/**
 * Training-mode BatchNorm over the rows of x [n, c] with batch statistics (biased variance), then
 * optional ReLU. Updates the running statistics in place as PyTorch does (momentum 0.1 unless
 * `p.momentum` says otherwise, unbiased variance). The gradient is the closed form through the batch statistics.
 */
export function batchNormTrain(x: tf.Tensor2D, p: BatchNormParams, relu: boolean): tf.Tensor2D {
  const n = x.shape[0];
  if (n < 2) throw new Error(`BatchNorm in training mode needs more than 1 value per channel (got ${n})`);
  if (onNativeTensorflow()) return nativeBatchNormTrain(x, p, relu);
  const op = customGrad(([xIn, gamma, beta], save) => {
    const mean = colMean(xIn);
    const centered = tf.sub(xIn, mean);
    const variance = colMean(tf.square(centered));
    const invStd = tf.rsqrt(tf.add(variance, BN_EPS));
    const xHat = tf.mul(centered, invStd);
    const affine = tf.add(tf.mul(xHat, gamma), beta);
    const value = relu ? tf.relu(affine) : affine;
    const m = p.momentum ?? BN_MOMENTUM;
    p.runningMean.assign(tf.add(tf.mul(p.runningMean, 1 - m), tf.mul(mean, m)));
    p.runningVar.assign(tf.add(tf.mul(p.runningVar, 1 - m), tf.mul(variance, (m * n) / (n - 1))));
    save(relu ? [xHat, invStd, gamma, value] : [xHat, invStd, gamma]);
    return {
      value,
      gradFunc: (dy, [sxHat, sInvStd, sGamma, sOut]) => {
        const g = relu ? tf.mul(dy, tf.step(sOut)) : dy;
        const meanG = colMean(g);
        const meanGxHat = colMean(tf.mul(g, sxHat));
        // dx = γ/σ · (g − mean(g) − x̂ · mean(g · x̂)); dγ = Σ g · x̂, dβ = Σ g
        const a = tf.mul(sGamma, sInvStd);
        const dx = tf.sub(tf.mul(g, a), tf.add(tf.mul(sxHat, tf.mul(a, meanGxHat)), tf.mul(a, meanG)));
        return [dx, tf.mul(meanGxHat, n), tf.mul(meanG, n)];
      },
    };
  });
  return op(x, p.weight, p.bias) as tf.Tensor2D;
}

/**
 * ReLU's gradient from its output on native TensorFlow: dy · sign(out) (out ≥ 0, so exactly 0 or 1)
 * is two kernels, where tfjs-node's Step (the stock gradient's) is a Select between two filled tensors.
 */
function reluBackward(dy: tf.Tensor, out: tf.Tensor): tf.Tensor {
  return tf.mul(dy, tf.sign(out));
}

const reluOp = customGrad(([x], save) => {
  const value = tf.relu(x);
  save([value]);
  return { value, gradFunc: (dy, [out]) => [reluBackward(dy, out)] };
});

/** tf.relu; on native with the gradient of {@link reluBackward}. */
export function relu<T extends tf.Tensor>(x: T): T {
  return (onNativeTensorflow() ? reluOp(x) : tf.relu(x)) as T;
}

/** What nativeBatchNormTrain calls on tfjs-node's backend (its types are not a dependency). */
interface NativeOpAttr {
  readonly name: string;
  readonly type: number;
  readonly value: number | string | boolean;
}
interface NativeKernelBackend {
  readonly binding: Readonly<
    Record<'TF_ATTR_TYPE' | 'TF_ATTR_FLOAT' | 'TF_ATTR_STRING' | 'TF_ATTR_BOOL' | 'TF_FLOAT', number>
  >;
  executeMultipleOutputs(
    name: string,
    attrs: NativeOpAttr[],
    inputs: tf.Tensor[],
    outputs: number,
  ): tf.Tensor[];
}

function fusedBatchNormAttrs(backend: NativeKernelBackend): NativeOpAttr[] {
  const b = backend.binding;
  return [
    { name: 'T', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
    { name: 'U', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
    { name: 'epsilon', type: b.TF_ATTR_FLOAT, value: BN_EPS },
    { name: 'data_format', type: b.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'is_training', type: b.TF_ATTR_BOOL, value: true },
  ];
}

/**
 * Training-mode BatchNorm on native TensorFlow as its fused kernels, FusedBatchNormV3 forward and
 * FusedBatchNormGradV3 backward (tfjs exposes only the inference form): one kernel each way instead
 * of about ten elementwise ops and reductions over the whole activation. Same statistics and running
 * updates as batchNormTrain (TensorFlow's batch_variance output is already the unbiased one).
 */
function nativeBatchNormTrain(x: tf.Tensor2D, p: BatchNormParams, relu: boolean): tf.Tensor2D {
  const [n, c] = x.shape;
  const backend = tf.backend() as unknown as NativeKernelBackend;
  const attrs = fusedBatchNormAttrs(backend);
  const op = customGrad(([xIn, gamma, beta], save) => {
    const x4 = tf.reshape(xIn, [1, n, 1, c]);
    const empty = tf.zeros([0]);
    const [y, mean, variance, ...reserve] = backend.executeMultipleOutputs(
      'FusedBatchNormV3',
      attrs,
      [x4, gamma, beta, empty, empty],
      6,
    );
    const m = p.momentum ?? BN_MOMENTUM;
    p.runningMean.assign(tf.add(tf.mul(p.runningMean, 1 - m), tf.mul(mean, m)));
    p.runningVar.assign(tf.add(tf.mul(p.runningVar, 1 - m), tf.mul(variance, m)));
    const y2 = tf.reshape(y, [n, c]);
    const value = relu ? tf.relu(y2) : y2;
    save(relu ? [x4, gamma, ...reserve, value] : [x4, gamma, ...reserve]);
    return {
      value,
      gradFunc: (dy, [sx, sGamma, r1, r2, r3, sOut]) => {
        const g = relu ? reluBackward(dy, sOut) : dy;
        const [dx, dGamma, dBeta] = backend.executeMultipleOutputs(
          'FusedBatchNormGradV3',
          attrs,
          [tf.reshape(g, [1, n, 1, c]), sx, sGamma, r1, r2, r3],
          5,
        );
        return [tf.reshape(dx, [n, c]), dGamma, dBeta];
      },
    };
  });
  return op(x, p.weight, p.bias) as tf.Tensor2D;
}

/** Eval-mode BatchNorm with the running statistics, then optional ReLU. */
export function batchNormEval(x: tf.Tensor2D, p: BatchNormParams, relu: boolean): tf.Tensor2D {
  const scale = tf.mul(p.weight, tf.rsqrt(tf.add(p.runningVar, BN_EPS)));
  const shift = tf.sub(p.bias, tf.mul(p.runningMean, scale));
  const y = tf.add<tf.Tensor2D>(tf.mul(x, scale), shift);
  return relu ? tf.relu(y) : y;
}

export function batchNorm(x: tf.Tensor2D, p: BatchNormParams, relu: boolean, training: boolean): tf.Tensor2D {
  return training ? batchNormTrain(x, p, relu) : batchNormEval(x, p, relu);
}

// ---------------------------------------------------------------------------------------------
// Pooling and squeeze-excitation

/**
 * Mean over H, W of NHWC x: [B, C], as an XNNPACK average pool (5× faster than tf.mean over the
 * middle axis); the gradient is a broadcast (tf.tile is ~100× slower than a broadcast add here).
 */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  const [B, H, W, C] = x.shape;
  const op = customGrad(([xIn]) => ({
    value: tf.reshape(tf.avgPool(xIn as tf.Tensor4D, [H, W], 1, 'valid'), [B, C]),
    gradFunc: (dy) => {
      const share = tf.reshape(tf.div(dy, H * W), [B, 1, 1, C]);
      return [
        onNativeTensorflow() ? tf.broadcastTo(share, [B, H, W, C]) : tf.add(tf.zeros([B, H, W, C]), share),
      ];
    },
  }));
  return op(x) as tf.Tensor2D;
}

/** x [B, H, W, C] scaled per sample and channel by gate [B, C]. */
const channelScaleOp = customGrad(([x, gate], save) => {
  const [B, H, W, C] = x.shape as [number, number, number, number];
  save([x, gate]);
  return {
    value: tf.mul(x, tf.reshape(gate, [B, 1, 1, C])),
    gradFunc: (dy, [sx, sGate]) => [
      tf.mul(dy, tf.reshape(sGate, [B, 1, 1, C])),
      tf.mul(tf.reshape(tf.avgPool(tf.mul<tf.Tensor4D>(dy, sx), [H, W], 1, 'valid'), [B, C]), H * W),
    ],
  };
});

export interface SqueezeExciteParams {
  /** [C, rd] (pre-transposed 1×1 conv). */
  readonly fc1Weight: tf.Tensor2D;
  readonly fc1Bias: tf.Tensor1D;
  /** [rd, C]. */
  readonly fc2Weight: tf.Tensor2D;
  readonly fc2Bias: tf.Tensor1D;
}

/** timm SEModule: x · sigmoid(fc2(relu(fc1(mean_hw(x))))). */
export function squeezeExcite(x: tf.Tensor4D, p: SqueezeExciteParams): tf.Tensor4D {
  const pooled = globalAvgPool(x);
  const hidden = relu(linearBias(pooled, p.fc1Weight, p.fc1Bias));
  const gate = tf.sigmoid(linearBias(hidden, p.fc2Weight, p.fc2Bias));
  return channelScaleOp(x, gate) as tf.Tensor4D;
}
