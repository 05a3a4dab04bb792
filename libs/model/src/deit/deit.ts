/**
 * DeiT (distilled) vision transformer in TensorFlow.js, trainable on the wasm backend.
 *
 * Public API
 * - `createDeit({ preset, weights?, numClasses?, imgSize?, seed? })` → `DeiT`. Without weights the
 *   model is initialised like timm (below) from `seed`. With weights, a different grid size or class
 *   count is adapted first (`adaptDeitWeights`: bicubic `pos_embed` resampling, re-initialised heads).
 *   Call `await initBackend()` (../backend) before creating a model. Training also needs tfjs-core's
 *   stock gradients (Add, Mul, Concat, Reshape, Slice between the custom-gradient blocks), which
 *   Node's CommonJS build of tfjs-core does not register: `await registerGradients()` (../train).
 * - `model.forward(pixelValues [B, 3, H, W] float32 NCHW, { training?, dropPathRate?, dropPathSeed? })`
 *   → `{ cls: [B, C], dist: [B, C] | null }` logits. Stochastic depth only when `training`; rate of
 *   block i is dropPathRate · i / (depth − 1) (timm's linspace), one per-sample mask per branch.
 *   No dropout (DeiT trains with drop 0). The caller owns (and disposes) the returned tensors.
 * - `combineHeads(output, 'cls' | 'dist' | 'average')`: one logits tensor, the heads combined as
 *   `@deit-serve/core`'s `HeadChoice` defines (`average`: the mean of the two heads' logits).
 * - `model.getWeights()` / `model.setWeights(w)`: NamedWeights with timm state-dict names and
 *   PyTorch layouts; setWeights lists every missing, unexpected and mis-shaped key in one error.
 * - `model.namedVariables()`: timm name → tf.Variable for optimisers. Linear weights (and the patch
 *   embedding, as [3·P·P, D]) are held pre-transposed to [in, out], so their gradients are too;
 *   element-wise optimisers do not care. `isNoWeightDecay(name)` gives DeiT's decay exclusions.
 * - `parameterShapes(config)` / `countParameters(config)`: names and PyTorch shapes, no allocation.
 * - `initDeitWeights(config, seed)`: the timm initialisation as host NamedWeights (no tfjs needed).
 * - `model.dispose()` frees the variables.
 *
 * Architecture (timm `VisionTransformerDistilled`): patch embedding (conv k = s = P: that conv on native
 * TensorFlow, patchify + matmul on wasm), tokens [cls, dist, patches] + pos_embed, pre-norm blocks x + Attn(LN(x)),
 * x + MLP(LN(x)) with exact erf GELU and LayerNorm eps 1e-6, final LayerNorm, `head` on token 0 and
 * `head_dist` on token 1. The final LayerNorm is applied to the prefix tokens only: it is per-token,
 * and the patch tokens feed nothing after it.
 *
 * Initialisation (timm `VisionTransformer.init_weights` + `VisionTransformerDistilled`):
 * Linear weights trunc-normal std 0.02 (absolute bounds ±2, as timm's `trunc_normal_`), Linear
 * biases 0, LayerNorm 1 / 0, `pos_embed` and `dist_token` trunc-normal 0.02, `cls_token`
 * normal std 1e-6 (current timm; the DeiT repo's older code used trunc-normal 0.02), patch embedding
 * left at PyTorch's Conv2d default (timm does not touch it): weight and bias U(−1/√fan_in, 1/√fan_in),
 * fan_in = 3·P·P. Every tensor draws from its own stream seeded by (seed, name), so values do not
 * depend on the order of initialisation and the same seed gives the same model everywhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import { AVERAGE_HEAD_WEIGHT, deriveSeed, Rng, type HeadChoice } from '@deit-serve/core';
import { hostTensor, numel, type HostTensor, type NamedWeights } from '../weights/named-weights';
import { layerNorm, linear, linearGelu, patchEmbed, selfAttention } from './layers';
import { type PosEmbedResampling, reinitHeads, resamplePosEmbed, truncNormalTensor } from './pos-embed';
import {
  DEIT_PRESETS,
  gridSize,
  numPrefixTokens,
  validateDeitConfig,
  type DeitConfig,
  type DeitPresetName,
} from './presets';

// ---------------------------------------------------------------------------------------------
// Parameters: names, shapes, layouts

/** How a parameter is initialised, and how its tfjs layout relates to the PyTorch one. */
export type DeitParameterKind =
  | 'cls_token'
  | 'dist_token'
  | 'pos_embed'
  | 'patch_embed.weight'
  | 'patch_embed.bias'
  | 'linear.weight'
  | 'linear.bias'
  | 'norm.weight'
  | 'norm.bias';

export interface DeitParameterSpec {
  /** timm state-dict name. */
  readonly name: string;
  /** PyTorch shape. */
  readonly shape: readonly number[];
  readonly kind: DeitParameterKind;
}

/** Parameters in timm state-dict order. */
export function parameterShapes(config: DeitConfig): DeitParameterSpec[] {
  validateDeitConfig(config);
  const { embedDim: D, patchSize: P, inChans, numClasses: C } = config;
  const hidden = D * config.mlpRatio;
  const tokens = numPrefixTokens(config) + gridSize(config) ** 2;
  const specs: DeitParameterSpec[] = [];
  const add = (name: string, shape: number[], kind: DeitParameterKind): void => {
    specs.push({ name, shape, kind });
  };
  const addLinear = (name: string, inDim: number, outDim: number): void => {
    add(`${name}.weight`, [outDim, inDim], 'linear.weight');
    add(`${name}.bias`, [outDim], 'linear.bias');
  };
  const addNorm = (name: string): void => {
    add(`${name}.weight`, [D], 'norm.weight');
    add(`${name}.bias`, [D], 'norm.bias');
  };
  add('cls_token', [1, 1, D], 'cls_token');
  add('pos_embed', [1, tokens, D], 'pos_embed');
  if (config.distilled) add('dist_token', [1, 1, D], 'dist_token');
  add('patch_embed.proj.weight', [D, inChans, P, P], 'patch_embed.weight');
  add('patch_embed.proj.bias', [D], 'patch_embed.bias');
  for (let i = 0; i < config.depth; i++) {
    addNorm(`blocks.${i}.norm1`);
    addLinear(`blocks.${i}.attn.qkv`, D, 3 * D);
    addLinear(`blocks.${i}.attn.proj`, D, D);
    addNorm(`blocks.${i}.norm2`);
    addLinear(`blocks.${i}.mlp.fc1`, D, hidden);
    addLinear(`blocks.${i}.mlp.fc2`, hidden, D);
  }
  addNorm('norm');
  addLinear('head', D, C);
  if (config.distilled) addLinear('head_dist', D, C);
  return specs;
}

export function countParameters(config: DeitConfig): number {
  return parameterShapes(config).reduce((total, spec) => total + numel(spec.shape), 0);
}

/** DeiT's weight-decay exclusions: tokens, position embedding, biases and norms (timm: ndim ≤ 1). */
export function isNoWeightDecay(name: string): boolean {
  return (
    name === 'cls_token' ||
    name === 'dist_token' ||
    name === 'pos_embed' ||
    name.endsWith('.bias') ||
    /(^|\.)norm\d*\.weight$/.test(name)
  );
}

/** Shape of the tfjs variable holding a parameter. */
function internalShape(spec: DeitParameterSpec): number[] {
  switch (spec.kind) {
    case 'linear.weight':
      return [spec.shape[1], spec.shape[0]];
    case 'patch_embed.weight':
      return [numel(spec.shape.slice(1)), spec.shape[0]];
    case 'cls_token':
    case 'dist_token':
    case 'pos_embed':
    case 'patch_embed.bias':
    case 'linear.bias':
    case 'norm.weight':
    case 'norm.bias':
      return [...spec.shape];
  }
}

function isTransposed(kind: DeitParameterKind): boolean {
  return kind === 'linear.weight' || kind === 'patch_embed.weight';
}

/** Row-major transpose of a [rows, cols] matrix. */
function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c];
  }
  return out;
}

/** PyTorch layout → tfjs variable layout. */
function toInternal(spec: DeitParameterSpec, data: Float32Array): Float32Array {
  if (!isTransposed(spec.kind)) return data;
  const rows = spec.shape[0];
  return transpose2d(data, rows, data.length / rows);
}

/** tfjs variable layout → PyTorch layout (always a fresh array). */
function toPyTorch(spec: DeitParameterSpec, data: Float32Array): Float32Array {
  if (!isTransposed(spec.kind)) return new Float32Array(data);
  const cols = spec.shape[0];
  return transpose2d(data, data.length / cols, cols);
}

// ---------------------------------------------------------------------------------------------
// Initialisation

/** timm initialisation, deterministic in `seed`; see the file header. */
export function initDeitWeights(config: DeitConfig, seed = 0): NamedWeights {
  const weights: NamedWeights = new Map();
  const patchFanIn = config.inChans * config.patchSize * config.patchSize;
  for (const spec of parameterShapes(config)) weights.set(spec.name, initParameter(spec, seed, patchFanIn));
  return weights;
}

function initParameter(spec: DeitParameterSpec, seed: number, patchFanIn: number): HostTensor {
  const size = numel(spec.shape);
  const streamSeed = deriveSeed(seed, spec.name);
  switch (spec.kind) {
    case 'linear.weight':
    case 'pos_embed':
    case 'dist_token':
      return truncNormalTensor(spec.shape, 0.02, streamSeed);
    case 'cls_token': {
      const rng = Rng.fromUint32(streamSeed);
      return hostTensor(
        spec.shape,
        Float32Array.from({ length: size }, () => 1e-6 * rng.normal()),
      );
    }
    case 'patch_embed.weight':
    case 'patch_embed.bias': {
      // PyTorch Conv2d default: kaiming_uniform(a=√5) for the weight, U(±1/√fan_in) for the bias.
      const bound = 1 / Math.sqrt(patchFanIn);
      const rng = Rng.fromUint32(streamSeed);
      return hostTensor(
        spec.shape,
        Float32Array.from({ length: size }, () => rng.uniform(-bound, bound)),
      );
    }
    case 'norm.weight':
      return hostTensor(spec.shape, new Float32Array(size).fill(1));
    case 'linear.bias':
    case 'norm.bias':
      return hostTensor(spec.shape, new Float32Array(size));
  }
}

// ---------------------------------------------------------------------------------------------
// Weight validation and adaptation

export class DeitWeightsError extends Error {
  constructor(
    readonly missing: readonly string[],
    readonly unexpected: readonly string[],
    readonly misshaped: readonly string[],
  ) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing: ${missing.join(', ')}`);
    if (unexpected.length > 0) parts.push(`unexpected: ${unexpected.join(', ')}`);
    if (misshaped.length > 0) parts.push(`wrong shape: ${misshaped.join('; ')}`);
    super(`DeiT weights do not match the model (${parts.join(' | ')})`);
    this.name = 'DeitWeightsError';
  }
}

/** Throws a DeitWeightsError naming every key that does not match `config`. */
export function validateDeitWeights(config: DeitConfig, weights: NamedWeights): void {
  const specs = parameterShapes(config);
  const expected = new Map(specs.map((s) => [s.name, s]));
  const missing = specs.filter((s) => !weights.has(s.name)).map((s) => s.name);
  const unexpected: string[] = [];
  const misshaped: string[] = [];
  for (const [name, tensor] of weights) {
    const spec = expected.get(name);
    if (spec === undefined) {
      unexpected.push(name);
    } else if (!sameShape(spec.shape, tensor.shape) || tensor.data.length !== numel(spec.shape)) {
      misshaped.push(
        `${name} is [${tensor.shape.join(', ')}] with ${tensor.data.length} values, expected [${spec.shape.join(', ')}]`,
      );
    }
  }
  if (missing.length + unexpected.length + misshaped.length > 0)
    throw new DeitWeightsError(missing, unexpected, misshaped);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Adapts checkpoint weights to `config` where DeiT fine-tuning does: a different `pos_embed` grid is
 * resampled (`resampling`: `timm`, antialiased bicubic as timm loads a checkpoint at another size, by
 * default; or the DeiT repository's plain bicubic), a different class count re-initialises both heads
 * (seeded). Anything else is left for validation to report. `changes` describes what was done.
 */
export function adaptDeitWeights(
  config: DeitConfig,
  weights: NamedWeights,
  seed = 0,
  resampling: PosEmbedResampling = 'timm',
): { weights: NamedWeights; changes: string[] } {
  let adapted = weights;
  const changes: string[] = [];
  const prefix = numPrefixTokens(config);
  const grid = gridSize(config);
  const pos = weights.get('pos_embed');
  if (pos !== undefined && pos.shape.length === 3 && pos.shape[2] === config.embedDim) {
    const oldPatches = pos.shape[1] - prefix;
    if (oldPatches !== grid * grid) {
      adapted = new Map(adapted);
      adapted.set('pos_embed', resamplePosEmbed(pos, grid, grid, prefix, resampling));
      const oldSide = Math.round(Math.sqrt(oldPatches));
      changes.push(
        `pos_embed resampled from a ${oldSide}x${oldSide} to a ${grid}x${grid} grid (${resampling} bicubic)`,
      );
    }
  }
  const head = weights.get('head.weight');
  if (head !== undefined && head.shape.length === 2 && head.shape[0] !== config.numClasses) {
    adapted = reinitHeads(adapted, config.numClasses, seed);
    changes.push(`heads re-initialised for ${config.numClasses} classes (checkpoint had ${head.shape[0]})`);
  }
  return { weights: adapted, changes };
}

// ---------------------------------------------------------------------------------------------
// Model

export interface DeitForwardOptions {
  /** Enables stochastic depth. Default false. */
  readonly training?: boolean;
  /** Stochastic-depth rate of the last block (linear from 0 over blocks). Used only when training. */
  readonly dropPathRate?: number;
  /** Seeds this call's drop-path masks; default: the model's own stream (seeded at creation). */
  readonly dropPathSeed?: number;
}

export interface DeitOutput {
  /** Logits of `head` on the cls token, [B, classes]. */
  readonly cls: tf.Tensor2D;
  /** Logits of `head_dist` on the dist token, [B, classes]; null for non-distilled models. */
  readonly dist: tf.Tensor2D | null;
}

/** One logits tensor from the two heads (`@deit-serve/core` heads, in tfjs). Returns a new tensor. */
export function combineHeads(output: DeitOutput, mode: HeadChoice): tf.Tensor2D {
  switch (mode) {
    case 'cls':
      return tf.clone(output.cls);
    case 'dist':
      if (output.dist === null) throw new Error('this DeiT has no distillation head');
      return tf.clone(output.dist);
    case 'average':
      if (output.dist === null) return tf.clone(output.cls);
      return tf.tidy(() => tf.mul(tf.add(output.cls, output.dist as tf.Tensor2D), AVERAGE_HEAD_WEIGHT));
  }
}

interface Parameter {
  readonly spec: DeitParameterSpec;
  readonly variable: tf.Variable;
}

let modelCounter = 0;

export class DeiT {
  readonly config: DeitConfig;
  private readonly params = new Map<string, Parameter>();
  private readonly dropPathRng: Rng;
  private disposed = false;

  /**
   * Prefer `createDeit`. `weights` must match `config` exactly (see adaptDeitWeights); without them
   * the model is initialised from `seed`.
   */
  constructor(config: DeitConfig, options: { weights?: NamedWeights; seed?: number } = {}) {
    validateDeitConfig(config);
    this.config = { ...config };
    const seed = options.seed ?? 0;
    const weights = options.weights ?? initDeitWeights(config, seed);
    validateDeitWeights(config, weights);
    this.dropPathRng = Rng.fromUint32(deriveSeed(seed, 'drop_path'));
    const id = modelCounter++;
    for (const spec of parameterShapes(config)) {
      const host = weights.get(spec.name) as HostTensor;
      const variable = tf.tidy(() =>
        tf.variable(
          tf.tensor(toInternal(spec, host.data), internalShape(spec), 'float32'),
          true,
          `deit${id}/${spec.name}`,
        ),
      );
      this.params.set(spec.name, { spec, variable });
    }
  }

  get numParameters(): number {
    let total = 0;
    for (const { variable } of this.params.values()) total += variable.size;
    return total;
  }

  /** timm name → variable (internal layout, see the file header). */
  namedVariables(): ReadonlyMap<string, tf.Variable> {
    this.assertLive();
    return new Map([...this.params].map(([name, p]) => [name, p.variable]));
  }

  /** Copies of all parameters in timm names and PyTorch layouts. */
  getWeights(): NamedWeights {
    this.assertLive();
    const weights: NamedWeights = new Map();
    for (const { spec, variable } of this.params.values()) {
      const data = variable.dataSync() as Float32Array;
      weights.set(spec.name, hostTensor(spec.shape, toPyTorch(spec, data)));
    }
    return weights;
  }

  /** Replaces every parameter; throws DeitWeightsError (and changes nothing) on any mismatch. */
  setWeights(weights: NamedWeights): void {
    this.assertLive();
    validateDeitWeights(this.config, weights);
    for (const { spec, variable } of this.params.values()) {
      const host = weights.get(spec.name) as HostTensor;
      tf.tidy(() => variable.assign(tf.tensor(toInternal(spec, host.data), internalShape(spec), 'float32')));
    }
  }

  forward(pixelValues: tf.Tensor4D, options: DeitForwardOptions = {}): DeitOutput {
    this.assertLive();
    const { imgSize, embedDim: D, depth, numHeads } = this.config;
    const shape = pixelValues.shape;
    if (shape.length !== 4 || shape[1] !== 3 || shape[2] !== imgSize || shape[3] !== imgSize) {
      throw new Error(`pixel_values must be [B, 3, ${imgSize}, ${imgSize}], got [${shape.join(', ')}]`);
    }
    if (pixelValues.dtype !== 'float32')
      throw new Error(`pixel_values must be float32, got ${pixelValues.dtype}`);
    const B = shape[0];
    const prefix = numPrefixTokens(this.config);
    const T = prefix + gridSize(this.config) ** 2;
    const masks = this.dropPathMasks(B, T, options);

    const outputs = tf.tidy(() => {
      const p = (name: string): tf.Variable => (this.params.get(name) as Parameter).variable;
      const linearOf = (x: tf.Tensor2D, name: string): tf.Tensor2D =>
        linear(x, p(`${name}.weight`) as tf.Tensor2D, p(`${name}.bias`) as tf.Tensor1D);
      const normOf = (x: tf.Tensor2D, name: string): tf.Tensor2D =>
        layerNorm(x, p(`${name}.weight`) as tf.Tensor1D, p(`${name}.bias`) as tf.Tensor1D);
      const residual = (x: tf.Tensor2D, branch: tf.Tensor2D, mask: Float32Array | undefined): tf.Tensor2D =>
        mask === undefined ? tf.add(x, branch) : tf.add(x, tf.mul(branch, tf.tensor2d(mask, [B * T, 1])));

      // Patch embedding and tokens.
      const patches = patchEmbed(
        pixelValues,
        p('patch_embed.proj.weight') as tf.Tensor2D,
        p('patch_embed.proj.bias') as tf.Tensor1D,
        this.config.patchSize,
      );
      const batchZeros = tf.zeros([B, 1, D]);
      // Broadcasting by addition keeps the gradient a single reduction (tile's gradient is a slice loop).
      const prefixTokens = [tf.add(batchZeros, p('cls_token'))];
      if (this.config.distilled) prefixTokens.push(tf.add(batchZeros, p('dist_token')));
      const tokens = tf.concat([...prefixTokens, tf.reshape(patches, [B, T - prefix, D])], 1);
      let x = tf.reshape<tf.Rank.R2>(tf.add(tokens, p('pos_embed')), [B * T, D]);

      const attnShape = { batch: B, tokens: T, heads: numHeads, headDim: D / numHeads };
      for (let i = 0; i < depth; i++) {
        const block = `blocks.${i}`;
        let h = normOf(x, `${block}.norm1`);
        h = selfAttention(
          h,
          p(`${block}.attn.qkv.weight`) as tf.Tensor2D,
          p(`${block}.attn.qkv.bias`) as tf.Tensor1D,
          attnShape,
        );
        x = residual(x, linearOf(h, `${block}.attn.proj`), masks?.[2 * i]);
        h = normOf(x, `${block}.norm2`);
        h = linearGelu(
          h,
          p(`${block}.mlp.fc1.weight`) as tf.Tensor2D,
          p(`${block}.mlp.fc1.bias`) as tf.Tensor1D,
        );
        x = residual(x, linearOf(h, `${block}.mlp.fc2`), masks?.[2 * i + 1]);
      }

      // Final norm on the prefix tokens only, then the heads.
      const prefixFeatures = tf.slice(tf.reshape(x, [B, T, D]), [0, 0, 0], [B, prefix, D]);
      const normed = tf.reshape(normOf(tf.reshape(prefixFeatures, [B * prefix, D]), 'norm'), [B, prefix, D]);
      const token = (index: number): tf.Tensor2D =>
        tf.reshape(tf.slice(normed, [0, index, 0], [B, 1, D]), [B, D]);
      const result = [linearOf(token(0), 'head')];
      if (this.config.distilled) result.push(linearOf(token(1), 'head_dist'));
      return result;
    });
    return { cls: outputs[0], dist: outputs[1] ?? null };
  }

  dispose(): void {
    if (this.disposed) return;
    for (const { variable } of this.params.values()) variable.dispose();
    this.params.clear();
    this.disposed = true;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Per block and branch (attn, mlp): a [B·T] mask of 0 or 1/keep per sample, or undefined. */
  private dropPathMasks(
    B: number,
    T: number,
    options: DeitForwardOptions,
  ): (Float32Array | undefined)[] | undefined {
    const rate = options.training === true ? (options.dropPathRate ?? 0) : 0;
    if (!(rate >= 0 && rate < 1)) throw new Error(`dropPathRate must be in [0, 1), got ${rate}`);
    if (rate === 0) return undefined;
    const rng = options.dropPathSeed === undefined ? this.dropPathRng : Rng.fromUint32(options.dropPathSeed);
    const { depth } = this.config;
    const masks: (Float32Array | undefined)[] = [];
    for (let i = 0; i < depth; i++) {
      const blockRate = depth > 1 ? (rate * i) / (depth - 1) : 0;
      for (let branch = 0; branch < 2; branch++) {
        if (blockRate === 0) {
          masks.push(undefined);
          continue;
        }
        const keep = 1 - blockRate;
        const mask = new Float32Array(B * T);
        for (let b = 0; b < B; b++) {
          const value = rng.float() < keep ? 1 / keep : 0;
          mask.fill(value, b * T, (b + 1) * T);
        }
        masks.push(mask);
      }
    }
    return masks;
  }

  private assertLive(): void {
    if (this.disposed) throw new Error('this DeiT model has been disposed');
  }
}

// ---------------------------------------------------------------------------------------------
// Construction from presets

export interface CreateDeitOptions {
  /** A preset name or a full config. */
  readonly preset: DeitPresetName | DeitConfig;
  /** Checkpoint weights (timm names, PyTorch layout); adapted with adaptDeitWeights. */
  readonly weights?: NamedWeights;
  /** Overrides the preset's class count (heads re-initialised when the weights disagree). */
  readonly numClasses?: number;
  /** Overrides the preset's input size (pos_embed resampled when the weights disagree). */
  readonly imgSize?: number;
  /** Seeds initialisation, re-initialised heads and the drop-path stream. Default 0. */
  readonly seed?: number;
}

export function resolveDeitConfig(
  options: Pick<CreateDeitOptions, 'preset' | 'numClasses' | 'imgSize'>,
): DeitConfig {
  const base = typeof options.preset === 'string' ? DEIT_PRESETS[options.preset] : options.preset;
  if (base === undefined) throw new Error(`unknown DeiT preset ${JSON.stringify(options.preset)}`);
  const config: DeitConfig = {
    imgSize: options.imgSize ?? base.imgSize,
    patchSize: base.patchSize,
    inChans: 3,
    embedDim: base.embedDim,
    depth: base.depth,
    numHeads: base.numHeads,
    mlpRatio: base.mlpRatio,
    numClasses: options.numClasses ?? base.numClasses,
    distilled: base.distilled,
  };
  validateDeitConfig(config);
  return config;
}

export function createDeit(options: CreateDeitOptions): DeiT {
  const config = resolveDeitConfig(options);
  const seed = options.seed ?? 0;
  const weights =
    options.weights === undefined ? undefined : adaptDeitWeights(config, options.weights, seed).weights;
  return new DeiT(config, { weights, seed });
}
