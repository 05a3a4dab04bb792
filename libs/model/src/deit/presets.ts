/**
 * DeiT architecture presets. ImageNet presets follow timm `deit.py` (patch 16, MLP ratio 4, 1000
 * classes); timm itself registers only the 224 variants and the base 384 ones, the tiny/small 384
 * records here are the same networks at 384 px (what fine-tuning at 384 produces).
 *
 * The small-image presets are for CPU training on 28–32 px data:
 * - `deit_tiny_distilled_patch4_32`: DeiT-Ti at 32 px with 4 px patches (8×8 grid, 66 tokens); the
 *   training benchmark's model.
 * - `deit_pico_distilled_patch4_28`: the default Fashion-MNIST student. 7×7 grid (51 tokens), D 96,
 *   6 blocks, 3 heads of 32: ~0.68 M parameters (2.7 MB of float32 in ONNX), sized so an epoch of
 *   Fashion-MNIST fits in minutes on one wasm core while leaving capacity for ≥ 90 % accuracy.
 * - `deit_pico_distilled_patch7_28`: the same network on a 4×4 grid of 7 px patches (18 tokens),
 *   ~3× cheaper per image, so a CPU budget buys ~3× more epochs.
 */

export type DeitSize = 'pico' | 'tiny' | 'small' | 'base';

export type DeitPresetName =
  | 'deit_tiny_patch16_224'
  | 'deit_small_patch16_224'
  | 'deit_base_patch16_224'
  | 'deit_tiny_patch16_384'
  | 'deit_small_patch16_384'
  | 'deit_base_patch16_384'
  | 'deit_tiny_distilled_patch16_224'
  | 'deit_small_distilled_patch16_224'
  | 'deit_base_distilled_patch16_224'
  | 'deit_tiny_distilled_patch16_384'
  | 'deit_small_distilled_patch16_384'
  | 'deit_base_distilled_patch16_384'
  | 'deit_tiny_distilled_patch4_32'
  | 'deit_pico_distilled_patch4_28'
  | 'deit_pico_distilled_patch7_28';

/** Everything that fixes the architecture (and therefore the weight names and shapes). */
export interface DeitConfig {
  /** Square input side in pixels; must be a multiple of `patchSize`. */
  readonly imgSize: number;
  readonly patchSize: number;
  /** Always 3: pixel_values are [B, 3, H, W] like timm; grayscale data is replicated to 3 channels. */
  readonly inChans: 3;
  readonly embedDim: number;
  readonly depth: number;
  readonly numHeads: number;
  /** Hidden width of the MLP is `embedDim * mlpRatio`. */
  readonly mlpRatio: number;
  readonly numClasses: number;
  /** Adds `dist_token` and `head_dist` (DeiT⚗). */
  readonly distilled: boolean;
}

export interface DeitPreset extends DeitConfig {
  readonly name: DeitPresetName;
}

const WIDTHS: Record<DeitSize, { embedDim: number; depth: number; numHeads: number }> = {
  pico: { embedDim: 96, depth: 6, numHeads: 3 },
  tiny: { embedDim: 192, depth: 12, numHeads: 3 },
  small: { embedDim: 384, depth: 12, numHeads: 6 },
  base: { embedDim: 768, depth: 12, numHeads: 12 },
};

function preset(
  name: DeitPresetName,
  size: DeitSize,
  patchSize: number,
  imgSize: number,
  distilled: boolean,
  numClasses = 1000,
): DeitPreset {
  return { name, ...WIDTHS[size], patchSize, imgSize, inChans: 3, mlpRatio: 4, numClasses, distilled };
}

export const DEIT_PRESETS: Readonly<Record<DeitPresetName, DeitPreset>> = {
  deit_tiny_patch16_224: preset('deit_tiny_patch16_224', 'tiny', 16, 224, false),
  deit_small_patch16_224: preset('deit_small_patch16_224', 'small', 16, 224, false),
  deit_base_patch16_224: preset('deit_base_patch16_224', 'base', 16, 224, false),
  deit_tiny_patch16_384: preset('deit_tiny_patch16_384', 'tiny', 16, 384, false),
  deit_small_patch16_384: preset('deit_small_patch16_384', 'small', 16, 384, false),
  deit_base_patch16_384: preset('deit_base_patch16_384', 'base', 16, 384, false),
  deit_tiny_distilled_patch16_224: preset('deit_tiny_distilled_patch16_224', 'tiny', 16, 224, true),
  deit_small_distilled_patch16_224: preset('deit_small_distilled_patch16_224', 'small', 16, 224, true),
  deit_base_distilled_patch16_224: preset('deit_base_distilled_patch16_224', 'base', 16, 224, true),
  deit_tiny_distilled_patch16_384: preset('deit_tiny_distilled_patch16_384', 'tiny', 16, 384, true),
  deit_small_distilled_patch16_384: preset('deit_small_distilled_patch16_384', 'small', 16, 384, true),
  deit_base_distilled_patch16_384: preset('deit_base_distilled_patch16_384', 'base', 16, 384, true),
  deit_tiny_distilled_patch4_32: preset('deit_tiny_distilled_patch4_32', 'tiny', 4, 32, true, 10),
  deit_pico_distilled_patch4_28: preset('deit_pico_distilled_patch4_28', 'pico', 4, 28, true, 10),
  deit_pico_distilled_patch7_28: preset('deit_pico_distilled_patch7_28', 'pico', 7, 28, true, 10),
};

export const DEIT_PRESET_NAMES = Object.keys(DEIT_PRESETS) as readonly DeitPresetName[];

/** The Fashion-MNIST student used by default. */
export const DEFAULT_STUDENT_PRESET: DeitPresetName = 'deit_pico_distilled_patch4_28';

export function isDeitPresetName(name: string): name is DeitPresetName {
  return Object.prototype.hasOwnProperty.call(DEIT_PRESETS, name);
}

export function getDeitPreset(name: DeitPresetName): DeitPreset {
  return DEIT_PRESETS[name];
}

/** Number of prefix tokens before the patches: cls (+ dist). */
export function numPrefixTokens(config: Pick<DeitConfig, 'distilled'>): 1 | 2 {
  return config.distilled ? 2 : 1;
}

/** Patches per side. */
export function gridSize(config: Pick<DeitConfig, 'imgSize' | 'patchSize'>): number {
  return config.imgSize / config.patchSize;
}

/** Throws one error listing every inconsistency of a config. */
export function validateDeitConfig(config: DeitConfig): void {
  const problems: string[] = [];
  const positiveInt = (key: keyof DeitConfig, value: number): void => {
    if (!Number.isInteger(value) || value <= 0)
      problems.push(`${key} must be a positive integer (got ${value})`);
  };
  positiveInt('imgSize', config.imgSize);
  positiveInt('patchSize', config.patchSize);
  positiveInt('embedDim', config.embedDim);
  positiveInt('depth', config.depth);
  positiveInt('numHeads', config.numHeads);
  positiveInt('numClasses', config.numClasses);
  if (config.inChans !== 3) problems.push(`inChans must be 3 (got ${String(config.inChans)})`);
  if (config.imgSize % config.patchSize !== 0) {
    problems.push(`imgSize ${config.imgSize} is not a multiple of patchSize ${config.patchSize}`);
  }
  if (config.embedDim % config.numHeads !== 0) {
    problems.push(`embedDim ${config.embedDim} is not divisible by numHeads ${config.numHeads}`);
  }
  const hidden = config.embedDim * config.mlpRatio;
  if (!Number.isInteger(hidden) || hidden <= 0)
    problems.push(`embedDim * mlpRatio must be a positive integer (got ${hidden})`);
  if (problems.length > 0) throw new Error(`invalid DeiT config: ${problems.join('; ')}`);
}
