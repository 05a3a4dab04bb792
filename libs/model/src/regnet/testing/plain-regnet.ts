/**
 * Eval-mode RegNetY forward in plain JavaScript, NCHW, straight from timm-named weights in PyTorch
 * layout: an independent reference for the tfjs model's layouts, grouping, padding and SE wiring.
 * Written for clarity, not speed (toy sizes only).
 */
import type { NamedWeights } from '../../weights/named-weights';
import { BN_EPS } from '../layers';
import { numFeatures, regnetBlocks, type RegNetConfig } from '../presets';

interface Nchw {
  readonly shape: [number, number, number, number];
  readonly data: Float64Array;
}

function get(weights: NamedWeights, name: string): Float32Array {
  const t = weights.get(name);
  if (t === undefined) throw new Error(`missing ${name}`);
  return t.data;
}

/** PyTorch Conv2d (no bias), weight [O, C/groups, k, k], symmetric zero padding. */
function conv(
  x: Nchw,
  w: Float32Array,
  out: number,
  k: number,
  stride: number,
  pad: number,
  groups: number,
): Nchw {
  const [B, C, H, W] = x.shape;
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - k) / stride) + 1;
  const gIn = C / groups;
  const gOut = out / groups;
  const y = new Float64Array(B * out * Ho * Wo);
  for (let b = 0; b < B; b++)
    for (let o = 0; o < out; o++) {
      const g = Math.floor(o / gOut);
      for (let i = 0; i < Ho; i++)
        for (let j = 0; j < Wo; j++) {
          let acc = 0;
          for (let c = 0; c < gIn; c++)
            for (let kh = 0; kh < k; kh++) {
              const h = i * stride + kh - pad;
              if (h < 0 || h >= H) continue;
              for (let kw = 0; kw < k; kw++) {
                const col = j * stride + kw - pad;
                if (col < 0 || col >= W) continue;
                acc +=
                  x.data[((b * C + g * gIn + c) * H + h) * W + col] * w[((o * gIn + c) * k + kh) * k + kw];
              }
            }
          y[((b * out + o) * Ho + i) * Wo + j] = acc;
        }
    }
  return { shape: [B, out, Ho, Wo], data: y };
}

function batchNorm(x: Nchw, weights: NamedWeights, prefix: string, relu: boolean): Nchw {
  const [B, C, H, W] = x.shape;
  const gamma = get(weights, `${prefix}.weight`);
  const beta = get(weights, `${prefix}.bias`);
  const mean = get(weights, `${prefix}.running_mean`);
  const variance = get(weights, `${prefix}.running_var`);
  const y = new Float64Array(x.data.length);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      const scale = gamma[c] / Math.sqrt(variance[c] + BN_EPS);
      for (let p = 0; p < H * W; p++) {
        const i = (b * C + c) * H * W + p;
        const v = (x.data[i] - mean[c]) * scale + beta[c];
        y[i] = relu ? Math.max(0, v) : v;
      }
    }
  return { shape: x.shape, data: y };
}

function convBn(
  x: Nchw,
  w: NamedWeights,
  prefix: string,
  k: number,
  stride: number,
  groups: number,
  relu: boolean,
): Nchw {
  const weight = get(w, `${prefix}.conv.weight`);
  const out = (w.get(`${prefix}.conv.weight`)?.shape ?? [0])[0];
  return batchNorm(
    conv(x, weight, out, k, stride, Math.floor((stride - 1 + (k - 1)) / 2), groups),
    w,
    `${prefix}.bn`,
    relu,
  );
}

/** Mean over H, W: [B][C]. */
function pool(x: Nchw): number[][] {
  const [B, C, H, W] = x.shape;
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: C }, (_, c) => {
      let s = 0;
      for (let p = 0; p < H * W; p++) s += x.data[(b * C + c) * H * W + p];
      return s / (H * W);
    }),
  );
}

/** y = W x + b with W [out, in] (a 1×1 conv weight [out, in, 1, 1] has the same layout). */
function dense(v: number[], w: Float32Array, b: Float32Array): number[] {
  const out = b.length;
  const inDim = v.length;
  return Array.from({ length: out }, (_, o) => {
    let s = b[o];
    for (let i = 0; i < inDim; i++) s += w[o * inDim + i] * v[i];
    return s;
  });
}

export function plainRegNetForward(
  config: RegNetConfig,
  weights: NamedWeights,
  pixels: Float32Array,
  batch: number,
  height: number,
  width: number,
): number[][] {
  let x: Nchw = { shape: [batch, 3, height, width], data: Float64Array.from(pixels) };
  x = convBn(x, weights, 'stem', 3, config.stemStride, 1, true);
  for (const b of regnetBlocks(config)) {
    const n = b.name;
    let h = convBn(x, weights, `${n}.conv1`, 1, 1, 1, true);
    h = convBn(h, weights, `${n}.conv2`, 3, b.stride, b.groups, true);
    if (b.seChs > 0) {
      const [B, C, H, W] = h.shape;
      const gates = pool(h).map((v) => {
        const hidden = dense(v, get(weights, `${n}.se.fc1.weight`), get(weights, `${n}.se.fc1.bias`)).map(
          (z) => Math.max(0, z),
        );
        return dense(hidden, get(weights, `${n}.se.fc2.weight`), get(weights, `${n}.se.fc2.bias`)).map(
          (z) => 1 / (1 + Math.exp(-z)),
        );
      });
      const data = new Float64Array(h.data.length);
      for (let bi = 0; bi < B; bi++)
        for (let c = 0; c < C; c++)
          for (let p = 0; p < H * W; p++) {
            const i = (bi * C + c) * H * W + p;
            data[i] = h.data[i] * gates[bi][c];
          }
      h = { shape: h.shape, data };
    }
    h = convBn(h, weights, `${n}.conv3`, 1, 1, 1, false);
    const shortcut = b.downsample ? convBn(x, weights, `${n}.downsample`, 1, b.stride, 1, false) : x;
    const data = h.data.map((v, i) => Math.max(0, v + shortcut.data[i]));
    x = { shape: h.shape, data };
  }
  if (x.shape[1] !== numFeatures(config)) throw new Error('feature width mismatch');
  return pool(x).map((v) => dense(v, get(weights, 'head.fc.weight'), get(weights, 'head.fc.bias')));
}
