/**
 * RegNetY presets and the block layout they imply, following timm `regnet.py` (`Bottleneck` blocks,
 * `conv1x1` downsample, bottleneck ratio 1, ReLU, BatchNorm).
 *
 * The ImageNet presets store timm's stage widths and depths as produced by `generate_regnet` and
 * `adjust_widths_groups_comp` from the design-space parameters (w0, wa, wm, depth, group size);
 * `regnetStagesFromDesign` reproduces that quantisation so the tables can be checked against it.
 *
 * `regnety_fmnist_28` is the CPU-trainable teacher for 28–32 px Fashion-MNIST-like data (grayscale
 * replicated to 3 channels). It keeps timm's module structure and names exactly, but has 3 stages
 * and a stride-1 stem (`stemStride`, which timm does not have): with timm's stride-2 stem and 4
 * stages a 28×28 input would be 1×1 at the last stage, and only the stem would see full resolution.
 */

export type RegNetPresetName = 'regnety_002' | 'regnety_016' | 'regnety_160' | 'regnety_fmnist_28';

export type RegNetInterpolation = 'bicubic' | 'bilinear';

/** Evaluation preprocessing of a model version (timm pretrained cfg). */
export interface RegNetPreprocessing {
  readonly cropPct: number;
  readonly interpolation: RegNetInterpolation;
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

/** Everything that fixes the architecture (and therefore the weight names and shapes). */
export interface RegNetConfig {
  /** Output channels of each stage; the first block of every stage has stride 2. */
  readonly stageWidths: readonly number[];
  readonly stageDepths: readonly number[];
  /** Channels per group of the 3×3 conv (timm `group_size`), capped at the stage width. */
  readonly groupWidth: number;
  /** SE bottleneck = round(block input channels × seRatio); 0 disables SE (RegNetX). */
  readonly seRatio: number;
  readonly stemWidth: number;
  /** timm always uses 2. */
  readonly stemStride: 1 | 2;
  readonly numClasses: number;
  /** Square input side the preset was designed for; forward accepts other sizes. */
  readonly imgSize: number;
  /** Always 3: pixel_values are [B, 3, H, W]; grayscale data is replicated to 3 channels. */
  readonly inChans: 3;
}

export interface RegNetPreset extends RegNetConfig {
  readonly name: RegNetPresetName;
  readonly preprocessing: RegNetPreprocessing;
}

/** timm `RegNetCfg` fields that define the widths (the design space of the RegNet paper). */
export interface RegNetDesign {
  readonly w0: number;
  readonly wa: number;
  readonly wm: number;
  readonly depth: number;
  readonly groupSize: number;
}

/** timm `model_cfgs` entries of the ImageNet presets. */
export const REGNETY_DESIGNS: Readonly<Record<Exclude<RegNetPresetName, 'regnety_fmnist_28'>, RegNetDesign>> =
  {
    regnety_002: { w0: 24, wa: 36.44, wm: 2.49, depth: 13, groupSize: 8 },
    regnety_016: { w0: 48, wa: 20.71, wm: 2.65, depth: 27, groupSize: 24 },
    regnety_160: { w0: 200, wa: 106.23, wm: 2.48, depth: 18, groupSize: 112 },
  };

const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** Fashion-MNIST training-set pixel statistics (grayscale, replicated to 3 channels). */
const FMNIST_MEAN = [0.286, 0.286, 0.286] as const;
const FMNIST_STD = [0.353, 0.353, 0.353] as const;

const TIMM_STEM = { stemWidth: 32, stemStride: 2, inChans: 3, seRatio: 0.25 } as const;

export const REGNET_PRESETS: Readonly<Record<RegNetPresetName, RegNetPreset>> = {
  regnety_002: {
    name: 'regnety_002',
    ...TIMM_STEM,
    stageWidths: [24, 56, 152, 368],
    stageDepths: [1, 1, 4, 7],
    groupWidth: 8,
    numClasses: 1000,
    imgSize: 224,
    preprocessing: { cropPct: 0.875, interpolation: 'bicubic', mean: IMAGENET_MEAN, std: IMAGENET_STD },
  },
  regnety_016: {
    name: 'regnety_016',
    ...TIMM_STEM,
    stageWidths: [48, 120, 336, 888],
    stageDepths: [2, 6, 17, 2],
    groupWidth: 24,
    numClasses: 1000,
    imgSize: 224,
    preprocessing: { cropPct: 0.875, interpolation: 'bicubic', mean: IMAGENET_MEAN, std: IMAGENET_STD },
  },
  // The DeiT teacher (weights from the DeiT repository); timm evaluates it with crop_pct 1.0.
  regnety_160: {
    name: 'regnety_160',
    ...TIMM_STEM,
    stageWidths: [224, 448, 1232, 3024],
    stageDepths: [2, 4, 11, 1],
    groupWidth: 112,
    numClasses: 1000,
    imgSize: 224,
    preprocessing: { cropPct: 1.0, interpolation: 'bicubic', mean: IMAGENET_MEAN, std: IMAGENET_STD },
  },
  // Sides 28 → stem 28 → 14 → 7 → 4 (32 px: 32 → 16 → 8 → 4); 444,094 parameters; groups of 16
  // (3, 6, 12 groups). ~0.65 s per training step of 64 on one wasm core (stemStride 2: ~0.3 s, but
  // only 2×2 at the last stage and one 3×3 conv at full resolution).
  regnety_fmnist_28: {
    name: 'regnety_fmnist_28',
    stemWidth: 32,
    stemStride: 1,
    inChans: 3,
    seRatio: 0.25,
    stageWidths: [48, 96, 192],
    stageDepths: [1, 2, 3],
    groupWidth: 16,
    numClasses: 10,
    imgSize: 28,
    preprocessing: { cropPct: 1.0, interpolation: 'bilinear', mean: FMNIST_MEAN, std: FMNIST_STD },
  },
};

export const REGNET_PRESET_NAMES = Object.keys(REGNET_PRESETS) as readonly RegNetPresetName[];

/** The Fashion-MNIST teacher used by default. */
export const DEFAULT_TEACHER_PRESET: RegNetPresetName = 'regnety_fmnist_28';

export function isRegNetPresetName(name: string): name is RegNetPresetName {
  return Object.prototype.hasOwnProperty.call(REGNET_PRESETS, name);
}

export function getRegNetPreset(name: RegNetPresetName): RegNetPreset {
  return REGNET_PRESETS[name];
}

/** Python 3 `round` (ties to even), which timm uses for SE widths and width quantisation. */
export function pythonRound(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Stage widths, depths and group width from timm's design-space parameters (`generate_regnet` with
 * q = 8, then `adjust_widths_groups_comp` with bottleneck ratio 1).
 */
export function regnetStagesFromDesign(design: RegNetDesign): {
  stageWidths: number[];
  stageDepths: number[];
  groupWidths: number[];
} {
  const { w0, wa, wm, depth, groupSize } = design;
  const q = 8;
  if (!(wa >= 0 && w0 > 0 && wm > 1 && w0 % q === 0)) throw new Error('invalid RegNet design parameters');
  const blockWidths: number[] = [];
  for (let i = 0; i < depth; i++) {
    const continuous = i * wa + w0;
    const exponent = pythonRound(Math.log(continuous / w0) / Math.log(wm));
    blockWidths.push(pythonRound((w0 * Math.pow(wm, exponent)) / q) * q);
  }
  const stageWidths: number[] = [];
  const stageDepths: number[] = [];
  // np.unique sorts; widths are non-decreasing, so runs are stages.
  for (const w of blockWidths) {
    if (stageWidths[stageWidths.length - 1] === w) stageDepths[stageDepths.length - 1] += 1;
    else {
      stageWidths.push(w);
      stageDepths.push(1);
    }
  }
  const groupWidths = stageWidths.map((w) => Math.min(groupSize, w));
  return {
    stageWidths: stageWidths.map((w, i) => pythonRound(w / groupWidths[i]) * groupWidths[i]),
    stageDepths,
    groupWidths,
  };
}

/** One Y-block as timm builds it. */
export interface RegNetBlock {
  /** timm module path, e.g. `s2.b1`. */
  readonly name: string;
  readonly inChs: number;
  readonly outChs: number;
  /** 2 in the first block of each stage. */
  readonly stride: 1 | 2;
  /** Equal to outChs (bottleneck ratio 1). */
  readonly bottleneckChs: number;
  readonly groups: number;
  /** 0 when the block has no SE module. */
  readonly seChs: number;
  /** A 1×1 conv + BN shortcut, present when channels or stride change. */
  readonly downsample: boolean;
}

export function regnetBlocks(config: RegNetConfig): RegNetBlock[] {
  validateRegNetConfig(config);
  const blocks: RegNetBlock[] = [];
  let prev = config.stemWidth;
  config.stageWidths.forEach((width, s) => {
    const groupWidth = Math.min(config.groupWidth, width);
    for (let i = 0; i < config.stageDepths[s]; i++) {
      const inChs = i === 0 ? prev : width;
      const stride = i === 0 ? 2 : 1;
      blocks.push({
        name: `s${s + 1}.b${i + 1}`,
        inChs,
        outChs: width,
        stride,
        bottleneckChs: width,
        groups: width / groupWidth,
        seChs: config.seRatio > 0 ? pythonRound(inChs * config.seRatio) : 0,
        downsample: inChs !== width || stride !== 1,
      });
    }
    prev = width;
  });
  return blocks;
}

/** Channels entering the head (last stage width). */
export function numFeatures(config: RegNetConfig): number {
  const widths = config.stageWidths;
  return widths.length > 0 ? widths[widths.length - 1] : config.stemWidth;
}

/** Spatial side after the stem and every stage for a square input (PyTorch conv arithmetic). */
export function featureSides(config: RegNetConfig, imgSize = config.imgSize): number[] {
  const sides: number[] = [];
  let side = Math.floor((imgSize - 1) / config.stemStride) + 1;
  sides.push(side);
  for (let s = 0; s < config.stageWidths.length; s++) {
    side = Math.floor((side - 1) / 2) + 1;
    sides.push(side);
  }
  return sides;
}

/** Throws one error listing every inconsistency of a config. */
export function validateRegNetConfig(config: RegNetConfig): void {
  const problems: string[] = [];
  const positiveInt = (key: string, value: number): void => {
    if (!Number.isInteger(value) || value <= 0)
      problems.push(`${key} must be a positive integer (got ${value})`);
  };
  positiveInt('stemWidth', config.stemWidth);
  positiveInt('groupWidth', config.groupWidth);
  positiveInt('numClasses', config.numClasses);
  positiveInt('imgSize', config.imgSize);
  if (config.inChans !== 3) problems.push(`inChans must be 3 (got ${String(config.inChans)})`);
  if (config.stemStride !== 1 && config.stemStride !== 2)
    problems.push(`stemStride must be 1 or 2 (got ${String(config.stemStride)})`);
  if (!(config.seRatio >= 0 && config.seRatio <= 1))
    problems.push(`seRatio must be in [0, 1] (got ${config.seRatio})`);
  if (config.stageWidths.length !== config.stageDepths.length) {
    problems.push(
      `stageWidths (${config.stageWidths.length}) and stageDepths (${config.stageDepths.length}) differ in length`,
    );
  }
  config.stageWidths.forEach((w, s) => {
    positiveInt(`stageWidths[${s}]`, w);
    const g = Math.min(config.groupWidth, w);
    if (Number.isInteger(w) && w % g !== 0)
      problems.push(`stage ${s + 1} width ${w} is not a multiple of group width ${g}`);
  });
  config.stageDepths.forEach((d, s) => positiveInt(`stageDepths[${s}]`, d));
  if (problems.length > 0) throw new Error(`invalid RegNet config: ${problems.join('; ')}`);
}
