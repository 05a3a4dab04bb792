/**
 * Training checkpoints: one safetensors file holding the student's weights (`model.<timm name>`, the
 * layout of the DeiT authors' checkpoints), AdamW's moments (`optimizer.exp_avg.<name>`,
 * `optimizer.exp_avg_sq.<name>`) and, as JSON metadata, the position in the run (epochs done, next
 * batch, optimizer steps), the RNG seeds, and the loss and evaluation history the curves are drawn
 * from. Written atomically (temporary file, fsync, rename, directory fsync), so a file that exists
 * is whole.
 */
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { hostTensor, readSafetensors, writeSafetensors, type NamedWeights } from '@deit-serve/model';
import type { AdamW } from '@deit-serve/training';
import type { EvalResult } from '@deit-serve/trainer-engine';

export const CHECKPOINT_FORMAT = 1;
const METADATA_KEY = 'deit_serve.checkpoint';
const MODEL_PREFIX = 'model.';
const EXP_AVG_PREFIX = 'optimizer.exp_avg.';
const EXP_AVG_SQ_PREFIX = 'optimizer.exp_avg_sq.';
const FILE_PATTERN = /^checkpoint-e(\d+)-b(\d+)\.safetensors$/;

/** One point of the loss curve: the mean over the steps since the previous point. */
export interface LossPoint {
  /** Fractional epochs done (1.5 = half-way through the second epoch). */
  readonly epoch: number;
  readonly total: number;
  readonly base: number;
  readonly distillation: number;
  readonly lr: number;
}

export interface TrainingHistory {
  readonly losses: LossPoint[];
  readonly evals: EvalResult[];
}

export interface CheckpointState {
  readonly format: typeof CHECKPOINT_FORMAT;
  /** Fingerprint of the spec the run was started with; a resume with another spec is refused. */
  readonly specHash: string;
  /** Whole epochs done. */
  readonly epochsCompleted: number;
  /** First batch of the next epoch to run (0 unless stopped mid-epoch). */
  readonly nextBatch: number;
  /** Optimizer steps taken in the whole run (the schedule's clock). */
  readonly globalStep: number;
  /**
   * Where the random streams stand. Data order, augmentation and mixup are pure functions of
   * (seed, epoch, batch), so the position is (epoch, batch); drop-path masks come from a stream that
   * restarts from `dropPathSeed`, derived from the seed and the resume position.
   */
  readonly rng: { readonly seed: number; readonly epoch: number; readonly batch: number };
  /** AdamW per-parameter step counts (bias correction). */
  readonly optimizerSteps: Readonly<Record<string, number>>;
  /** Seconds spent training so far (for images/s and ETA across resumes). */
  readonly trainSeconds: number;
  readonly history: TrainingHistory;
}

export interface Checkpoint {
  readonly state: CheckpointState;
  /** timm names, PyTorch layout. */
  readonly weights: NamedWeights;
  readonly optimizer: ReadonlyMap<string, { readonly expAvg: Float32Array; readonly expAvgSq: Float32Array }>;
}

interface AdamWParamState {
  readonly size: number;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  step: number;
}

/**
 * AdamW keeps its moments private and has no state-dict API yet; a resumable run needs them, so this
 * is the one place that reaches in. It checks the shape of what it finds rather than trusting it.
 */
function adamwState(optimizer: AdamW): Map<string, AdamWParamState> {
  const state = (optimizer as unknown as { state?: unknown }).state;
  if (!(state instanceof Map)) throw new Error('AdamW internals changed: no state map to checkpoint');
  return state as Map<string, AdamWParamState>;
}

export function optimizerSnapshot(optimizer: AdamW): {
  moments: Map<string, { expAvg: Float32Array; expAvgSq: Float32Array }>;
  steps: Record<string, number>;
} {
  const moments = new Map<string, { expAvg: Float32Array; expAvgSq: Float32Array }>();
  const steps: Record<string, number> = {};
  for (const [name, s] of adamwState(optimizer)) {
    moments.set(name, { expAvg: s.expAvg, expAvgSq: s.expAvgSq });
    steps[name] = s.step;
  }
  return { moments, steps };
}

export interface OptimizerState {
  readonly moments: ReadonlyMap<string, { readonly expAvg: Float32Array; readonly expAvgSq: Float32Array }>;
  readonly steps: Readonly<Record<string, number>>;
}

/** Puts moments and step counts back (copied); every parameter of the optimizer must be there. */
export function restoreOptimizer(optimizer: AdamW, saved: OptimizerState): void {
  const state = adamwState(optimizer);
  const missing: string[] = [];
  for (const [name, s] of state) {
    const moments = saved.moments.get(name);
    const step = saved.steps[name];
    if (moments === undefined || step === undefined || moments.expAvg.length !== s.size) {
      missing.push(name);
      continue;
    }
    s.expAvg.set(moments.expAvg);
    s.expAvgSq.set(moments.expAvgSq);
    s.step = step;
  }
  if (missing.length > 0) {
    throw new Error(
      `saved optimizer state does not match the trainable parameters (${missing.length} missing or resized, ` +
        `e.g. ${missing.slice(0, 3).join(', ')})`,
    );
  }
}

/** A checkpoint's optimizer part, for {@link restoreOptimizer}. */
export function checkpointOptimizer(checkpoint: Checkpoint): OptimizerState {
  return { moments: checkpoint.optimizer, steps: checkpoint.state.optimizerSteps };
}

export function checkpointFileName(epochsCompleted: number, nextBatch: number): string {
  return `checkpoint-e${String(epochsCompleted).padStart(5, '0')}-b${String(nextBatch).padStart(7, '0')}.safetensors`;
}

export function encodeCheckpoint(
  state: CheckpointState,
  weights: NamedWeights,
  moments: ReadonlyMap<string, { expAvg: Float32Array; expAvgSq: Float32Array }>,
): Uint8Array {
  const tensors: NamedWeights = new Map();
  for (const [name, tensor] of weights) tensors.set(MODEL_PREFIX + name, tensor);
  for (const [name, m] of moments) {
    tensors.set(EXP_AVG_PREFIX + name, hostTensor([m.expAvg.length], m.expAvg));
    tensors.set(EXP_AVG_SQ_PREFIX + name, hostTensor([m.expAvgSq.length], m.expAvgSq));
  }
  return writeSafetensors(tensors, { metadata: { [METADATA_KEY]: JSON.stringify(state) } });
}

export function decodeCheckpoint(bytes: Uint8Array, what = 'checkpoint'): Checkpoint {
  const contents = readSafetensors(bytes, { modelPrefix: 'none' });
  const json = contents.metadata[METADATA_KEY];
  if (json === undefined)
    throw new Error(`${what} is not a fine-tune checkpoint (no ${METADATA_KEY} metadata)`);
  const state = JSON.parse(json) as CheckpointState;
  const format: unknown = state.format;
  if (format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `${what} has checkpoint format ${String(format)}; this build reads ${String(CHECKPOINT_FORMAT)}`,
    );
  }
  const weights: NamedWeights = new Map();
  const optimizer = new Map<string, { expAvg: Float32Array; expAvgSq: Float32Array }>();
  const moment = (name: string) => {
    let entry = optimizer.get(name);
    if (entry === undefined) {
      entry = { expAvg: new Float32Array(0), expAvgSq: new Float32Array(0) };
      optimizer.set(name, entry);
    }
    return entry;
  };
  for (const [key, tensor] of contents.weights) {
    if (key.startsWith(MODEL_PREFIX)) weights.set(key.slice(MODEL_PREFIX.length), tensor);
    else if (key.startsWith(EXP_AVG_SQ_PREFIX))
      moment(key.slice(EXP_AVG_SQ_PREFIX.length)).expAvgSq = tensor.data;
    else if (key.startsWith(EXP_AVG_PREFIX)) moment(key.slice(EXP_AVG_PREFIX.length)).expAvg = tensor.data;
  }
  return { state, weights, optimizer };
}

/** Writes `bytes` to `path` so that `path` is either absent, the old file, or the whole new file. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  const file = await open(temporary, 'w');
  try {
    await file.writeFile(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
  const dir = await open(join(path, '..'), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export async function writeCheckpoint(
  workDir: string,
  state: CheckpointState,
  weights: NamedWeights,
  moments: ReadonlyMap<string, { expAvg: Float32Array; expAvgSq: Float32Array }>,
): Promise<string> {
  const path = join(workDir, checkpointFileName(state.epochsCompleted, state.nextBatch));
  await writeFileAtomic(path, encodeCheckpoint(state, weights, moments));
  return path;
}

export async function readCheckpoint(path: string): Promise<Checkpoint> {
  return decodeCheckpoint(new Uint8Array(await readFile(path)), path);
}

/** Removes all but the newest `keep` checkpoint files (and stale temporaries) of `workDir`. */
export async function pruneCheckpoints(workDir: string, keep = 2): Promise<string[]> {
  const names = await readdir(workDir);
  const checkpoints = names
    .map((name) => ({ name, match: FILE_PATTERN.exec(name) }))
    .filter((e): e is { name: string; match: RegExpExecArray } => e.match !== null)
    .sort((a, b) => Number(b.match[1]) - Number(a.match[1]) || Number(b.match[2]) - Number(a.match[2]));
  const doomed = [
    ...checkpoints.slice(keep).map((e) => e.name),
    ...names.filter((n) => /^checkpoint-.*\.safetensors\.tmp-\d+$/.test(n) && !n.endsWith(`-${process.pid}`)),
  ];
  await Promise.all(doomed.map((name) => rm(join(workDir, name), { force: true })));
  return doomed;
}
