import { labelsInOrder, type Manifest } from '@deit-serve/registry';
import type { Datatype } from './tensors';

/** The BYTES input: encoded images (PNG, JPEG, WebP…), one per batch item, preprocessed per the manifest. */
export const IMAGE_INPUT = 'image';
/** The chosen head's softmax (request parameter `head`: cls, dist or avg). */
export const PROBABILITIES_OUTPUT = 'probabilities';
/** Triton's platform name of an ONNX model served by onnxruntime. */
export const PLATFORM = 'onnxruntime_onnx';
export const BACKEND = 'onnxruntime';

export interface TensorSpec {
  name: string;
  datatype: Datatype;
  /** Without the batch dimension (the protocol's shapes put -1 in front: max_batch_size > 0). */
  dims: number[];
}

/**
 * What a model version takes and gives on the Open Inference Protocol, read from its manifest: the
 * preprocessed FP32 tensor under its ONNX input name or encoded images under `image` (exactly one of
 * the two per request); both heads' logits under their ONNX output names and the chosen head's
 * probabilities.
 */
export interface Signature {
  /** The FP32 input (the ONNX graph's input name, e.g. `pixel_values`). */
  pixels: TensorSpec;
  image: TensorSpec;
  cls: TensorSpec;
  /** Absent for a model without a distillation head. */
  dist?: TensorSpec;
  probabilities: TensorSpec;
  labels: readonly string[];
}

const signatures = new WeakMap<Manifest, Signature>();

/**
 * The signature of a manifest, made once per manifest object (a loaded version keeps its manifest, so
 * ModelInfer does not re-sort a thousand labels per call). Callers must not modify it.
 */
export function signatureOf(manifest: Manifest): Signature {
  let signature = signatures.get(manifest);
  if (signature === undefined) {
    signature = readSignature(manifest);
    signatures.set(manifest, signature);
  }
  return signature;
}

function readSignature(manifest: Manifest): Signature {
  const { input, outputs } = manifest;
  const labels = labelsInOrder(manifest.labels);
  const classes = [labels.length];
  return {
    pixels: {
      name: input.name,
      datatype: 'FP32',
      dims: [input.channels, input.image_size, input.image_size],
    },
    image: { name: IMAGE_INPUT, datatype: 'BYTES', dims: [1] },
    cls: { name: outputs.cls, datatype: 'FP32', dims: classes },
    ...(outputs.dist ? { dist: { name: outputs.dist, datatype: 'FP32' as const, dims: classes } } : {}),
    probabilities: { name: PROBABILITIES_OUTPUT, datatype: 'FP32', dims: classes },
    labels,
  };
}

export function inputsOf(s: Signature): TensorSpec[] {
  return [s.pixels, s.image];
}

export function outputsOf(s: Signature): TensorSpec[] {
  return [s.cls, ...(s.dist ? [s.dist] : []), s.probabilities];
}
