/** The one place runtime tests reach the ONNX exporter and its reference forward. */
export { deitOnnxWeightShapes, exportDeitOnnx, OnnxIoName, type DeitOnnxConfig } from '@deit-serve/model';
export { randomPixels, randomWeights, referenceDeitForward } from '@deit-serve/model/testing';
