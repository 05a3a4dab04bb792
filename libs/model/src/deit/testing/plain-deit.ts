/**
 * Test oracle: a deliberately naive float64 DeiT forward in plain JavaScript, written from the
 * PyTorch/timm definitions (conv patch embedding, qkv.reshape(B, N, 3, H, hd), erf GELU, LayerNorm
 * eps 1e-6) over NamedWeights in PyTorch layout. Shares no code with the tfjs model, so agreement
 * does not depend on tfjs or on the model's layout tricks. Only for tiny configurations.
 */
import type { NamedWeights } from '../../weights/named-weights';

export interface PlainDeitConfig {
  readonly imgSize: number;
  readonly patchSize: number;
  readonly embedDim: number;
  readonly depth: number;
  readonly numHeads: number;
  readonly numClasses: number;
  readonly distilled: boolean;
}

type Matrix = Float64Array[]; // [tokens][features]

/** erf to ~1e-15: Maclaurin series for |x| < 3, continued fraction beyond. */
export function erf64(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 3) {
    let sum = 0;
    let term = ax;
    for (let n = 0; n < 200; n++) {
      sum += term / (2 * n + 1);
      term *= (-ax * ax) / (n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = 0;
    for (let n = 80; n >= 1; n--) f = n / 2 / (ax + f);
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? -r : r;
}

function get(weights: NamedWeights, name: string): Float32Array {
  const t = weights.get(name);
  if (t === undefined) throw new Error(`plain DeiT: missing ${name}`);
  return t.data;
}

/** y = x Wᵀ + b with W [out, in] (PyTorch). */
function linear(x: Matrix, w: Float32Array, b: Float32Array): Matrix {
  const outDim = b.length;
  const inDim = w.length / outDim;
  return x.map((row) => {
    const y = new Float64Array(outDim);
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += w[o * inDim + i] * row[i];
      y[o] = s;
    }
    return y;
  });
}

function layerNorm(x: Matrix, g: Float32Array, b: Float32Array): Matrix {
  return x.map((row) => {
    const n = row.length;
    const mean = row.reduce((a, v) => a + v, 0) / n;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
    const inv = 1 / Math.sqrt(variance + 1e-6);
    return row.map((v, i) => (v - mean) * inv * g[i] + b[i]);
  });
}

function attention(x: Matrix, weights: NamedWeights, prefix: string, heads: number): Matrix {
  const qkv = linear(x, get(weights, `${prefix}.qkv.weight`), get(weights, `${prefix}.qkv.bias`));
  const T = x.length;
  const D = x[0].length;
  const hd = D / heads;
  // qkv.reshape(B, N, 3, H, hd): feature index = which·D + head·hd + d
  const at = (t: number, which: number, h: number, d: number): number => qkv[t][which * D + h * hd + d];
  const out: Matrix = Array.from({ length: T }, () => new Float64Array(D));
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < T; i++) {
      const scores = new Float64Array(T);
      for (let j = 0; j < T; j++) {
        let s = 0;
        for (let d = 0; d < hd; d++) s += at(i, 0, h, d) * at(j, 1, h, d);
        scores[j] = s * hd ** -0.5;
      }
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const z = e.reduce((a, v) => a + v, 0);
      for (let d = 0; d < hd; d++) {
        let s = 0;
        for (let j = 0; j < T; j++) s += (e[j] / z) * at(j, 2, h, d);
        out[i][h * hd + d] = s;
      }
    }
  }
  return linear(out, get(weights, `${prefix}.proj.weight`), get(weights, `${prefix}.proj.bias`));
}

/** Forward of one image [3][H][W] (channel-major, like one NCHW sample). */
export function plainDeitForward(
  config: PlainDeitConfig,
  weights: NamedWeights,
  image: Float32Array,
): { cls: Float64Array; dist: Float64Array | null } {
  const { imgSize: S, patchSize: P, embedDim: D } = config;
  const grid = S / P;
  const convW = get(weights, 'patch_embed.proj.weight'); // [D, 3, P, P]
  const convB = get(weights, 'patch_embed.proj.bias');
  const tokens: Matrix = [];
  const cls = get(weights, 'cls_token');
  tokens.push(Float64Array.from(cls));
  if (config.distilled) tokens.push(Float64Array.from(get(weights, 'dist_token')));
  for (let gy = 0; gy < grid; gy++) {
    for (let gx = 0; gx < grid; gx++) {
      const v = new Float64Array(D);
      for (let o = 0; o < D; o++) {
        let s = convB[o];
        for (let c = 0; c < 3; c++) {
          for (let ky = 0; ky < P; ky++) {
            for (let kx = 0; kx < P; kx++) {
              const pixel = image[c * S * S + (gy * P + ky) * S + (gx * P + kx)];
              s += convW[((o * 3 + c) * P + ky) * P + kx] * pixel;
            }
          }
        }
        v[o] = s;
      }
      tokens.push(v);
    }
  }
  const pos = get(weights, 'pos_embed');
  let x: Matrix = tokens.map((row, t) => row.map((v, d) => v + pos[t * D + d]));
  for (let i = 0; i < config.depth; i++) {
    const b = `blocks.${i}`;
    const a = attention(
      layerNorm(x, get(weights, `${b}.norm1.weight`), get(weights, `${b}.norm1.bias`)),
      weights,
      `${b}.attn`,
      config.numHeads,
    );
    x = x.map((row, t) => row.map((v, d) => v + a[t][d]));
    const h = linear(
      layerNorm(x, get(weights, `${b}.norm2.weight`), get(weights, `${b}.norm2.bias`)),
      get(weights, `${b}.mlp.fc1.weight`),
      get(weights, `${b}.mlp.fc1.bias`),
    );
    const g = h.map((row) => row.map((v) => 0.5 * v * (1 + erf64(v / Math.SQRT2))));
    const m = linear(g, get(weights, `${b}.mlp.fc2.weight`), get(weights, `${b}.mlp.fc2.bias`));
    x = x.map((row, t) => row.map((v, d) => v + m[t][d]));
  }
  x = layerNorm(x, get(weights, 'norm.weight'), get(weights, 'norm.bias'));
  const head = linear([x[0]], get(weights, 'head.weight'), get(weights, 'head.bias'))[0];
  const dist = config.distilled
    ? linear([x[1]], get(weights, 'head_dist.weight'), get(weights, 'head_dist.bias'))[0]
    : null;
  return { cls: head, dist };
}
