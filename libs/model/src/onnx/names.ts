/** Graph input and output names of the exported models (transformers.js / HF vocabulary). */
export const OnnxIoName = {
  pixelValues: 'pixel_values',
  /** DeiT: class-token head (`head`). */
  clsLogits: 'cls_logits',
  /** Distilled DeiT: distillation-token head (`head_dist`). */
  distLogits: 'dist_logits',
  /** RegNetY teacher: `head.fc`. */
  logits: 'logits',
} as const;
export type OnnxIoName = (typeof OnnxIoName)[keyof typeof OnnxIoName];

/** Symbolic batch dimension (`dim_param`) of every input and output. */
export const BATCH_DIM = 'batch';

/**
 * Opset 17: the first with LayerNormalization, and it has no Gelu (added in 20), so GELU is written
 * with Erf. IR version 8 is the lowest that allows opset 17 (onnx/docs/Versioning.md); onnxruntime-node
 * 1.30 loads it.
 */
export const ONNX_OPSET_VERSION = 17;
export const ONNX_IR_VERSION = 8;
export const ONNX_PRODUCER_NAME = 'deit-serve';

/** `metadata_props` keys written by the exporters and read back by {@link readOnnxWeights}. */
export const OnnxMetadataKey = {
  architecture: 'architecture',
  preset: 'preset',
  numClasses: 'num_classes',
  imageSize: 'image_size',
  inChans: 'in_chans',
  /** JSON array of the graph output names, in order. */
  outputs: 'outputs',
  // DeiT
  patchSize: 'patch_size',
  embedDim: 'embed_dim',
  depth: 'depth',
  numHeads: 'num_heads',
  mlpRatio: 'mlp_ratio',
  distilled: 'distilled',
  // RegNetY
  stemWidth: 'stem_width',
  stemStride: 'stem_stride',
  stageWidths: 'stage_widths',
  stageDepths: 'stage_depths',
  groupWidth: 'group_width',
  seRatio: 'se_ratio',
  bottleneckRatio: 'bottleneck_ratio',
} as const;
export type OnnxMetadataKey = (typeof OnnxMetadataKey)[keyof typeof OnnxMetadataKey];

export type OnnxArchitecture = 'deit' | 'regnety';
