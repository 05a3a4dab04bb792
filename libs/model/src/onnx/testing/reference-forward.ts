/**
 * Plain-JS Float64 forward passes of DeiT and RegNetY, written from the timm modules' semantics and
 * sharing no code with the exporters, so that ONNX files can be checked against them. Slow
 * (naive loops); meant for tiny test models only. Layouts: images NCHW, tokens [T, D] per sample.
 */
import type { NamedWeights } from '../../weights/named-weights';

export interface ReferenceDeitConfig {
  readonly embedDim: number;
  readonly depth: number;
  readonly numHeads: number;
  readonly mlpRatio: number;
  readonly patchSize: number;
  readonly imgSize: number;
  readonly numClasses: number;
  readonly distilled: boolean;
  readonly inChans?: number;
}

export interface ReferenceRegNetYConfig {
  readonly stageWidths: readonly number[];
  readonly stageDepths: readonly number[];
  readonly groupWidth: number;
  readonly numClasses: number;
  readonly imgSize: number;
  readonly stemWidth?: number;
  readonly seRatio?: number;
  readonly bottleneckRatio?: number;
  readonly inChans?: number;
}

type Vec = Float64Array;

function param(weights: NamedWeights, name: string): Vec {
  const t = weights.get(name);
  if (t === undefined) throw new Error(`reference: weight ${name} missing`);
  return Float64Array.from(t.data);
}

/** erf to ~1e-14: Maclaurin series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x < 2.5) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 100; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (x > 6) return 1;
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  let frac = x;
  for (let n = 80; n >= 1; n--) frac = x + n / 2 / frac;
  return 1 - Math.exp(-x * x) / Math.sqrt(Math.PI) / frac;
}

function layerNorm(x: Vec, rows: number, dim: number, gamma: Vec, beta: Vec, eps: number): Vec {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < dim; j++) mean += x[r * dim + j];
    mean /= dim;
    let v = 0;
    for (let j = 0; j < dim; j++) v += (x[r * dim + j] - mean) ** 2;
    v /= dim;
    const inv = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < dim; j++) out[r * dim + j] = (x[r * dim + j] - mean) * inv * gamma[j] + beta[j];
  }
  return out;
}

/** y = x W^T + b with W in PyTorch [out, in] layout. */
function linear(x: Vec, rows: number, inDim: number, w: Vec, b: Vec, outDim: number): Vec {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
      y[r * outDim + o] = s;
    }
  }
  return y;
}

export interface ReferenceDeitOutput {
  /** [batch, numClasses] row-major. */
  readonly cls: Float64Array;
  readonly dist?: Float64Array;
}

export function referenceDeitForward(
  config: ReferenceDeitConfig,
  weights: NamedWeights,
  pixels: Float32Array,
  batch: number,
): ReferenceDeitOutput {
  const D = config.embedDim;
  const P = config.patchSize;
  const S = config.imgSize;
  const C = config.inChans ?? 3;
  const G = S / P;
  const N = G * G;
  const prefix = config.distilled ? 2 : 1;
  const T = N + prefix;
  const H = config.numHeads;
  const hd = D / H;
  const hidden = Math.trunc(D * config.mlpRatio);
  const K = config.numClasses;
  const p = (n: string): Vec => param(weights, n);

  const cls = new Float64Array(batch * K);
  const dist = config.distilled ? new Float64Array(batch * K) : undefined;
  const convW = p('patch_embed.proj.weight');
  const convB = p('patch_embed.proj.bias');
  const pos = p('pos_embed');
  for (let bi = 0; bi < batch; bi++) {
    const img = (c: number, y: number, x: number): number => pixels[((bi * C + c) * S + y) * S + x];
    let x = new Float64Array(T * D);
    x.set(p('cls_token'), 0);
    if (config.distilled) x.set(p('dist_token'), D);
    // Patch n = gy·G + gx (row-major), projected by the conv kernel.
    for (let gy = 0; gy < G; gy++) {
      for (let gx = 0; gx < G; gx++) {
        const t = prefix + gy * G + gx;
        for (let o = 0; o < D; o++) {
          let s = convB[o];
          for (let c = 0; c < C; c++)
            for (let ky = 0; ky < P; ky++)
              for (let kx = 0; kx < P; kx++)
                s += convW[((o * C + c) * P + ky) * P + kx] * img(c, gy * P + ky, gx * P + kx);
          x[t * D + o] = s;
        }
      }
    }
    for (let i = 0; i < T * D; i++) x[i] += pos[i];

    for (let l = 0; l < config.depth; l++) {
      const b = `blocks.${l}`;
      const h = layerNorm(x, T, D, p(`${b}.norm1.weight`), p(`${b}.norm1.bias`), 1e-6);
      const qkv = linear(h, T, D, p(`${b}.attn.qkv.weight`), p(`${b}.attn.qkv.bias`), 3 * D);
      // qkv feature f = (which · H + head) · hd + e.
      const ctx = new Float64Array(T * D);
      const scale = 1 / Math.sqrt(hd);
      for (let head = 0; head < H; head++) {
        const q = (t: number, e: number): number => qkv[t * 3 * D + (0 * H + head) * hd + e];
        const k = (t: number, e: number): number => qkv[t * 3 * D + (1 * H + head) * hd + e];
        const v = (t: number, e: number): number => qkv[t * 3 * D + (2 * H + head) * hd + e];
        for (let i = 0; i < T; i++) {
          const scores = new Float64Array(T);
          let max = -Infinity;
          for (let j = 0; j < T; j++) {
            let s = 0;
            for (let e = 0; e < hd; e++) s += q(i, e) * k(j, e);
            scores[j] = s * scale;
            max = Math.max(max, scores[j]);
          }
          let z = 0;
          for (let j = 0; j < T; j++) {
            scores[j] = Math.exp(scores[j] - max);
            z += scores[j];
          }
          for (let e = 0; e < hd; e++) {
            let s = 0;
            for (let j = 0; j < T; j++) s += (scores[j] / z) * v(j, e);
            ctx[i * D + head * hd + e] = s;
          }
        }
      }
      const attnOut = linear(ctx, T, D, p(`${b}.attn.proj.weight`), p(`${b}.attn.proj.bias`), D);
      for (let i = 0; i < T * D; i++) x[i] += attnOut[i];

      const h2 = layerNorm(x, T, D, p(`${b}.norm2.weight`), p(`${b}.norm2.bias`), 1e-6);
      const m = linear(h2, T, D, p(`${b}.mlp.fc1.weight`), p(`${b}.mlp.fc1.bias`), hidden);
      for (let i = 0; i < m.length; i++) m[i] = 0.5 * m[i] * (1 + erf(m[i] / Math.SQRT2));
      const m2 = linear(m, T, hidden, p(`${b}.mlp.fc2.weight`), p(`${b}.mlp.fc2.bias`), D);
      x = x.map((val, i) => val + m2[i]);
    }
    const normed = layerNorm(x, T, D, p('norm.weight'), p('norm.bias'), 1e-6);
    cls.set(linear(normed.subarray(0, D), 1, D, p('head.weight'), p('head.bias'), K), bi * K);
    if (dist !== undefined)
      dist.set(
        linear(normed.subarray(D, 2 * D), 1, D, p('head_dist.weight'), p('head_dist.bias'), K),
        bi * K,
      );
  }
  return { cls, dist };
}

// ---------------------------------------------------------------------------------------------------
// RegNetY

interface FeatureMap {
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly data: Vec; // [c, h, w]
}

function conv2d(
  x: FeatureMap,
  weight: Vec,
  bias: Vec | null,
  out: number,
  k: number,
  stride: number,
  pad: number,
  groups: number,
): FeatureMap {
  const inPerGroup = x.c / groups;
  const outPerGroup = out / groups;
  const oh = Math.floor((x.h + 2 * pad - k) / stride) + 1;
  const ow = Math.floor((x.w + 2 * pad - k) / stride) + 1;
  const y = new Float64Array(out * oh * ow);
  for (let o = 0; o < out; o++) {
    const g = Math.floor(o / outPerGroup);
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let s = bias ? bias[o] : 0;
        for (let ci = 0; ci < inPerGroup; ci++) {
          const c = g * inPerGroup + ci;
          for (let ky = 0; ky < k; ky++) {
            const iy = oy * stride - pad + ky;
            if (iy < 0 || iy >= x.h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = ox * stride - pad + kx;
              if (ix < 0 || ix >= x.w) continue;
              s += weight[((o * inPerGroup + ci) * k + ky) * k + kx] * x.data[(c * x.h + iy) * x.w + ix];
            }
          }
        }
        y[(o * oh + oy) * ow + ox] = s;
      }
    }
  }
  return { c: out, h: oh, w: ow, data: y };
}

function batchNorm(x: FeatureMap, weights: NamedWeights, prefix: string): FeatureMap {
  const gamma = param(weights, `${prefix}.weight`);
  const beta = param(weights, `${prefix}.bias`);
  const mean = param(weights, `${prefix}.running_mean`);
  const variance = param(weights, `${prefix}.running_var`);
  const hw = x.h * x.w;
  const y = new Float64Array(x.data.length);
  for (let c = 0; c < x.c; c++) {
    const a = gamma[c] / Math.sqrt(variance[c] + 1e-5);
    for (let i = 0; i < hw; i++) y[c * hw + i] = (x.data[c * hw + i] - mean[c]) * a + beta[c];
  }
  return { ...x, data: y };
}

const relu = (x: FeatureMap): FeatureMap => ({ ...x, data: x.data.map((v) => Math.max(0, v)) });

function meanPool(x: FeatureMap): Vec {
  const hw = x.h * x.w;
  const out = new Float64Array(x.c);
  for (let c = 0; c < x.c; c++) {
    let s = 0;
    for (let i = 0; i < hw; i++) s += x.data[c * hw + i];
    out[c] = s / hw;
  }
  return out;
}

/** Python's round() (half to even). */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  if (v - f !== 0.5) return Math.round(v);
  return f % 2 === 0 ? f : f + 1;
}

/** Returns logits [batch, numClasses] row-major. */
export function referenceRegNetYForward(
  config: ReferenceRegNetYConfig,
  weights: NamedWeights,
  pixels: Float32Array,
  batch: number,
): Float64Array {
  const C = config.inChans ?? 3;
  const S = config.imgSize;
  const stem = config.stemWidth ?? 32;
  const seRatio = config.seRatio ?? 0.25;
  const br = config.bottleneckRatio ?? 1;
  const K = config.numClasses;
  const p = (n: string): Vec => param(weights, n);
  const convBn = (
    x: FeatureMap,
    prefix: string,
    out: number,
    k: number,
    stride: number,
    groups: number,
  ): FeatureMap =>
    batchNorm(
      conv2d(x, p(`${prefix}.conv.weight`), null, out, k, stride, k === 3 ? 1 : 0, groups),
      weights,
      `${prefix}.bn`,
    );

  const logits = new Float64Array(batch * K);
  for (let bi = 0; bi < batch; bi++) {
    let x: FeatureMap = {
      c: C,
      h: S,
      w: S,
      data: Float64Array.from(pixels.subarray(bi * C * S * S, (bi + 1) * C * S * S)),
    };
    x = relu(convBn(x, 'stem', stem, 3, 2, 1));
    config.stageWidths.forEach((width, s) => {
      const bott = roundHalfEven(width * br);
      const groups = bott / Math.min(config.groupWidth, bott);
      for (let i = 0; i < config.stageDepths[s]; i++) {
        const name = `s${s + 1}.b${i + 1}`;
        const stride = i === 0 ? 2 : 1;
        const inChs = x.c;
        const shortcut = x;
        let y = relu(convBn(x, `${name}.conv1`, bott, 1, 1, 1));
        y = relu(convBn(y, `${name}.conv2`, bott, 3, stride, groups));
        if (seRatio > 0) {
          const se = roundHalfEven(inChs * seRatio);
          const pooled: FeatureMap = { c: bott, h: 1, w: 1, data: meanPool(y) };
          const a = relu(
            conv2d(pooled, p(`${name}.se.fc1.weight`), p(`${name}.se.fc1.bias`), se, 1, 1, 0, 1),
          );
          const gate = conv2d(
            a,
            p(`${name}.se.fc2.weight`),
            p(`${name}.se.fc2.bias`),
            bott,
            1,
            1,
            0,
            1,
          ).data.map((v) => 1 / (1 + Math.exp(-v)));
          const hw = y.h * y.w;
          y = { ...y, data: y.data.map((v, idx) => v * gate[Math.floor(idx / hw)]) };
        }
        y = convBn(y, `${name}.conv3`, width, 1, 1, 1);
        const skip =
          inChs !== width || stride !== 1
            ? convBn(shortcut, `${name}.downsample`, width, 1, stride, 1)
            : shortcut;
        x = relu({ ...y, data: y.data.map((v, idx) => v + skip.data[idx]) });
      }
    });
    const feat = meanPool(x);
    logits.set(linear(feat, 1, x.c, p('head.fc.weight'), p('head.fc.bias'), K), bi * K);
  }
  return logits;
}
