/**
 * RegNetY → ONNX, following timm `regnet.py` (eval mode, `Bottleneck` blocks, `conv1x1` downsample):
 *
 *   stem: Conv 3×3 s2 (pad 1; stride `stemStride`, default 2) → BN → ReLU
 *   block: conv1 1×1 → BN → ReLU → conv2 3×3 s(2 in b1) grouped → BN → ReLU → SE → conv3 1×1 → BN,
 *          + shortcut (downsample 1×1 s → BN when channels or stride change, else identity) → ReLU
 *   SE: GlobalAveragePool → fc1 (1×1 conv, bias) → ReLU → fc2 (1×1 conv, bias) → Sigmoid → Mul
 *   head: GlobalAveragePool → Flatten → Gemm(transB) = `head.fc`
 *
 * BatchNormalization keeps timm's four tensors (weight, bias, running_mean, running_var) as
 * initializers; onnxruntime folds them into the convolutions at load.
 */
import { encodeModel, TensorProto_DataType } from './proto/codec';
import { buildModel, OnnxGraphBuilder } from './graph-builder';
import { mergeMetadata, type OnnxExportOptions } from './export-options';
import {
  BATCH_DIM,
  ONNX_IR_VERSION,
  ONNX_OPSET_VERSION,
  ONNX_PRODUCER_NAME,
  OnnxIoName,
  OnnxMetadataKey,
} from './names';
import type { NamedWeights } from '../weights/named-weights';
import { checkWeights } from '../weights/validate';

export interface RegNetYOnnxConfig {
  /** Per-stage output widths, already group-compatible (as in timm after `adjust_widths_groups_comp`). */
  readonly stageWidths: readonly number[];
  readonly stageDepths: readonly number[];
  /** Channels per group of the 3×3 conv; capped at the bottleneck width, as timm does. */
  readonly groupWidth: number;
  readonly numClasses: number;
  /** Square input side in pixels (only recorded in the graph's input shape and metadata). */
  readonly imgSize: number;
  /** Default 32, the stem width of every timm RegNet. */
  readonly stemWidth?: number;
  /** Default 2 (timm). 1 keeps spatial extent for 28–32 px inputs (small-image presets). */
  readonly stemStride?: 1 | 2;
  /** SE bottleneck = round(block input channels × seRatio). Default 0.25 (RegNetY); 0 means no SE. */
  readonly seRatio?: number;
  /** Default 1.0. */
  readonly bottleneckRatio?: number;
  readonly inChans?: number;
}

export const REGNET_DEFAULT_STEM_WIDTH = 32;
export const REGNETY_DEFAULT_SE_RATIO = 0.25;
export const REGNET_DEFAULT_BOTTLENECK_RATIO = 1;
/** PyTorch BatchNorm2d default eps, used by timm's RegNet. */
export const REGNET_BATCH_NORM_EPS = 1e-5;

const BN_TENSORS = ['weight', 'bias', 'running_mean', 'running_var'] as const;

export interface RegNetYBlock {
  /** timm module path, e.g. `s2.b1`. */
  readonly name: string;
  readonly inChs: number;
  readonly outChs: number;
  readonly stride: number;
  readonly bottleneckChs: number;
  readonly groups: number;
  /** 0 when the block has no SE module. */
  readonly seChs: number;
  readonly downsample: boolean;
}

/** The blocks timm builds for the config (stride 2 in the first block of each of ≤ 4 stages). */
export function regnetYBlocks(config: RegNetYOnnxConfig): RegNetYBlock[] {
  checkRegNetConfig(config);
  const seRatio = config.seRatio ?? REGNETY_DEFAULT_SE_RATIO;
  const br = config.bottleneckRatio ?? REGNET_DEFAULT_BOTTLENECK_RATIO;
  const blocks: RegNetYBlock[] = [];
  let prev = config.stemWidth ?? REGNET_DEFAULT_STEM_WIDTH;
  config.stageWidths.forEach((width, s) => {
    const bottleneckChs = pythonRound(width * br);
    const groupSize = Math.min(config.groupWidth, bottleneckChs);
    if (bottleneckChs % groupSize !== 0) {
      throw new Error(
        `RegNetY config: stage ${s + 1} bottleneck width ${bottleneckChs} is not a multiple of group width ${groupSize}`,
      );
    }
    for (let i = 0; i < config.stageDepths[s]; i++) {
      const inChs = i === 0 ? prev : width;
      const stride = i === 0 ? 2 : 1;
      blocks.push({
        name: `s${s + 1}.b${i + 1}`,
        inChs,
        outChs: width,
        stride,
        bottleneckChs,
        groups: bottleneckChs / groupSize,
        seChs: seRatio > 0 ? pythonRound(inChs * seRatio) : 0,
        downsample: inChs !== width || stride !== 1,
      });
    }
    prev = width;
  });
  return blocks;
}

/** Every timm state-dict name with its shape (`num_batches_tracked` excluded: not a weight). */
export function regnetYOnnxWeightShapes(config: RegNetYOnnxConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const convBn = (prefix: string, out: number, inPerGroup: number, k: number): void => {
    shapes.set(`${prefix}.conv.weight`, [out, inPerGroup, k, k]);
    for (const t of BN_TENSORS) shapes.set(`${prefix}.bn.${t}`, [out]);
  };
  const stem = config.stemWidth ?? REGNET_DEFAULT_STEM_WIDTH;
  convBn('stem', stem, config.inChans ?? 3, 3);
  const blocks = regnetYBlocks(config);
  for (const b of blocks) {
    convBn(`${b.name}.conv1`, b.bottleneckChs, b.inChs, 1);
    convBn(`${b.name}.conv2`, b.bottleneckChs, b.bottleneckChs / b.groups, 3);
    if (b.seChs > 0) {
      shapes.set(`${b.name}.se.fc1.weight`, [b.seChs, b.bottleneckChs, 1, 1]);
      shapes.set(`${b.name}.se.fc1.bias`, [b.seChs]);
      shapes.set(`${b.name}.se.fc2.weight`, [b.bottleneckChs, b.seChs, 1, 1]);
      shapes.set(`${b.name}.se.fc2.bias`, [b.bottleneckChs]);
    }
    convBn(`${b.name}.conv3`, b.outChs, b.bottleneckChs, 1);
    if (b.downsample) convBn(`${b.name}.downsample`, b.outChs, b.inChs, 1);
  }
  const features = blocks.length > 0 ? blocks[blocks.length - 1].outChs : stem;
  shapes.set('head.fc.weight', [config.numClasses, features]);
  shapes.set('head.fc.bias', [config.numClasses]);
  return shapes;
}

export function exportRegNetYOnnx(
  config: RegNetYOnnxConfig,
  weights: NamedWeights,
  options: OnnxExportOptions = {},
): Uint8Array {
  checkWeights(
    weights,
    regnetYOnnxWeightShapes(config),
    `RegNetY ONNX export${options.preset ? ` (${options.preset})` : ''}`,
  );
  const own: Record<string, string> = {
    [OnnxMetadataKey.architecture]: 'regnety',
    ...(options.preset !== undefined ? { [OnnxMetadataKey.preset]: options.preset } : {}),
    [OnnxMetadataKey.numClasses]: String(config.numClasses),
    [OnnxMetadataKey.imageSize]: String(config.imgSize),
    [OnnxMetadataKey.inChans]: String(config.inChans ?? 3),
    [OnnxMetadataKey.stemWidth]: String(config.stemWidth ?? REGNET_DEFAULT_STEM_WIDTH),
    [OnnxMetadataKey.stemStride]: String(config.stemStride ?? 2),
    [OnnxMetadataKey.stageWidths]: JSON.stringify(config.stageWidths),
    [OnnxMetadataKey.stageDepths]: JSON.stringify(config.stageDepths),
    [OnnxMetadataKey.groupWidth]: String(config.groupWidth),
    [OnnxMetadataKey.seRatio]: String(config.seRatio ?? REGNETY_DEFAULT_SE_RATIO),
    [OnnxMetadataKey.bottleneckRatio]: String(config.bottleneckRatio ?? REGNET_DEFAULT_BOTTLENECK_RATIO),
    [OnnxMetadataKey.outputs]: JSON.stringify([OnnxIoName.logits]),
  };
  return encodeModel(
    buildModel(buildRegNetGraph(config, weights), {
      irVersion: ONNX_IR_VERSION,
      opsetVersion: ONNX_OPSET_VERSION,
      producerName: ONNX_PRODUCER_NAME,
      producerVersion: options.producerVersion,
      docString: options.docString,
      metadata: mergeMetadata(own, options.metadata),
    }),
  );
}

function buildRegNetGraph(
  config: RegNetYOnnxConfig,
  weights: NamedWeights,
): ReturnType<OnnxGraphBuilder['build']> {
  const g = new OnnxGraphBuilder('regnety');
  const w = (name: string): string => {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`weight "${name}" is missing`);
    return g.addInitializer(name, t);
  };
  const convBn = (x: string, prefix: string, k: number, stride: number, groups: number): string => {
    const pad = Math.floor((stride - 1 + (k - 1)) / 2); // timm get_padding(k, stride, dilation=1)
    const conv = g.op(
      'Conv',
      [x, w(`${prefix}.conv.weight`)],
      {
        kernel_shape: { ints: [k, k] },
        strides: { ints: [stride, stride] },
        pads: { ints: [pad, pad, pad, pad] },
        group: { int: groups },
      },
      { name: `/${prefix}/conv/Conv` },
    );
    return g.op(
      'BatchNormalization',
      [conv, ...BN_TENSORS.map((t) => w(`${prefix}.bn.${t}`))],
      { epsilon: { float: REGNET_BATCH_NORM_EPS } },
      { name: `/${prefix}/bn/BatchNormalization` },
    );
  };
  const relu = (x: string, scope: string): string => g.op('Relu', [x], {}, { name: `/${scope}/Relu` });

  const pixels = g.addInput(OnnxIoName.pixelValues, TensorProto_DataType.FLOAT, [
    BATCH_DIM,
    config.inChans ?? 3,
    config.imgSize,
    config.imgSize,
  ]);
  let x = relu(convBn(pixels, 'stem', 3, config.stemStride ?? 2, 1), 'stem');
  for (const b of regnetYBlocks(config)) {
    const shortcut = x;
    let y = relu(convBn(x, `${b.name}.conv1`, 1, 1, 1), `${b.name}/conv1`);
    y = relu(convBn(y, `${b.name}.conv2`, 3, b.stride, b.groups), `${b.name}/conv2`);
    if (b.seChs > 0) {
      const se = `${b.name}.se`;
      const pooled = g.op('GlobalAveragePool', [y], {}, { name: `/${se}/GlobalAveragePool` });
      const fc1 = g.op(
        'Conv',
        [pooled, w(`${se}.fc1.weight`), w(`${se}.fc1.bias`)],
        { kernel_shape: { ints: [1, 1] } },
        { name: `/${se}/fc1/Conv` },
      );
      const fc2 = g.op(
        'Conv',
        [relu(fc1, `${se}/act`), w(`${se}.fc2.weight`), w(`${se}.fc2.bias`)],
        { kernel_shape: { ints: [1, 1] } },
        { name: `/${se}/fc2/Conv` },
      );
      const gate = g.op('Sigmoid', [fc2], {}, { name: `/${se}/gate/Sigmoid` });
      y = g.op('Mul', [y, gate], {}, { name: `/${se}/Mul` });
    }
    y = convBn(y, `${b.name}.conv3`, 1, 1, 1);
    const skip = b.downsample ? convBn(shortcut, `${b.name}.downsample`, 1, b.stride, 1) : shortcut;
    x = relu(g.op('Add', [y, skip], {}, { name: `/${b.name}/Add` }), `${b.name}/act3`);
  }
  const pooled = g.op('GlobalAveragePool', [x], {}, { name: '/head/global_pool/GlobalAveragePool' });
  const flat = g.op('Flatten', [pooled], { axis: { int: 1 } }, { name: '/head/Flatten' });
  g.op(
    'Gemm',
    [flat, w('head.fc.weight'), w('head.fc.bias')],
    { transB: { int: 1 } },
    { name: '/head/fc/Gemm', outputs: [OnnxIoName.logits] },
  );
  g.addOutput(OnnxIoName.logits, TensorProto_DataType.FLOAT, [BATCH_DIM, config.numClasses]);
  return g.build();
}

function checkRegNetConfig(config: RegNetYOnnxConfig): void {
  const { stageWidths, stageDepths } = config;
  if (stageWidths.length !== stageDepths.length) {
    throw new Error(
      `RegNetY config: ${stageWidths.length} stage widths but ${stageDepths.length} stage depths`,
    );
  }
  if (stageWidths.length === 0 || stageWidths.length > 4) {
    throw new Error(
      `RegNetY config: 1–4 stages supported (output stride 32 without dilation), got ${stageWidths.length}`,
    );
  }
  const ints = {
    groupWidth: config.groupWidth,
    numClasses: config.numClasses,
    imgSize: config.imgSize,
    stemWidth: config.stemWidth ?? REGNET_DEFAULT_STEM_WIDTH,
    inChans: config.inChans ?? 3,
    ...Object.fromEntries(stageWidths.map((v, i) => [`stageWidths[${i}]`, v])),
    ...Object.fromEntries(stageDepths.map((v, i) => [`stageDepths[${i}]`, v])),
  };
  for (const [k, v] of Object.entries(ints)) {
    if (!Number.isSafeInteger(v) || v <= 0)
      throw new Error(`RegNetY config: ${k} must be a positive integer, got ${v}`);
  }
  const seRatio = config.seRatio ?? REGNETY_DEFAULT_SE_RATIO;
  const br = config.bottleneckRatio ?? REGNET_DEFAULT_BOTTLENECK_RATIO;
  if (!(seRatio >= 0)) throw new Error(`RegNetY config: seRatio must be ≥ 0, got ${seRatio}`);
  if (!(br > 0)) throw new Error(`RegNetY config: bottleneckRatio must be > 0, got ${br}`);
}

/** Python 3 `round()` (half to even), which timm uses for channel counts. */
export function pythonRound(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
