export * from './names';
export * from './export-options';
export * from './graph-builder';
export * from './deit-onnx';
export * from './regnet-onnx';
export * from './read-weights';
export * from './proto/codec';
