/**
 * Public surface of the DeiT model. Names that RegNet also defines (parameterShapes, countParameters,
 * isNoWeightDecay) are re-exported with a DeiT prefix; layers stay internal (import ./layers directly).
 */
export {
  adaptDeitWeights,
  combineHeads,
  countParameters as countDeitParameters,
  createDeit,
  DeiT,
  DeitWeightsError,
  initDeitWeights,
  isNoWeightDecay as isDeitNoWeightDecay,
  parameterShapes as deitParameterShapes,
  resolveDeitConfig,
  validateDeitWeights,
  type CreateDeitOptions,
  type DeitForwardOptions,
  type DeitOutput,
  type DeitParameterKind,
  type DeitParameterSpec,
} from './deit';
export {
  antialiasedBicubicMatrix,
  bicubicMatrix,
  BICUBIC_A,
  BICUBIC_AA_A,
  HEAD_PARAMETER_NAMES,
  POS_EMBED_RESAMPLINGS,
  type PosEmbedResampling,
  reinitHeads,
  resamplePosEmbed,
  truncNormalTensor,
} from './pos-embed';
export {
  DEFAULT_STUDENT_PRESET,
  DEIT_PRESET_NAMES,
  DEIT_PRESETS,
  getDeitPreset,
  gridSize,
  isDeitPresetName,
  numPrefixTokens,
  validateDeitConfig,
  type DeitConfig,
  type DeitPreset,
  type DeitPresetName,
  type DeitSize,
} from './presets';
// Seeds derive through the shared generator; re-exported for the trainers that seed from a model's seed.
export { deriveSeed } from '@deit-serve/core';
