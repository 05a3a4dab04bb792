/** Test fixtures of the model library: random weights, inputs and independent reference forwards. */
export * from './onnx/testing';
export { nativeBuildInstalled } from './native-testing';
