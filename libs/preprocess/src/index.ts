export {
  decodeImage,
  DEFAULT_IMAGE_FORMATS,
  sniffFormat,
  type DecodedImage,
  type DecodeOptions,
  type ImageFormat,
} from './decode';
export {
  inputSpecFromManifest,
  INTERPOLATIONS,
  MAX_IMAGE_SIZE,
  validateInputSpec,
  type InputSpec,
  type Interpolation,
  type ManifestInput,
} from './input-spec';
export { PixelBudget } from './pixel-budget';
export {
  DecodeAdmission,
  type DecodeAdmissionOptions,
  type DecodeGate,
  type DecodeLane,
} from './decode-admission';
export {
  evalGeometry,
  evalResizeSize,
  normalizationTable,
  preprocess,
  preprocessInto,
  tensorFromImageBatch,
  tensorLength,
  type EvalGeometry,
  type PixelBatch,
  type RgbImage,
} from './transform';
