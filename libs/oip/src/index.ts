export {
  CLASSIFICATION_PARAMETER,
  HEAD_PARAMETER,
  headOf,
  inferOutputs,
  parseInfer,
  type ParsedInfer,
  type RequestContext,
} from './infer';
export {
  EXTENSIONS,
  OipService,
  refOf,
  UnimplementedError,
  unknownModel,
  type OipOptions,
} from './oip.service';
export {
  BACKEND,
  IMAGE_INPUT,
  inputsOf,
  outputsOf,
  PLATFORM,
  PROBABILITIES_OUTPUT,
  signatureOf,
  type Signature,
  type TensorSpec,
} from './signature';
export { versionStatistics } from './statistics';
export { bytesRaw, fp32Raw, parseBytesRaw, type Datatype } from './tensors';
