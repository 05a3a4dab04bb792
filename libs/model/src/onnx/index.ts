export * from './names';
export * from './export-options';
export * from './graph-builder';
export * from './deit-onnx';
export * from './regnet-onnx';
export * from './read-weights';
export { encodeModel, encodeTensor } from './proto/encode';
export { decodeModel, decodeTensor, OnnxDecodeError } from './proto/decode';
export * from './proto/onnx-proto';
