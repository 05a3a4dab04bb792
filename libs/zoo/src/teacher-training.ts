/**
 * Training a RegNetY teacher from scratch (the CNN that DeiT students distil from): the same
 * machinery as a fine-tune — seeded batches and augmentation from the datasets library, AdamW with
 * timm's warm-up + cosine schedule per step, data-parallel workers on wasm, a checkpoint after every
 * epoch that a restart resumes from — with a RegNet classification task instead of the DeiT
 * distillation task.
 *
 * BatchNorm: workers keep their own running statistics, so after training (and before each
 * evaluation) the leader recomputes them for the current weights as plain means over training
 * batches in the eval transform ("precise BN", as pycls, RegNet's reference trainer, does).
 *
 * The result is exported to ONNX (checked against tfjs), evaluated through onnxruntime — the file the
 * inference service loads — and returned ready to publish.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  batchCount,
  evalBatches,
  trainBatches,
  type AugmentOptions,
  type BatchInputSpec,
  type ImageDataset,
} from '@deit-serve/datasets';
import {
  AccuracyCounter,
  CHECKPOINT_FORMAT,
  optimizerSnapshot,
  pruneCheckpoints,
  readCheckpoint,
  renderCurvesPng,
  restoreOptimizer,
  top1Of,
  writeCheckpoint,
  writeFileAtomic,
  type CheckpointState,
  type TrainingHistory,
} from '@deit-serve/finetune';
import {
  createRegNet,
  describeBackend,
  getRegNetPreset,
  initBackend,
  OnnxIoName,
  writeSafetensors,
  type BackendName,
  type NamedWeights,
  type RegNet,
  type RegNetConfig,
  type RegNetPresetName,
} from '@deit-serve/model';
import { packageModel } from '@deit-serve/packaging';
import type { PublishRequest } from '@deit-serve/registry';
import { OnnxModelSession } from '@deit-serve/runtime';
import type { EvalResult } from '@deit-serve/trainer-engine';
import {
  assignHost,
  cosineLr,
  DataParallelTrainer,
  LocalTrainer,
  perStep,
  registerGradients,
  REGNET_TASK_MODULE,
  createRegNetTrainTask,
  type AdamW,
  type HostBatch,
  type RegNetTaskOptions,
} from '@deit-serve/training';

/** What a teacher recipe may change in its preset's architecture (names stay timm's). */
export type TeacherArchitecture = Partial<
  Pick<RegNetConfig, 'stageWidths' | 'stageDepths' | 'groupWidth' | 'stemWidth' | 'seRatio'>
>;

export interface TeacherTrainingSpec {
  readonly preset: RegNetPresetName;
  /** Changes to the preset's widths, depths or groups; default none. */
  readonly architecture?: TeacherArchitecture;
  readonly seed: number;
  readonly epochs: number;
  readonly batchSize: number;
  /** Peak learning rate (not scaled by batch size). */
  readonly lr: number;
  readonly weightDecay: number;
  readonly warmupEpochs: number;
  readonly warmupLr: number;
  readonly minLr: number;
  readonly labelSmoothing: number;
  readonly augment: AugmentOptions;
  /** Training images whose batch statistics make the final BatchNorm statistics (precise BN). */
  readonly bnStatImages: number;
  /** Evaluate after every N epochs (and always after the last). */
  readonly evalIntervalEpochs: number;
}

export interface TeacherTrainingOptions {
  readonly spec: TeacherTrainingSpec;
  readonly train: ImageDataset;
  /** The set reported on (never used for any choice made during training). */
  readonly eval: ImageDataset;
  readonly evalSetName: string;
  /** Checkpoints; a later call with the same spec resumes from the newest one here. */
  readonly workDir: string;
  /** Default: as many workers as cores on wasm, one thread on native backends. */
  readonly workers?: number;
  readonly backend?: BackendName;
  readonly log?: (message: string) => void;
  readonly signal?: AbortSignal;
}

export interface TeacherTrainingResult {
  /** timm names, PyTorch layout, precise-BN statistics. */
  readonly weights: NamedWeights;
  readonly config: RegNetConfig;
  readonly input: BatchInputSpec & { interpolation: 'bilinear' | 'bicubic'; cropPct: number };
  readonly history: TrainingHistory;
  /** Seconds of training steps over all attempts (evaluation and export not included). */
  readonly trainSeconds: number;
  readonly steps: number;
  readonly imagesPerSecond: number;
  readonly workers: number;
  readonly backend: string;
  readonly parameters: number;
}

/** Fingerprint of a teacher spec: a checkpoint only resumes the run it was written for. */
export function teacherSpecHash(spec: TeacherTrainingSpec): string {
  return createHash('sha256')
    .update(JSON.stringify({ kind: 'regnet-teacher', spec }))
    .digest('hex');
}

const CHECKPOINT_PATTERN = /^checkpoint-e(\d+)-b(\d+)\.safetensors$/;

/** The newest checkpoint file of `workDir`, if any. */
export async function latestCheckpointPath(workDir: string): Promise<string | undefined> {
  const names = await readdir(workDir).catch(() => [] as string[]);
  const newest = names
    .map((name) => ({ name, match: CHECKPOINT_PATTERN.exec(name) }))
    .filter((e): e is { name: string; match: RegExpExecArray } => e.match !== null)
    .sort((a, b) => Number(b.match[1]) - Number(a.match[1]) || Number(b.match[2]) - Number(a.match[2]))[0];
  return newest === undefined ? undefined : join(workDir, newest.name);
}

interface Engine {
  readonly optimizer: AdamW;
  readonly workers: number;
  step(batch: HostBatch, lr: number): Promise<Record<string, number>>;
  /** Trainable weights by name, in the variables' layout. */
  weights(): Map<string, Float32Array>;
  close(): Promise<void>;
}

export async function trainTeacher(options: TeacherTrainingOptions): Promise<TeacherTrainingResult> {
  const { spec, workDir, signal } = options;
  const log = options.log ?? (() => undefined);
  await mkdir(workDir, { recursive: true });
  const backend = await initBackend(options.backend);
  await registerGradients();
  const preset = getRegNetPreset(spec.preset);
  const numClasses = options.train.numClasses;
  const config: RegNetConfig = { ...preset, ...spec.architecture, numClasses };
  const p = preset.preprocessing;
  const input = {
    imageSize: preset.imgSize,
    mean: [...p.mean],
    std: [...p.std],
    interpolation: p.interpolation,
    cropPct: p.cropPct,
  };
  const trainInput: BatchInputSpec = { imageSize: input.imageSize, mean: input.mean, std: input.std };

  // The leader's model: evaluation, precise BN, checkpoints, export. Never trained directly.
  const leader = createRegNet({
    preset: spec.preset,
    config: { ...spec.architecture, numClasses },
    seed: spec.seed,
  });
  const hash = teacherSpecHash(spec);
  const history: TrainingHistory = { losses: [], evals: [] };
  let epochsDone = 0;
  let globalStep = 0;
  let trainSeconds = 0;
  const resumePath = await latestCheckpointPath(workDir);
  const checkpoint = resumePath === undefined ? undefined : await readCheckpoint(resumePath);
  if (checkpoint !== undefined) {
    if (checkpoint.state.specHash !== hash) {
      throw new Error(
        `${resumePath ?? ''} was written for another teacher spec; remove ${workDir} to start over`,
      );
    }
    leader.setWeights(checkpoint.weights);
    epochsDone = checkpoint.state.epochsCompleted;
    globalStep = checkpoint.state.globalStep;
    trainSeconds = checkpoint.state.trainSeconds;
    history.losses.push(...checkpoint.state.history.losses);
    history.evals.push(...checkpoint.state.history.evals);
    log(`resuming from ${resumePath ?? ''}: ${epochsDone} of ${spec.epochs} epochs done`);
  }

  const stepsPerEpoch = batchCount(options.train.size, spec.batchSize);
  const workers =
    options.workers ?? (backend === 'wasm' ? Math.max(1, Math.min(availableParallelism(), 4)) : 1);
  const startWeights = join(workDir, 'start.safetensors');
  await writeFileAtomic(startWeights, writeSafetensors(leader.getWeights()));
  const taskOptions: RegNetTaskOptions = {
    preset: spec.preset,
    config: { ...spec.architecture, numClasses },
    seed: spec.seed,
    weightsPath: startWeights,
    labelSmoothing: spec.labelSmoothing,
  };
  // Workers run the backend the leader got (tfjs-node's name is `tensorflow`).
  const workerBackend: BackendName = backend === 'tensorflow' || backend === 'cpu' ? backend : 'wasm';
  const engine =
    epochsDone < spec.epochs ? await createEngine(taskOptions, workers, workerBackend, spec) : undefined;
  log(
    `training ${spec.preset} on ${describeBackend()}: ` +
      (workers > 1 ? `data-parallel, ${workers} workers` : 'one process'),
  );
  try {
    if (engine !== undefined && checkpoint !== undefined) {
      restoreOptimizer(engine.optimizer, {
        moments: checkpoint.optimizer,
        steps: checkpoint.state.optimizerSteps,
      });
    }
    const schedule = perStep(
      {
        baseLr: spec.lr,
        minLr: spec.minLr,
        warmupLr: spec.warmupLr,
        warmupT: spec.warmupEpochs,
        tInitial: spec.epochs,
      },
      stepsPerEpoch,
    );
    const classes = numClasses;
    let attemptImages = 0;
    let attemptSeconds = 0;
    for (let epoch = epochsDone; engine !== undefined && epoch < spec.epochs; epoch++) {
      const point = { rows: 0, total: 0, lr: 0, steps: 0 };
      const pointEvery = Math.ceil(stepsPerEpoch / 10);
      let lastLog = performance.now();
      for (const batch of trainBatches(options.train, {
        batchSize: spec.batchSize,
        seed: spec.seed,
        epoch,
        inputSpec: trainInput,
        augment: spec.augment,
      })) {
        signal?.throwIfAborted();
        const t0 = performance.now();
        const lr = cosineLr(globalStep, schedule);
        const losses = await engine.step(
          {
            pixel_values: { data: batch.pixels, shape: batch.dims },
            labels:
              batch.targets === undefined
                ? { data: batch.labels, shape: [batch.size] }
                : { data: batch.targets, shape: [batch.size, classes] },
          },
          lr,
        );
        const seconds = (performance.now() - t0) / 1000;
        const total = losses['total'] ?? NaN;
        if (!Number.isFinite(total)) {
          throw new Error(
            `loss is ${total} at epoch ${epoch + 1}, step ${batch.index + 1}; lower the learning rate`,
          );
        }
        globalStep++;
        trainSeconds += seconds;
        attemptSeconds += seconds;
        attemptImages += batch.size;
        point.rows += batch.size;
        point.total += total * batch.size;
        point.lr += lr;
        point.steps++;
        if (point.steps >= pointEvery || batch.index === stepsPerEpoch - 1) {
          const mean = point.total / point.rows;
          history.losses.push({
            epoch: epoch + (batch.index + 1) / stepsPerEpoch,
            total: mean,
            base: mean,
            distillation: 0,
            lr: point.lr / point.steps,
          });
          Object.assign(point, { rows: 0, total: 0, lr: 0, steps: 0 });
        }
        if (performance.now() - lastLog > 30_000) {
          lastLog = performance.now();
          log(
            `epoch ${epoch + 1}/${spec.epochs} step ${batch.index + 1}/${stepsPerEpoch} loss ${total.toFixed(4)} ` +
              `lr ${lr.toExponential(2)} ${(attemptImages / attemptSeconds).toFixed(1)} img/s`,
          );
        }
      }
      const epochsCompleted = epoch + 1;
      loadTrained(leader, engine.weights());
      preciseBatchNorm(leader, options.train, trainInput, spec);
      if (epochsCompleted % spec.evalIntervalEpochs === 0 || epochsCompleted === spec.epochs) {
        const result = evaluateRegNet(
          leader,
          options.eval,
          options.evalSetName,
          input,
          epochsCompleted,
          signal,
        );
        history.evals.push(result);
        log(
          `epoch ${epochsCompleted}: top-1 ${(result.cls?.top1 ?? 0).toFixed(4)} on ${options.evalSetName} ` +
            `(${(attemptImages / attemptSeconds).toFixed(1)} img/s)`,
        );
      }
      const { moments, steps } = optimizerSnapshot(engine.optimizer);
      const state: CheckpointState = {
        format: CHECKPOINT_FORMAT,
        specHash: hash,
        epochsCompleted,
        nextBatch: 0,
        globalStep,
        rng: { seed: spec.seed, epoch: epochsCompleted, batch: 0 },
        optimizerSteps: steps,
        trainSeconds,
        history,
      };
      await writeCheckpoint(workDir, state, leader.getWeights(), moments);
      await pruneCheckpoints(workDir, 2);
    }
    return {
      weights: leader.getWeights(),
      config,
      input,
      history,
      trainSeconds,
      steps: globalStep,
      imagesPerSecond: (stepsPerEpoch * spec.epochs * spec.batchSize) / Math.max(trainSeconds, 1e-9),
      workers: engine?.workers ?? workers,
      backend: `tfjs-${backend}`,
      parameters: [...leader.namedVariables().values()].reduce((sum, v) => sum + v.size, 0),
    };
  } finally {
    await engine?.close();
    leader.dispose();
  }
}

async function createEngine(
  task: RegNetTaskOptions,
  workers: number,
  backend: BackendName,
  spec: TeacherTrainingSpec,
): Promise<Engine> {
  const optimizer = { lr: spec.lr, weightDecay: spec.weightDecay };
  // A RegNet step of 64 rows fits the wasm heap easily; whole slices per pass.
  const microBatchSize = Math.ceil(spec.batchSize / workers);
  if (workers > 1) {
    const trainer = await DataParallelTrainer.create({
      workers,
      taskModule: REGNET_TASK_MODULE,
      taskOptions: task,
      optimizer,
      microBatchSize,
      backend,
    });
    return {
      optimizer: trainer.optimizer,
      workers,
      step: async (batch, lr) => (await trainer.step(batch, lr)).losses,
      weights: () => trainer.getWeights(),
      close: () => trainer.close(),
    };
  }
  const local = createRegNetTrainTask(task);
  const trainer = new LocalTrainer(local, { optimizer, microBatchSize });
  return {
    optimizer: trainer.optimizer,
    workers: 1,
    step: (batch, lr) => Promise.resolve(trainer.step(batch, lr).losses),
    weights: () => new Map(local.params.map((p) => [p.name, p.variable.dataSync() as Float32Array])),
    close: () => {
      local.model.dispose();
      return Promise.resolve();
    },
  };
}

/** Copies trained parameters (the variables' layout) into the leader's variables. */
function loadTrained(model: RegNet, weights: ReadonlyMap<string, Float32Array>): void {
  for (const [name, variable] of model.namedVariables()) {
    const data = weights.get(name);
    if (data === undefined) throw new Error(`trainer has no weights for ${name}`);
    assignHost(variable, data);
  }
}

/** Precise BN over the first `bnStatImages` of a fixed, seeded order of training images (eval transform). */
function preciseBatchNorm(
  model: RegNet,
  train: ImageDataset,
  input: BatchInputSpec,
  spec: TeacherTrainingSpec,
): void {
  const batchSize = Math.min(spec.batchSize, 256);
  const wanted = Math.ceil(Math.min(spec.bnStatImages, train.size) / batchSize);
  const batches = trainBatches(train, {
    batchSize,
    seed: spec.seed,
    epoch: 0,
    inputSpec: input,
    dropLast: true,
  });
  function* tensors(): Generator<tf.Tensor4D> {
    let n = 0;
    for (const batch of batches) {
      if (n++ >= wanted) return;
      const t = tf.tensor4d(batch.pixels, [...batch.dims]);
      try {
        yield t;
      } finally {
        t.dispose();
      }
    }
  }
  model.recomputeBatchNormStatistics(tensors());
}

function evaluateRegNet(
  model: RegNet,
  dataset: ImageDataset,
  evalSetName: string,
  inputSpec: BatchInputSpec,
  epoch: number,
  signal?: AbortSignal,
): EvalResult {
  const counter = new AccuracyCounter(dataset.numClasses);
  let images = 0;
  for (const batch of evalBatches(dataset, { batchSize: 128, inputSpec })) {
    signal?.throwIfAborted();
    const logits = tf.tidy(() => model.forward(tf.tensor4d(batch.pixels, [...batch.dims])).dataSync());
    counter.add(logits as Float32Array, batch.labels);
    images += batch.size;
  }
  return { epoch, dataset: evalSetName, images, cls: counter.result() };
}

export interface PackagedTeacher {
  readonly request: PublishRequest;
  /** Top-1 of the exported ONNX file on the evaluation set, through onnxruntime. */
  readonly onnxTop1: number;
}

/**
 * Exports the trained teacher (ONNX checked against tfjs), measures the exported file's top-1 on the
 * evaluation set through onnxruntime, and builds the registry version with metrics, lineage and curves.
 */
export async function packageTeacher(
  result: TeacherTrainingResult,
  options: {
    spec: TeacherTrainingSpec;
    eval: ImageDataset;
    evalSetName: string;
    dataset: { name: string; sha256: string };
    gitCommit: string | null;
  },
): Promise<PackagedTeacher> {
  const { input, config } = result;
  const model = createRegNet({ preset: options.spec.preset, config, weights: result.weights });
  let reference: { sample: Float32Array; outputs: Record<string, Float32Array> };
  try {
    const first = evalBatches(options.eval, { batchSize: 1, inputSpec: input }).next();
    if (first.done === true) throw new Error('the evaluation set is empty');
    const sample = first.value.pixels;
    const logits = tf.tidy(() => model.forward(tf.tensor4d(sample, [...first.value.dims])).dataSync());
    reference = { sample, outputs: { [OnnxIoName.logits]: logits as Float32Array } };
  } finally {
    model.dispose();
  }
  const modelInput = {
    image_size: input.imageSize,
    channels: 3,
    mean: [...input.mean],
    std: [...input.std],
    interpolation: input.interpolation,
    crop_pct: input.cropPct,
  };
  const labels = options.eval.labelNames;
  const base = {
    spec: { architecture: 'regnety' as const, config },
    preset: options.spec.preset,
    weights: result.weights,
    labels,
    input: modelInput,
    reference,
  };
  // Evaluate the exported file itself, as the service will run it.
  const draft = await packageModel(base);
  const onnx = draft.files['model.onnx'];
  if (!(onnx instanceof Uint8Array)) throw new Error('packaging produced no model.onnx bytes');
  const session = await OnnxModelSession.create(onnx, { logger: { warn: () => undefined } });
  let onnxTop1: number;
  try {
    onnxTop1 = await top1Of(
      async (pixels, dims) => {
        const out = await session.run({ [OnnxIoName.pixelValues]: { data: pixels, dims } });
        const logits = out[OnnxIoName.logits];
        if (logits === undefined) throw new Error('the exported teacher has no logits output');
        return logits.data;
      },
      options.eval,
      { inputSpec: input, batchSize: 128 },
    );
  } finally {
    await session.release();
  }
  const s = options.spec;
  const request = await packageModel({
    ...base,
    metrics: {
      eval_set: options.evalSetName,
      top1: { cls: onnxTop1, dist: null, avg: null },
      teacher_top1: null,
    },
    lineage: {
      parent: null,
      teacher: null,
      dataset: { name: options.dataset.name, sha256: options.dataset.sha256 },
      hyperparameters: {
        model: `${s.preset} (${result.parameters.toLocaleString('en-US')} parameters), trained from scratch`,
        optimization: {
          epochs: s.epochs,
          batch_size: s.batchSize,
          lr: s.lr,
          optimizer: 'adamw',
          weight_decay: s.weightDecay,
          no_weight_decay: '1-D params and *.bias (timm)',
          warmup_epochs: s.warmupEpochs,
          warmup_lr: s.warmupLr,
          min_lr: s.minLr,
          schedule: 'cosine per step (timm CosineLRScheduler, t_in_epochs=False)',
          label_smoothing: s.labelSmoothing,
        },
        augmentation: {
          crop: s.augment.crop?.kind ?? 'none',
          ...(s.augment.crop?.kind === 'padded' && { padding: s.augment.crop.padding ?? 0 }),
          horizontal_flip: s.augment.hflip ?? 0,
        },
        batch_norm: `precise BN: running statistics recomputed over ${s.bnStatImages} training images after training`,
        seed: s.seed,
        trainer: { kind: result.workers > 1 ? 'data-parallel' : 'local', workers: result.workers },
        train_seconds: Math.round(result.trainSeconds),
        images_per_second: Math.round(result.imagesPerSecond * 10) / 10,
      },
      git_commit: options.gitCommit,
      backend: result.backend,
    },
    extraFiles: {
      'curves.png': await renderCurvesPng(result.history, `${s.preset} teacher`),
    },
  });
  return { request, onnxTop1 };
}
