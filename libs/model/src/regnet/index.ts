/**
 * RegNetY (timm `regnet.py`) in TensorFlow.js: presets, timm-named weights, a model trainable on the
 * wasm backend. Generic names are exported with a RegNet prefix so that they sit beside DeiT's.
 */
export {
  DEFAULT_TEACHER_PRESET,
  getRegNetPreset,
  isRegNetPresetName,
  REGNET_PRESET_NAMES,
  REGNET_PRESETS,
  REGNETY_DESIGNS,
  regnetBlocks,
  regnetStagesFromDesign,
  featureSides as regnetFeatureSides,
  numFeatures as regnetNumFeatures,
  validateRegNetConfig,
  type RegNetBlock,
  type RegNetConfig,
  type RegNetDesign,
  type RegNetInterpolation,
  type RegNetPreprocessing,
  type RegNetPreset,
  type RegNetPresetName,
} from './presets';
export {
  createRegNet,
  initRegNetWeights,
  RegNet,
  validateRegNetWeights,
  bufferShapes as regnetBufferShapes,
  countParameters as countRegNetParameters,
  isNoWeightDecay as isRegNetNoWeightDecay,
  parameterShapes as regnetParameterShapes,
  stateShapes as regnetStateShapes,
  type CreateRegNetOptions,
  type RegNetBufferKind,
  type RegNetBufferSpec,
  type RegNetForwardOptions,
  type RegNetInitOptions,
  type RegNetParameterKind,
  type RegNetParameterSpec,
  type RegNetTensorSpec,
} from './regnet';
