/**
 * DeiT → ONNX, following timm `vision_transformer.py` / `deit.py` (eval mode, no dropout):
 * patch conv → [cls, (dist,) patches] + pos_embed → pre-norm blocks → norm → heads on tokens 0 (and 1).
 *
 * Linear layers keep the timm [out, in] weight as the initializer. On token tensors ([B, T, D]) they
 * are `Transpose(W) → MatMul → Add(bias)` (onnxruntime folds the transpose of a constant at load);
 * on the 2-D head input they are `Gemm(transB = 1)`.
 *
 * Outputs: distilled models give `cls_logits` and `dist_logits`; plain DeiT gives `cls_logits` only.
 * Neither is averaged here — the caller picks CLS, DIST or their mean (timm's eval output is the
 * mean of the two logits).
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

/** The architecture numbers an exporter needs; a DeiT preset record maps onto it field by field. */
export interface DeitOnnxConfig {
  readonly embedDim: number;
  readonly depth: number;
  readonly numHeads: number;
  /** MLP hidden size = trunc(embedDim × mlpRatio), as timm's `int(dim * mlp_ratio)`. */
  readonly mlpRatio: number;
  readonly patchSize: number;
  /** Square input side in pixels. */
  readonly imgSize: number;
  readonly numClasses: number;
  /** Has `dist_token` and `head_dist` (DeiT⚗). */
  readonly distilled: boolean;
  readonly inChans?: number;
}

/** timm's LayerNorm eps for ViT/DeiT. */
export const DEIT_LAYER_NORM_EPS = 1e-6;

export function deitMlpHiddenDim(config: DeitOnnxConfig): number {
  return Math.trunc(config.embedDim * config.mlpRatio);
}

export function deitNumPatches(config: DeitOnnxConfig): number {
  return (config.imgSize / config.patchSize) ** 2;
}

/** Every timm state-dict name of the model with its shape, in state-dict order. */
export function deitOnnxWeightShapes(config: DeitOnnxConfig): Map<string, number[]> {
  checkDeitConfig(config);
  const { embedDim: d, numClasses: c, patchSize: p } = config;
  const h = deitMlpHiddenDim(config);
  const prefix = config.distilled ? 2 : 1;
  const shapes = new Map<string, number[]>();
  shapes.set('cls_token', [1, 1, d]);
  if (config.distilled) shapes.set('dist_token', [1, 1, d]);
  shapes.set('pos_embed', [1, deitNumPatches(config) + prefix, d]);
  shapes.set('patch_embed.proj.weight', [d, config.inChans ?? 3, p, p]);
  shapes.set('patch_embed.proj.bias', [d]);
  for (let i = 0; i < config.depth; i++) {
    const b = `blocks.${i}`;
    shapes.set(`${b}.norm1.weight`, [d]);
    shapes.set(`${b}.norm1.bias`, [d]);
    shapes.set(`${b}.attn.qkv.weight`, [3 * d, d]);
    shapes.set(`${b}.attn.qkv.bias`, [3 * d]);
    shapes.set(`${b}.attn.proj.weight`, [d, d]);
    shapes.set(`${b}.attn.proj.bias`, [d]);
    shapes.set(`${b}.norm2.weight`, [d]);
    shapes.set(`${b}.norm2.bias`, [d]);
    shapes.set(`${b}.mlp.fc1.weight`, [h, d]);
    shapes.set(`${b}.mlp.fc1.bias`, [h]);
    shapes.set(`${b}.mlp.fc2.weight`, [d, h]);
    shapes.set(`${b}.mlp.fc2.bias`, [d]);
  }
  shapes.set('norm.weight', [d]);
  shapes.set('norm.bias', [d]);
  shapes.set('head.weight', [c, d]);
  shapes.set('head.bias', [c]);
  if (config.distilled) {
    shapes.set('head_dist.weight', [c, d]);
    shapes.set('head_dist.bias', [c]);
  }
  return shapes;
}

export function exportDeitOnnx(
  config: DeitOnnxConfig,
  weights: NamedWeights,
  options: OnnxExportOptions = {},
): Uint8Array {
  checkWeights(
    weights,
    deitOnnxWeightShapes(config),
    `DeiT ONNX export${options.preset ? ` (${options.preset})` : ''}`,
  );
  const graph = buildDeitGraph(config, weights);
  const outputs = config.distilled ? [OnnxIoName.clsLogits, OnnxIoName.distLogits] : [OnnxIoName.clsLogits];
  const own: Record<string, string> = {
    [OnnxMetadataKey.architecture]: 'deit',
    ...(options.preset !== undefined ? { [OnnxMetadataKey.preset]: options.preset } : {}),
    [OnnxMetadataKey.numClasses]: String(config.numClasses),
    [OnnxMetadataKey.imageSize]: String(config.imgSize),
    [OnnxMetadataKey.inChans]: String(config.inChans ?? 3),
    [OnnxMetadataKey.patchSize]: String(config.patchSize),
    [OnnxMetadataKey.embedDim]: String(config.embedDim),
    [OnnxMetadataKey.depth]: String(config.depth),
    [OnnxMetadataKey.numHeads]: String(config.numHeads),
    [OnnxMetadataKey.mlpRatio]: String(config.mlpRatio),
    [OnnxMetadataKey.distilled]: String(config.distilled),
    [OnnxMetadataKey.outputs]: JSON.stringify(outputs),
  };
  return encodeModel(
    buildModel(graph, {
      irVersion: ONNX_IR_VERSION,
      opsetVersion: ONNX_OPSET_VERSION,
      producerName: ONNX_PRODUCER_NAME,
      producerVersion: options.producerVersion,
      docString: options.docString,
      metadata: mergeMetadata(own, options.metadata),
    }),
  );
}

function checkDeitConfig(config: DeitOnnxConfig): void {
  const { embedDim, depth, numHeads, patchSize, imgSize, numClasses } = config;
  const positive = {
    embedDim,
    depth,
    numHeads,
    patchSize,
    imgSize,
    numClasses,
    inChans: config.inChans ?? 3,
  };
  for (const [k, v] of Object.entries(positive)) {
    if (!Number.isSafeInteger(v) || v <= 0)
      throw new Error(`DeiT config: ${k} must be a positive integer, got ${v}`);
  }
  if (!(config.mlpRatio > 0) || deitMlpHiddenDim(config) <= 0)
    throw new Error(`DeiT config: bad mlpRatio ${config.mlpRatio}`);
  if (embedDim % numHeads !== 0)
    throw new Error(`DeiT config: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`);
  if (imgSize % patchSize !== 0)
    throw new Error(`DeiT config: imgSize ${imgSize} is not divisible by patchSize ${patchSize}`);
}

function buildDeitGraph(
  config: DeitOnnxConfig,
  weights: NamedWeights,
): ReturnType<OnnxGraphBuilder['build']> {
  const g = new OnnxGraphBuilder('deit');
  const { embedDim: d, numHeads, patchSize: p, imgSize, numClasses } = config;
  const headDim = d / numHeads;
  const n = deitNumPatches(config);

  const w = (name: string): string =>
    g.has(name) ? name : g.addInitializer(name, weights.get(name) ?? missing(name));
  const linear3d = (x: string, prefix: string): string => {
    const wT = g.op(
      'Transpose',
      [w(`${prefix}.weight`)],
      { perm: { ints: [1, 0] } },
      { name: `/${prefix}/Transpose` },
    );
    const y = g.op('MatMul', [x, wT], {}, { name: `/${prefix}/MatMul` });
    return g.op('Add', [y, w(`${prefix}.bias`)], {}, { name: `/${prefix}/Add` });
  };
  const layerNorm = (x: string, prefix: string): string =>
    g.op(
      'LayerNormalization',
      [x, w(`${prefix}.weight`), w(`${prefix}.bias`)],
      { axis: { int: -1 }, epsilon: { float: DEIT_LAYER_NORM_EPS } },
      { name: `/${prefix}/LayerNormalization` },
    );
  // Exact GELU, x · ½ · (1 + erf(x/√2)), in the node order torch.onnx emits so onnxruntime fuses it.
  const gelu = (x: string, scope: string): string => {
    const scaled = g.op('Div', [x, g.constFloat([Math.SQRT2])], {}, { name: `/${scope}/Div` });
    const erf = g.op('Erf', [scaled], {}, { name: `/${scope}/Erf` });
    const onePlus = g.op('Add', [erf, g.constFloat([1])], {}, { name: `/${scope}/Add` });
    const times = g.op('Mul', [x, onePlus], {}, { name: `/${scope}/Mul` });
    return g.op('Mul', [times, g.constFloat([0.5])], {}, { name: `/${scope}/Mul_1` });
  };

  const pixels = g.addInput(OnnxIoName.pixelValues, TensorProto_DataType.FLOAT, [
    BATCH_DIM,
    config.inChans ?? 3,
    imgSize,
    imgSize,
  ]);

  // Patch embedding: [B, C, H, W] → [B, D, H/P, W/P] → [B, N, D] (patches row-major, like flatten(2)).
  const conv = g.op(
    'Conv',
    [pixels, w('patch_embed.proj.weight'), w('patch_embed.proj.bias')],
    { kernel_shape: { ints: [p, p] }, strides: { ints: [p, p] } },
    { name: '/patch_embed/proj/Conv' },
  );
  const flat = g.op('Reshape', [conv, g.constInt64([0, d, n])], {}, { name: '/patch_embed/Reshape' });
  const patches = g.op(
    'Transpose',
    [flat],
    { perm: { ints: [0, 2, 1] } },
    { name: '/patch_embed/Transpose' },
  );

  // Prefix tokens broadcast to the batch: Expand([1, 1, D], [B, 1, 1]).
  const batch = g.op('Shape', [pixels], { start: { int: 0 }, end: { int: 1 } }, { name: '/Shape' });
  const expandShape = g.op(
    'Concat',
    [batch, g.constInt64([1, 1])],
    { axis: { int: 0 } },
    { name: '/Concat' },
  );
  const tokens = [g.op('Expand', [w('cls_token'), expandShape], {}, { name: '/cls_token/Expand' })];
  if (config.distilled)
    tokens.push(g.op('Expand', [w('dist_token'), expandShape], {}, { name: '/dist_token/Expand' }));
  const joined = g.op('Concat', [...tokens, patches], { axis: { int: 1 } }, { name: '/Concat_tokens' });
  let x = g.op('Add', [joined, w('pos_embed')], {}, { name: '/pos_embed/Add' });

  const qkvShape = g.constInt64([0, 0, 3, numHeads, headDim]);
  const mergedShape = g.constInt64([0, 0, d]);
  const scale = g.constFloat([headDim ** -0.5]);
  for (let i = 0; i < config.depth; i++) {
    const b = `blocks.${i}`;
    // Attention: qkv [B, T, 3D] → [B, T, 3, heads, hd] → [3, B, heads, T, hd], as timm's reshape/permute.
    const h = layerNorm(x, `${b}.norm1`);
    const qkv = linear3d(h, `${b}.attn.qkv`);
    const split = g.op(
      'Transpose',
      [g.op('Reshape', [qkv, qkvShape], {}, { name: `/${b}/attn/Reshape` })],
      { perm: { ints: [2, 0, 3, 1, 4] } },
      { name: `/${b}/attn/Transpose` },
    );
    const [q, k, v] = [0, 1, 2].map((j) =>
      g.op(
        'Gather',
        [split, g.constInt64([j], [])],
        { axis: { int: 0 } },
        { name: `/${b}/attn/Gather_${j}` },
      ),
    );
    const qScaled = g.op('Mul', [q, scale], {}, { name: `/${b}/attn/Mul` });
    const kT = g.op('Transpose', [k], { perm: { ints: [0, 1, 3, 2] } }, { name: `/${b}/attn/Transpose_k` });
    const scores = g.op('MatMul', [qScaled, kT], {}, { name: `/${b}/attn/MatMul` });
    const probs = g.op('Softmax', [scores], { axis: { int: -1 } }, { name: `/${b}/attn/Softmax` });
    const ctx = g.op('MatMul', [probs, v], {}, { name: `/${b}/attn/MatMul_1` });
    const ctxT = g.op(
      'Transpose',
      [ctx],
      { perm: { ints: [0, 2, 1, 3] } },
      { name: `/${b}/attn/Transpose_1` },
    );
    const merged = g.op('Reshape', [ctxT, mergedShape], {}, { name: `/${b}/attn/Reshape_1` });
    x = g.op('Add', [x, linear3d(merged, `${b}.attn.proj`)], {}, { name: `/${b}/Add` });

    const h2 = layerNorm(x, `${b}.norm2`);
    const mlp = linear3d(gelu(linear3d(h2, `${b}.mlp.fc1`), `${b}/mlp/act`), `${b}.mlp.fc2`);
    x = g.op('Add', [x, mlp], {}, { name: `/${b}/Add_1` });
  }
  x = layerNorm(x, 'norm');

  const head = (token: number, prefix: string, output: string): void => {
    const t = g.op(
      'Gather',
      [x, g.constInt64([token], [])],
      { axis: { int: 1 } },
      { name: `/${prefix}/Gather` },
    );
    g.op(
      'Gemm',
      [t, w(`${prefix}.weight`), w(`${prefix}.bias`)],
      { transB: { int: 1 } },
      { name: `/${prefix}/Gemm`, outputs: [output] },
    );
    g.addOutput(output, TensorProto_DataType.FLOAT, [BATCH_DIM, numClasses]);
  };
  head(0, 'head', OnnxIoName.clsLogits);
  if (config.distilled) head(1, 'head_dist', OnnxIoName.distLogits);
  return g.build();
}

function missing(name: string): never {
  throw new Error(`weight "${name}" is missing`);
}
