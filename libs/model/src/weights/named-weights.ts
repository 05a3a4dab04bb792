/**
 * Weights travel between the tfjs models, safetensors files and ONNX files as a map from the timm
 * state-dict name (e.g. `blocks.0.attn.qkv.weight`) to a host tensor in PyTorch layout
 * (linear weights [out, in], conv weights [out, in, kh, kw]). This is the one contract every model,
 * reader and exporter in this library shares.
 */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type NamedWeights = Map<string, HostTensor>;

export function hostTensor(shape: readonly number[], data: Float32Array): HostTensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== data.length) {
    throw new Error(`tensor of shape [${shape.join(', ')}] needs ${size} values, got ${data.length}`);
  }
  return { shape: [...shape], data };
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
