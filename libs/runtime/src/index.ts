export * from './onnx-session';
export * from './dynamic-batcher';
export * from './classifier-runtime';
export { releaseNow } from './release-now';
