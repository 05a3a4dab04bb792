import { decodeModel, type TensorProto, TensorProto_DataType } from './codec';

/**
 * The number of trained values an ONNX model stores, what timm and PyTorch call the parameter count
 * (`sum(p.numel() for p in model.parameters())`): the elements of its graph's initializers (dense and
 * sparse), less int64 ones (shapes and indices for Reshape, Slice, Gather, never weights) and the
 * running mean and variance of BatchNormalization nodes (buffers, not parameters). Constants inside
 * nodes are not counted.
 */
export function countOnnxParameters(bytes: Uint8Array): number {
  const graph = decodeModel(bytes).graph;
  if (graph === undefined) return 0;
  const buffers = new Set<string>();
  for (const node of graph.node ?? []) {
    if (node.opType === 'BatchNormalization')
      for (const input of (node.input ?? []).slice(3, 5)) buffers.add(input);
  }
  const elements = (tensor: TensorProto | undefined) =>
    tensor === undefined ||
    tensor.dataType === TensorProto_DataType.INT64 ||
    (tensor.name !== undefined && buffers.has(tensor.name))
      ? 0
      : (tensor.dims ?? []).reduce((a, b) => a * b, 1);
  let total = 0;
  for (const tensor of graph.initializer ?? []) total += elements(tensor);
  for (const sparse of graph.sparseInitializer ?? []) total += elements(sparse.values);
  return total;
}
