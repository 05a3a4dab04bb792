import { InvalidArgumentError } from '@deit-serve/core';
import {
  adaptDeitWeights,
  DEIT_PRESET_NAMES,
  getRegNetPreset,
  initDeitWeights,
  initRegNetWeights,
  isDeitPresetName,
  isRegNetPresetName,
  type NamedWeights,
  type PosEmbedResampling,
  REGNET_PRESET_NAMES,
  readSafetensors,
  resolveDeitConfig,
  validateDeitWeights,
  validateRegNetWeights,
} from '@deit-serve/model';
import type { InputSpec } from '@deit-serve/registry';
import type { ModelSpec } from './package-model';

export interface PresetWeightsRequest {
  preset: string;
  /** A timm checkpoint (safetensors, plain or nested under `model.`); random init from `seed` if absent. */
  safetensors?: Uint8Array;
  numClasses?: number;
  imgSize?: number;
  seed?: number;
  /** How a checkpoint's `pos_embed` is resampled to another `imgSize` (default `timm`). */
  posEmbedResampling?: PosEmbedResampling;
}

export interface PresetWeights {
  spec: ModelSpec;
  weights: NamedWeights;
  input: Omit<InputSpec, 'name'>;
  /** What was adapted (position embedding resampled, heads re-initialised), for the user. */
  changes: string[];
  randomInit: boolean;
}

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/**
 * timm's pretrained eval config of a DeiT preset: 224 models crop_pct 0.9, 384 models 1.0, both
 * bicubic with ImageNet statistics; the small-image presets (under 64 px) are for Fashion-MNIST-like
 * 28–32 px data (no resize, Fashion-MNIST statistics on the replicated grey channel).
 */
function deitInput(preset: string, imgSize: number): Omit<InputSpec, 'name'> {
  if (imgSize < 64) {
    return {
      image_size: imgSize,
      channels: 3,
      mean: [0.286, 0.286, 0.286],
      std: [0.353, 0.353, 0.353],
      interpolation: 'bilinear',
      crop_pct: 1,
    };
  }
  return {
    image_size: imgSize,
    channels: 3,
    ...IMAGENET,
    interpolation: 'bicubic',
    crop_pct: imgSize >= 384 ? 1 : 0.9,
  };
}

/** Weights for a preset — a checkpoint adapted to the requested size and classes, or timm's init. */
export function presetWeights(request: PresetWeightsRequest): PresetWeights {
  const seed = request.seed ?? 0;
  const loaded = request.safetensors ? readSafetensors(request.safetensors).weights : undefined;
  if (isDeitPresetName(request.preset)) {
    const config = resolveDeitConfig({
      preset: request.preset,
      ...(request.numClasses !== undefined ? { numClasses: request.numClasses } : {}),
      ...(request.imgSize !== undefined ? { imgSize: request.imgSize } : {}),
    });
    let weights = loaded;
    let changes: string[] = [];
    if (weights) ({ weights, changes } = adaptDeitWeights(config, weights, seed, request.posEmbedResampling));
    weights ??= initDeitWeights(config, seed);
    validateDeitWeights(config, weights);
    return {
      spec: { architecture: 'deit', config },
      weights,
      input: deitInput(request.preset, config.imgSize),
      changes,
      randomInit: loaded === undefined,
    };
  }
  if (isRegNetPresetName(request.preset)) {
    const preset = getRegNetPreset(request.preset);
    const config = {
      ...preset,
      ...(request.numClasses !== undefined ? { numClasses: request.numClasses } : {}),
      ...(request.imgSize !== undefined ? { imgSize: request.imgSize } : {}),
    };
    const weights = loaded ?? initRegNetWeights(config, { seed });
    validateRegNetWeights(config, weights);
    const p = preset.preprocessing;
    return {
      spec: { architecture: 'regnety', config },
      weights,
      input: {
        image_size: config.imgSize,
        channels: 3,
        mean: [...p.mean],
        std: [...p.std],
        interpolation: p.interpolation,
        crop_pct: p.cropPct,
      },
      changes: [],
      randomInit: loaded === undefined,
    };
  }
  throw new InvalidArgumentError(
    `unknown preset ${JSON.stringify(request.preset)}; known: ${[...DEIT_PRESET_NAMES, ...REGNET_PRESET_NAMES].join(', ')}`,
  );
}
