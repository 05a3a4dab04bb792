/**
 * Host-side weight surgery for changing resolution or class count. Works on NamedWeights (PyTorch
 * layout) so it applies equally to checkpoints read from safetensors, ONNX export and tfjs models.
 */
import { deriveSeed, Rng } from '@deit-serve/core';
import { hostTensor, type HostTensor, type NamedWeights } from '../weights/named-weights';

/** Keys' cubic-convolution coefficient used by PyTorch's bicubic mode. */
export const BICUBIC_A = -0.75;

function cubicNear(x: number, a: number): number {
  // |x| ≤ 1
  return ((a + 2) * x - (a + 3)) * x * x + 1;
}

function cubicFar(x: number, a: number): number {
  // 1 < |x| < 2
  return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

/**
 * Interpolation matrix [outSize][inSize] of PyTorch `F.interpolate(mode='bicubic',
 * align_corners=False)` along one axis when an output size (not a scale factor) is given:
 * source = (dst + 0.5) · in/out − 0.5, not clamped; the four taps floor(source) − 1 … + 2 are
 * clamped to the border (replicate padding).
 */
export function bicubicMatrix(inSize: number, outSize: number, a = BICUBIC_A): Float64Array[] {
  const scale = inSize / outSize;
  const rows: Float64Array[] = [];
  for (let dst = 0; dst < outSize; dst++) {
    const src = (dst + 0.5) * scale - 0.5;
    const base = Math.floor(src);
    const t = src - base;
    const weights = [cubicFar(t + 1, a), cubicNear(t, a), cubicNear(1 - t, a), cubicFar(2 - t, a)];
    const row = new Float64Array(inSize);
    for (let k = 0; k < 4; k++) {
      const index = Math.min(Math.max(base - 1 + k, 0), inSize - 1);
      row[index] += weights[k];
    }
    rows.push(row);
  }
  return rows;
}

/** Keys' coefficient of PyTorch's antialiased bicubic (`antialias=True`), the same as Pillow's. */
export const BICUBIC_AA_A = -0.5;

function cubicKernel(x: number, a: number): number {
  const ax = Math.abs(x);
  if (ax < 1) return cubicNear(ax, a);
  if (ax < 2) return cubicFar(ax, a);
  return 0;
}

/**
 * Interpolation matrix [outSize][inSize] of PyTorch `F.interpolate(mode='bicubic', antialias=True,
 * align_corners=False)` along one axis (Pillow's separable resampling): the output pixel's centre
 * (dst + 0.5) · in/out is covered by a kernel of support 2 · max(in/out, 1) input pixels, with
 * A = −0.5 and the kernel stretched by in/out when shrinking; taps outside the input are dropped (not
 * clamped) and the remaining weights renormalised to sum to 1.
 */
export function antialiasedBicubicMatrix(inSize: number, outSize: number): Float64Array[] {
  const scale = inSize / outSize;
  const support = 2 * Math.max(scale, 1);
  const invScale = scale >= 1 ? 1 / scale : 1;
  const rows: Float64Array[] = [];
  for (let dst = 0; dst < outSize; dst++) {
    const center = scale * (dst + 0.5);
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const end = Math.min(Math.trunc(center + support + 0.5), inSize);
    const row = new Float64Array(inSize);
    let total = 0;
    for (let j = first; j < end; j++) {
      const w = cubicKernel((j - center + 0.5) * invScale, BICUBIC_AA_A);
      row[j] = w;
      total += w;
    }
    if (total !== 0) for (let j = first; j < end; j++) row[j] /= total;
    rows.push(row);
  }
  return rows;
}

/**
 * How a `pos_embed` grid is resampled to another resolution:
 * - `timm`: what timm computes when it loads a checkpoint at another size (`resample_abs_pos_embed`,
 *   the default of its checkpoint filter): bicubic with antialias (see antialiasedBicubicMatrix);
 * - `deit`: the DeiT repository's fine-tuning code: plain bicubic, A = −0.75 (see bicubicMatrix).
 * The two differ even when enlarging, because the kernels differ.
 */
export type PosEmbedResampling = 'timm' | 'deit';
export const POS_EMBED_RESAMPLINGS: readonly PosEmbedResampling[] = ['timm', 'deit'];

function resamplingMatrix(method: PosEmbedResampling, inSize: number, outSize: number): Float64Array[] {
  switch (method) {
    case 'timm':
      return antialiasedBicubicMatrix(inSize, outSize);
    case 'deit':
      return bicubicMatrix(inSize, outSize);
  }
}

/**
 * Resample a `pos_embed` [1, prefix + g·g, D] to a new grid, returning [1, prefix + newH·newW, D],
 * with `method` (default `timm`, see PosEmbedResampling). The prefix tokens (cls, dist) are copied
 * bit-for-bit. The old grid must be square. Computed in float64, rounded once to float32.
 */
export function resamplePosEmbed(
  posEmbed: HostTensor,
  newGridH: number,
  newGridW: number,
  numPrefixTokens = 2,
  method: PosEmbedResampling = 'timm',
): HostTensor {
  const [one, tokens, dim] = posEmbed.shape;
  if (posEmbed.shape.length !== 3 || one !== 1) {
    throw new Error(`pos_embed must have shape [1, tokens, dim], got [${posEmbed.shape.join(', ')}]`);
  }
  for (const [label, value] of [
    ['newGridH', newGridH],
    ['newGridW', newGridW],
  ] as const) {
    if (!Number.isInteger(value) || value <= 0)
      throw new Error(`${label} must be a positive integer, got ${value}`);
  }
  const oldPatches = tokens - numPrefixTokens;
  const oldSide = Math.round(Math.sqrt(oldPatches));
  if (oldPatches <= 0 || oldSide * oldSide !== oldPatches) {
    throw new Error(
      `pos_embed has ${oldPatches} patch positions after ${numPrefixTokens} prefix tokens, not a square grid`,
    );
  }
  const src = posEmbed.data;
  const out = new Float32Array((numPrefixTokens + newGridH * newGridW) * dim);
  out.set(src.subarray(0, numPrefixTokens * dim), 0);

  const rowsH = resamplingMatrix(method, oldSide, newGridH);
  const rowsW = resamplingMatrix(method, oldSide, newGridW);
  const gridOffset = numPrefixTokens * dim;
  // Along W first: tmp[oy][nx][d], then along H.
  const tmp = new Float64Array(oldSide * newGridW * dim);
  for (let oy = 0; oy < oldSide; oy++) {
    for (let nx = 0; nx < newGridW; nx++) {
      const weights = rowsW[nx];
      const dst = (oy * newGridW + nx) * dim;
      for (let ox = 0; ox < oldSide; ox++) {
        const w = weights[ox];
        if (w === 0) continue;
        const s = gridOffset + (oy * oldSide + ox) * dim;
        for (let d = 0; d < dim; d++) tmp[dst + d] += w * src[s + d];
      }
    }
  }
  const acc = new Float64Array(dim);
  for (let ny = 0; ny < newGridH; ny++) {
    const weights = rowsH[ny];
    for (let nx = 0; nx < newGridW; nx++) {
      acc.fill(0);
      for (let oy = 0; oy < oldSide; oy++) {
        const w = weights[oy];
        if (w === 0) continue;
        const s = (oy * newGridW + nx) * dim;
        for (let d = 0; d < dim; d++) acc[d] += w * tmp[s + d];
      }
      out.set(acc, gridOffset + (ny * newGridW + nx) * dim);
    }
  }
  return hostTensor([1, numPrefixTokens + newGridH * newGridW, dim], out);
}

/** Names of the classifier weights, in state-dict order; `head_dist.*` only in distilled models. */
export const HEAD_PARAMETER_NAMES = [
  'head.weight',
  'head.bias',
  'head_dist.weight',
  'head_dist.bias',
] as const;

/**
 * Re-initialise `head` (and `head_dist` when present) for `numClasses` classes: weights trunc-normal
 * std 0.02 (timm), biases 0. Returns a new map; every other entry is the same HostTensor object.
 */
export function reinitHeads(weights: NamedWeights, numClasses: number, seed: number): NamedWeights {
  if (!Number.isInteger(numClasses) || numClasses <= 0)
    throw new Error(`numClasses must be a positive integer, got ${numClasses}`);
  const head = weights.get('head.weight');
  if (head === undefined || head.shape.length !== 2)
    throw new Error('reinitHeads: weights have no 2-D head.weight');
  const dim = head.shape[1];
  const out: NamedWeights = new Map(weights);
  const prefixes = weights.has('head_dist.weight') ? ['head', 'head_dist'] : ['head'];
  for (const prefix of prefixes) {
    out.set(
      `${prefix}.weight`,
      truncNormalTensor([numClasses, dim], 0.02, deriveSeed(seed, `${prefix}.weight`)),
    );
    out.set(`${prefix}.bias`, hostTensor([numClasses], new Float32Array(numClasses)));
  }
  return out;
}

export function truncNormalTensor(shape: readonly number[], std: number, seed: number): HostTensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const rng = Rng.fromUint32(seed);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = rng.truncNormal(0, std);
  return hostTensor(shape, data);
}
