export * from './weights/named-weights';
export * from './weights/safetensors';
export * from './weights/validate';
export * from './onnx';
