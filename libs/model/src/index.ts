export * from './weights/named-weights';
export * from './weights/safetensors';
export * from './weights/validate';
export * from './onnx';
export * from './deit';
export * from './regnet';
export { describeBackend, initBackend, loadNativeBinding, wasmDistFolder, type BackendName } from './backend';
