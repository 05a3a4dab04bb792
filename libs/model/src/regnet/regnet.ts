/**
 * RegNetY in TensorFlow.js, trainable on the wasm backend (see layers.ts for how).
 *
 *   stem: conv 3×3 (stride 2; 1 in small-image presets) → BN → ReLU
 *   block: conv1 1×1 → BN → ReLU → conv2 3×3 grouped (stride 2 in b1) → BN → ReLU → SE
 *          → conv3 1×1 → BN, + shortcut (downsample 1×1 stride s → BN when shape changes) → ReLU
 *   SE: mean over H, W → fc1 (1×1 conv, bias) → ReLU → fc2 (1×1 conv, bias) → sigmoid → multiply
 *   head: global average pool → `head.fc`
 *
 * Weights carry timm's state-dict names and PyTorch layouts in `getWeights`/`setWeights`; the
 * variables hold 1×1 convs and linears as [in, out] and 3×3 convs as the groups' HWIO kernels
 * stacked on the first axis, [groups·kh, kw, in/groups, out/groups].
 * `num_batches_tracked` is not kept (it only matters for BatchNorm with momentum None); such keys
 * are ignored by `setWeights`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed, Rng } from '@deit-serve/core';
import { hostTensor, numel, type HostTensor, type NamedWeights } from '../weights/named-weights';
import { checkWeights } from '../weights/validate';
import {
  batchNorm,
  conv3x3,
  conv3x3NoInputGrad,
  globalAvgPool,
  linear,
  linearBias,
  relu,
  squeezeExcite,
  subsample2,
  type BatchNormParams,
} from './layers';
import {
  getRegNetPreset,
  isRegNetPresetName,
  numFeatures,
  regnetBlocks,
  validateRegNetConfig,
  type RegNetBlock,
  type RegNetConfig,
  type RegNetPresetName,
} from './presets';

// ---------------------------------------------------------------------------------------------
// Parameter specs

export type RegNetParameterKind =
  'conv.weight' | 'bn.weight' | 'bn.bias' | 'se.weight' | 'se.bias' | 'fc.weight' | 'fc.bias';

export type RegNetBufferKind = 'bn.running_mean' | 'bn.running_var';

export interface RegNetTensorSpec<K extends string = RegNetParameterKind | RegNetBufferKind> {
  /** timm state-dict name. */
  readonly name: string;
  /** PyTorch shape. */
  readonly shape: readonly number[];
  readonly kind: K;
  /** Groups of a conv weight (1 except conv2). */
  readonly groups?: number;
}

export type RegNetParameterSpec = RegNetTensorSpec<RegNetParameterKind>;
export type RegNetBufferSpec = RegNetTensorSpec<RegNetBufferKind>;

type ConfigOrPreset = RegNetConfig | RegNetPresetName;

function resolve(config: ConfigOrPreset): RegNetConfig {
  if (typeof config !== 'string') return config;
  if (!isRegNetPresetName(config)) throw new Error(`unknown RegNet preset "${String(config)}"`);
  return getRegNetPreset(config);
}

/** Every tensor of the state dict (parameters and BN running statistics) in timm order. */
export function stateShapes(config: ConfigOrPreset): RegNetTensorSpec[] {
  const cfg = resolve(config);
  validateRegNetConfig(cfg);
  const specs: RegNetTensorSpec[] = [];
  const add = (
    name: string,
    shape: number[],
    kind: RegNetParameterKind | RegNetBufferKind,
    groups?: number,
  ): void => {
    specs.push(groups === undefined ? { name, shape, kind } : { name, shape, kind, groups });
  };
  const convBn = (prefix: string, out: number, inPerGroup: number, k: number, groups = 1): void => {
    add(`${prefix}.conv.weight`, [out, inPerGroup, k, k], 'conv.weight', groups);
    add(`${prefix}.bn.weight`, [out], 'bn.weight');
    add(`${prefix}.bn.bias`, [out], 'bn.bias');
    add(`${prefix}.bn.running_mean`, [out], 'bn.running_mean');
    add(`${prefix}.bn.running_var`, [out], 'bn.running_var');
  };
  convBn('stem', cfg.stemWidth, cfg.inChans, 3);
  for (const b of regnetBlocks(cfg)) {
    convBn(`${b.name}.conv1`, b.bottleneckChs, b.inChs, 1);
    convBn(`${b.name}.conv2`, b.bottleneckChs, b.bottleneckChs / b.groups, 3, b.groups);
    if (b.seChs > 0) {
      add(`${b.name}.se.fc1.weight`, [b.seChs, b.bottleneckChs, 1, 1], 'se.weight');
      add(`${b.name}.se.fc1.bias`, [b.seChs], 'se.bias');
      add(`${b.name}.se.fc2.weight`, [b.bottleneckChs, b.seChs, 1, 1], 'se.weight');
      add(`${b.name}.se.fc2.bias`, [b.bottleneckChs], 'se.bias');
    }
    convBn(`${b.name}.conv3`, b.outChs, b.bottleneckChs, 1);
    if (b.downsample) convBn(`${b.name}.downsample`, b.outChs, b.inChs, 1);
  }
  add('head.fc.weight', [cfg.numClasses, numFeatures(cfg)], 'fc.weight');
  add('head.fc.bias', [cfg.numClasses], 'fc.bias');
  return specs;
}

const isBuffer = (spec: RegNetTensorSpec): spec is RegNetBufferSpec =>
  spec.kind === 'bn.running_mean' || spec.kind === 'bn.running_var';

/** Trainable parameters (what timm counts), in state-dict order. */
export function parameterShapes(config: ConfigOrPreset): RegNetParameterSpec[] {
  return stateShapes(config).filter((s): s is RegNetParameterSpec => !isBuffer(s));
}

/** BatchNorm running statistics. */
export function bufferShapes(config: ConfigOrPreset): RegNetBufferSpec[] {
  return stateShapes(config).filter(isBuffer);
}

/** Trainable parameters, like `sum(p.numel() for p in model.parameters())` in timm. */
export function countParameters(config: ConfigOrPreset): number {
  return parameterShapes(config).reduce((total, spec) => total + numel(spec.shape), 0);
}

/** timm's default weight-decay exclusion (parameters with ndim ≤ 1): BatchNorm and biases. */
export function isNoWeightDecay(name: string): boolean {
  return name.endsWith('.bias') || /\.bn\.weight$/.test(name);
}

// ---------------------------------------------------------------------------------------------
// Initialisation

export interface RegNetInitOptions {
  readonly seed?: number;
  /**
   * Zero the last BN of each block (conv3.bn.weight), timm's default (`zero_init_last=True`), so
   * every block starts as its shortcut. Default true.
   */
  readonly zeroInitLast?: boolean;
}

/**
 * Weights initialised as timm's `_init_weights`: conv weights normal(0, √(2 / fan_out)) with
 * fan_out = kh·kw·out/groups (the SE 1×1 convs included, their biases zero), BatchNorm weight 1,
 * bias 0, running mean 0 and var 1, `head.fc` normal(0, 0.01) with zero bias. Each tensor draws from
 * its own stream seeded by (seed, name), so the values do not depend on creation order; they are not
 * PyTorch's random numbers.
 */
export function initRegNetWeights(config: ConfigOrPreset, options: RegNetInitOptions = {}): NamedWeights {
  const seed = options.seed ?? 0;
  const zeroInitLast = options.zeroInitLast ?? true;
  const weights: NamedWeights = new Map();
  const normal = (name: string, size: number, std: number): Float32Array => {
    const rng = Rng.fromUint32(deriveSeed(seed, name));
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++) data[i] = std * rng.normal();
    return data;
  };
  for (const spec of stateShapes(config)) {
    const size = numel(spec.shape);
    let data: Float32Array;
    switch (spec.kind) {
      case 'conv.weight':
      case 'se.weight': {
        const [out, , kh, kw] = spec.shape;
        data = normal(spec.name, size, Math.sqrt(2 / ((kh * kw * out) / (spec.groups ?? 1))));
        break;
      }
      case 'fc.weight':
        data = normal(spec.name, size, 0.01);
        break;
      case 'bn.weight':
        data = new Float32Array(size).fill(zeroInitLast && spec.name.endsWith('.conv3.bn.weight') ? 0 : 1);
        break;
      case 'bn.running_var':
        data = new Float32Array(size).fill(1);
        break;
      case 'bn.bias':
      case 'bn.running_mean':
      case 'se.bias':
      case 'fc.bias':
        data = new Float32Array(size);
        break;
    }
    weights.set(spec.name, hostTensor(spec.shape, data));
  }
  return weights;
}

// ---------------------------------------------------------------------------------------------
// Layout conversion between PyTorch and the variables

/** Shape of the tfjs variable holding a tensor. */
function internalShape(spec: RegNetTensorSpec): number[] {
  const s = spec.shape;
  switch (spec.kind) {
    case 'conv.weight': {
      // [out, in/g, kh, kw] → 1×1: [in, out]; k×k: [g·kh, kw, in/g, out/g] (see layers.ts)
      if (s[2] === 1 && s[3] === 1) return [s[1], s[0]];
      const g = spec.groups ?? 1;
      return [g * s[2], s[3], s[1], s[0] / g];
    }
    case 'se.weight':
    case 'fc.weight':
      return [s[1], s[0]];
    default:
      return [...s];
  }
}

/** Permutes `data` of shape `shape` by `perm` (output axis i = input axis perm[i]). */
function permute(data: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStrides = new Array<number>(rank);
  let stride = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = stride;
    stride *= shape[i];
  }
  const strides = perm.map((p) => inStrides[p]);
  const out = new Float32Array(data.length);
  const index = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let offset = 0;
    for (let i = 0; i < rank; i++) offset += index[i] * strides[i];
    out[o] = data[offset];
    for (let i = rank - 1; i >= 0; i--) {
      if (++index[i] < outShape[i]) break;
      index[i] = 0;
    }
  }
  return out;
}

function toInternal(spec: RegNetTensorSpec, data: Float32Array): Float32Array {
  const s = spec.shape;
  switch (spec.kind) {
    case 'conv.weight': {
      if (s[2] === 1 && s[3] === 1) return permute(data, [s[0], s[1]], [1, 0]);
      const g = spec.groups ?? 1;
      // [g, out/g, in/g, kh, kw] → [g, kh, kw, in/g, out/g]
      return permute(data, [g, s[0] / g, s[1], s[2], s[3]], [0, 3, 4, 2, 1]);
    }
    case 'se.weight':
    case 'fc.weight':
      return permute(data, [s[0], s[1]], [1, 0]);
    default:
      return data.slice();
  }
}

function toPyTorch(spec: RegNetTensorSpec, data: Float32Array): Float32Array {
  const s = spec.shape;
  switch (spec.kind) {
    case 'conv.weight': {
      if (s[2] === 1 && s[3] === 1) return permute(data, [s[1], s[0]], [1, 0]);
      const g = spec.groups ?? 1;
      // [g, kh, kw, in/g, out/g] → [g, out/g, in/g, kh, kw]
      return permute(data, [g, s[2], s[3], s[1], s[0] / g], [0, 4, 3, 1, 2]);
    }
    case 'se.weight':
    case 'fc.weight':
      return permute(data, [s[1], s[0]], [1, 0]);
    default:
      return data.slice();
  }
}

// ---------------------------------------------------------------------------------------------
// Model

export interface RegNetForwardOptions {
  /** Batch statistics in BatchNorm (and running-statistics updates). Default false. */
  readonly training?: boolean;
  /** Weight of this batch in the running-statistics update of training mode; default 0.1 (PyTorch). */
  readonly bnMomentum?: number;
}

const IGNORED_SUFFIX = '.num_batches_tracked';

/** Checks names and shapes of a full state dict (ignoring `num_batches_tracked`); one error lists all problems. */
export function validateRegNetWeights(
  config: ConfigOrPreset,
  weights: NamedWeights,
  context = 'RegNet',
): void {
  const expected = new Map(stateShapes(config).map((s) => [s.name, s.shape]));
  const relevant: NamedWeights = new Map([...weights].filter(([name]) => !name.endsWith(IGNORED_SUFFIX)));
  checkWeights(relevant, expected, context);
}

interface Slot {
  readonly spec: RegNetTensorSpec;
  readonly variable: tf.Variable;
}

let modelCounter = 0;

export class RegNet {
  readonly config: RegNetConfig;
  private readonly blocks: readonly RegNetBlock[];
  private readonly slots = new Map<string, Slot>();
  private disposed = false;
  /** Momentum of the forward pass in progress (see `RegNetForwardOptions.bnMomentum`). */
  private bnMomentum: number | undefined;

  /** Prefer `createRegNet`. Without `weights` the model is initialised from `seed` (see initRegNetWeights). */
  constructor(config: RegNetConfig, options: { weights?: NamedWeights } & RegNetInitOptions = {}) {
    validateRegNetConfig(config);
    this.config = { ...config };
    this.blocks = regnetBlocks(config);
    const weights = options.weights ?? initRegNetWeights(config, options);
    validateRegNetWeights(config, weights);
    const id = modelCounter++;
    for (const spec of stateShapes(config)) {
      const host = weights.get(spec.name) as HostTensor;
      const variable = tf.tidy(() =>
        tf.variable(
          tf.tensor(toInternal(spec, host.data), internalShape(spec), 'float32'),
          !isBuffer(spec),
          `regnet${id}/${spec.name}`,
        ),
      );
      this.slots.set(spec.name, { spec, variable });
    }
  }

  /** Trainable parameters. */
  get numParameters(): number {
    let total = 0;
    for (const { spec, variable } of this.slots.values()) if (!isBuffer(spec)) total += variable.size;
    return total;
  }

  /** timm name → trainable variable (internal layout, see the file header). */
  namedVariables(): ReadonlyMap<string, tf.Variable> {
    this.assertLive();
    return new Map(
      [...this.slots].filter(([, s]) => !isBuffer(s.spec)).map(([name, s]) => [name, s.variable]),
    );
  }

  /** Copies of all parameters and running statistics in timm names and PyTorch layouts. */
  getWeights(): NamedWeights {
    this.assertLive();
    const weights: NamedWeights = new Map();
    for (const { spec, variable } of this.slots.values()) {
      weights.set(spec.name, hostTensor(spec.shape, toPyTorch(spec, variable.dataSync() as Float32Array)));
    }
    return weights;
  }

  /** Replaces every tensor; throws (and changes nothing) naming every missing, unexpected and mis-shaped key. */
  setWeights(weights: NamedWeights): void {
    this.assertLive();
    validateRegNetWeights(this.config, weights);
    for (const { spec, variable } of this.slots.values()) {
      const host = weights.get(spec.name) as HostTensor;
      tf.tidy(() => variable.assign(tf.tensor(toInternal(spec, host.data), internalShape(spec), 'float32')));
    }
  }

  /**
   * pixel_values [B, 3, H, W] → logits [B, numClasses]. In training mode BatchNorm uses batch
   * statistics and updates the running statistics (a side effect of every training-mode call).
   */
  forward(pixelValues: tf.Tensor4D, options: RegNetForwardOptions = {}): tf.Tensor2D {
    this.assertLive();
    const shape = pixelValues.shape;
    if (shape.length !== 4 || shape[1] !== this.config.inChans) {
      throw new Error(`pixel_values must be [B, ${this.config.inChans}, H, W], got [${shape.join(', ')}]`);
    }
    if (pixelValues.dtype !== 'float32')
      throw new Error(`pixel_values must be float32, got ${pixelValues.dtype}`);
    const training = options.training ?? false;
    this.bnMomentum = options.bnMomentum;
    return tf.tidy(() => {
      const x = tf.transpose(pixelValues, [0, 2, 3, 1]);
      let h = this.convBn(
        conv3x3NoInputGrad(x, this.v('stem.conv.weight') as tf.Tensor4D, {
          stride: this.config.stemStride,
          groups: 1,
        }),
        'stem',
        true,
        training,
      );
      for (const block of this.blocks) h = this.block(h, block, training);
      return linearBias(
        globalAvgPool(h),
        this.v('head.fc.weight') as tf.Tensor2D,
        this.v('head.fc.bias') as tf.Tensor1D,
      );
    });
  }

  /**
   * Precise BatchNorm (as pycls, RegNet's reference trainer, does after training): replaces every
   * running mean and variance by the plain average of the batch statistics over `batches`, computed
   * with the current weights. Training updates the running statistics with a momentum while the
   * weights still move, and data-parallel workers keep their own; this gives the final weights their
   * own statistics. Returns the number of batches used.
   */
  recomputeBatchNormStatistics(batches: Iterable<tf.Tensor4D>): number {
    this.assertLive();
    let k = 0;
    for (const batch of batches) {
      k++;
      // Momentum 1/k makes the running value the mean of the k batch statistics so far.
      tf.dispose(this.forward(batch, { training: true, bnMomentum: 1 / k }));
    }
    return k;
  }

  dispose(): void {
    if (this.disposed) return;
    for (const { variable } of this.slots.values()) variable.dispose();
    this.slots.clear();
    this.disposed = true;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private block(x: tf.Tensor4D, b: RegNetBlock, training: boolean): tf.Tensor4D {
    const n = b.name;
    let h = this.convBn(this.pointwise(x, `${n}.conv1.conv.weight`), `${n}.conv1`, true, training);
    h = this.convBn(
      conv3x3(h, this.v(`${n}.conv2.conv.weight`) as tf.Tensor4D, { stride: b.stride, groups: b.groups }),
      `${n}.conv2`,
      true,
      training,
    );
    if (b.seChs > 0) {
      h = squeezeExcite(h, {
        fc1Weight: this.v(`${n}.se.fc1.weight`) as tf.Tensor2D,
        fc1Bias: this.v(`${n}.se.fc1.bias`) as tf.Tensor1D,
        fc2Weight: this.v(`${n}.se.fc2.weight`) as tf.Tensor2D,
        fc2Bias: this.v(`${n}.se.fc2.bias`) as tf.Tensor1D,
      });
    }
    h = this.convBn(this.pointwise(h, `${n}.conv3.conv.weight`), `${n}.conv3`, false, training);
    let shortcut = x;
    if (b.downsample) {
      const sampled = b.stride === 2 ? subsample2(x) : x;
      shortcut = this.convBn(
        this.pointwise(sampled, `${n}.downsample.conv.weight`),
        `${n}.downsample`,
        false,
        training,
      );
    }
    return relu(tf.add<tf.Tensor4D>(h, shortcut));
  }

  /** 1×1 conv of NHWC x as a 2-D matmul. */
  private pointwise(x: tf.Tensor4D, name: string): tf.Tensor4D {
    const [B, H, W, C] = x.shape;
    const w = this.v(name) as tf.Tensor2D;
    return tf.reshape(linear(tf.reshape(x, [B * H * W, C]), w), [B, H, W, w.shape[1]]);
  }

  private convBn(x: tf.Tensor4D, prefix: string, relu: boolean, training: boolean): tf.Tensor4D {
    const [B, H, W, C] = x.shape;
    const params: BatchNormParams = {
      weight: this.v(`${prefix}.bn.weight`) as tf.Tensor1D,
      bias: this.v(`${prefix}.bn.bias`) as tf.Tensor1D,
      runningMean: this.v(`${prefix}.bn.running_mean`),
      runningVar: this.v(`${prefix}.bn.running_var`),
      ...(this.bnMomentum !== undefined && { momentum: this.bnMomentum }),
    };
    return tf.reshape(batchNorm(tf.reshape(x, [B * H * W, C]), params, relu, training), [B, H, W, C]);
  }

  private v(name: string): tf.Variable {
    const slot = this.slots.get(name);
    if (slot === undefined) throw new Error(`RegNet has no tensor "${name}"`);
    return slot.variable;
  }

  private assertLive(): void {
    if (this.disposed) throw new Error('this RegNet has been disposed');
  }
}

export interface CreateRegNetOptions extends RegNetInitOptions {
  readonly preset?: RegNetPresetName;
  /** Overrides of the preset (e.g. numClasses). */
  readonly config?: Partial<RegNetConfig>;
  readonly weights?: NamedWeights;
}

/** Builds a RegNet from a preset (default regnety_fmnist_28) and optional overrides. */
export function createRegNet(options: CreateRegNetOptions = {}): RegNet {
  const preset = getRegNetPreset(options.preset ?? 'regnety_fmnist_28');
  const config: RegNetConfig = {
    stageWidths: preset.stageWidths,
    stageDepths: preset.stageDepths,
    groupWidth: preset.groupWidth,
    seRatio: preset.seRatio,
    stemWidth: preset.stemWidth,
    stemStride: preset.stemStride,
    numClasses: preset.numClasses,
    imgSize: preset.imgSize,
    inChans: preset.inChans,
    ...options.config,
  };
  return new RegNet(config, {
    weights: options.weights,
    seed: options.seed,
    zeroInitLast: options.zeroInitLast,
  });
}
