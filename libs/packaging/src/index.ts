export {
  packageAndPublish,
  packageModel,
  SELF_CHECK_TOLERANCE,
  type ModelSpec,
  type PackageRequest,
} from './package-model';
export { presetWeights, type PresetWeights, type PresetWeightsRequest } from './presets';
