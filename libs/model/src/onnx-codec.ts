/**
 * The ONNX codec alone (no tfjs): for processes that read ONNX files without building networks, such
 * as the inference service. Import as `@deit-serve/model/onnx-codec`.
 */
export { countOnnxParameters } from './onnx/proto/parameter-count';
export { decodeModel, encodeModel, OnnxDecodeError } from './onnx/proto/codec';
