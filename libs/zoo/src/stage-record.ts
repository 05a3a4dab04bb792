/**
 * What a finished stage leaves behind (`<records>/<stage>.json`, committed next to the registry), and
 * whether the registry still holds the version it names: a stage is done only while it does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelRegistry, VersionInfo } from '@deit-serve/registry';
import type { ZooStage } from './recipes';

export interface StageRecord {
  readonly stage: ZooStage;
  readonly model: string;
  readonly version: number;
  /** sha256 of model.onnx. */
  readonly sha256: string;
  readonly trainSeconds: number;
  /** Wall time of the stage in the sitting that finished it (training, evaluation, export). */
  readonly wallSeconds: number;
  /**
   * Wall time of the whole stage over every sitting that worked on it (training, evaluation, export;
   * see {@link startStageClock}). Absent in records written before it was kept.
   */
  readonly stageWallSeconds?: number;
  readonly parameters: number;
  readonly finishedAt: string;
  readonly gitCommit: string | null;
  readonly machine: string;
  /**
   * {@link recipeFingerprint} of the recipe the stage was trained with (the teacher's spec, or the
   * student's fine-tune request with its teacher). Absent in records written before fingerprints.
   */
  readonly recipe?: string;
  /**
   * Students only: {@link studentBudget}, the fingerprint of the recipe apart from the distillation
   * type. Students compare (paper Table 3: same budget and seed) only when theirs are equal.
   */
  readonly budget?: string;
  /** The run's seed (absent in generation 1's records: seed 0 throughout). */
  readonly seed?: number;
  /** The TensorFlow.js backend that trained it, e.g. `tensorflow (TensorFlow 2.21.0, CPU)`. */
  readonly backend?: string;
}

export async function readStageRecord(recordsDir: string, stage: ZooStage): Promise<StageRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(recordsDir, `${stage}.json`), 'utf8')) as StageRecord;
  } catch {
    return undefined;
  }
}

/** The record's version, if the registry still holds it unchanged. */
export async function recordedVersion(
  registry: ModelRegistry,
  record: StageRecord | undefined,
): Promise<VersionInfo | undefined> {
  return record === undefined
    ? undefined
    : verifiedVersion(registry, record.model, record.version, record.sha256);
}

/** `model:version`, if the registry holds it intact with model.onnx of this sha256. */
export async function verifiedVersion(
  registry: ModelRegistry,
  model: string,
  version: number,
  sha256: string,
): Promise<VersionInfo | undefined> {
  try {
    const info = await registry.getManifest(`${model}:${version}`, { integrity: 'full' });
    return info.manifest.files['model.onnx']?.sha256 === sha256 ? info : undefined;
  } catch {
    return undefined;
  }
}
