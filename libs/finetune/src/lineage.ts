/** Where a version came from: parent, teacher, data, hyperparameters, code and training backend. */
import { execFile } from 'node:child_process';
import type { Lineage } from '@deit-serve/registry';
import type { FineTuneJobSpec } from '@deit-serve/trainer-engine';
import type { FineTuneSources } from './sources';

/** `DEIT_GIT_COMMIT` (set by builds and images), else `git rev-parse HEAD` here; null when neither works. */
export async function gitCommit(env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const fromEnv = env['DEIT_GIT_COMMIT']?.trim();
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return new Promise((resolve) => {
    execFile('git', ['rev-parse', 'HEAD'], { timeout: 5_000 }, (error, stdout) => {
      const commit = stdout.trim();
      resolve(error === null && /^[0-9a-f]{7,64}$/.test(commit) ? commit : null);
    });
  });
}

export interface RunFacts {
  /** The trainer job publishing the version: a resumed job finds its version by it. */
  readonly jobId: string;
  readonly backend: string;
  readonly trainer: { readonly kind: string; readonly workers: number; readonly microBatchSize?: number };
  readonly attempts: number;
  readonly steps: number;
  /** Seconds of training steps over all attempts. */
  readonly trainSeconds: number;
  readonly imagesPerSecond: number;
  readonly gitCommit: string | null;
}

export function buildLineage(spec: FineTuneJobSpec, sources: FineTuneSources, facts: RunFacts): Lineage {
  const { student, teacher, data } = sources;
  return {
    parent: student.parent === undefined ? null : { ...student.parent },
    teacher: teacher?.description ?? null,
    dataset: { name: data.name, sha256: data.sha256 },
    hyperparameters: {
      student: student.description,
      student_adaptations: [...student.changes],
      dataset: {
        train_images: data.train.size,
        eval_images: data.eval.size,
        eval_set: data.evalSetName,
        validation_fraction: spec.dataset.validationFraction,
        ...(spec.dataset.maxTrainImages !== undefined && { max_train_images: spec.dataset.maxTrainImages }),
        ...(spec.dataset.maxEvalImages !== undefined && { max_eval_images: spec.dataset.maxEvalImages }),
      },
      distillation: {
        type: spec.distillation.type,
        alpha: spec.distillation.alpha,
        tau: spec.distillation.tau,
        soft_normalization: spec.distillation.softNormalization,
      },
      optimization: {
        epochs: spec.optimization.epochs,
        batch_size: spec.optimization.batchSize,
        base_lr: spec.optimization.baseLr,
        lr_fixed: spec.optimization.lrFixed,
        lr: spec.optimization.lr,
        optimizer: 'adamw',
        weight_decay: spec.optimization.weightDecay,
        no_weight_decay: '1-D params, *.bias, pos_embed, cls_token, dist_token (timm)',
        warmup_epochs: spec.optimization.warmupEpochs,
        warmup_lr: spec.optimization.warmupLr,
        min_lr: spec.optimization.minLr,
        schedule: 'cosine per step (timm CosineLRScheduler, t_in_epochs=False)',
        label_smoothing: spec.optimization.labelSmoothing,
        drop_path: spec.optimization.dropPath,
      },
      augmentation: {
        crop: spec.augmentation.crop,
        padding: spec.augmentation.padding,
        horizontal_flip: spec.augmentation.horizontalFlip,
        random_erasing: spec.augmentation.randomErasing,
        mixup_alpha: spec.augmentation.mixupAlpha,
        cutmix_alpha: spec.augmentation.cutmixAlpha,
      },
      trainable:
        spec.trainable.kind === 'all' ? 'all' : `last ${spec.trainable.blocks} blocks + norm + heads`,
      seed: spec.seed,
      eval_interval_epochs: spec.evalIntervalEpochs,
      trainer: {
        kind: facts.trainer.kind,
        workers: facts.trainer.workers,
        ...(facts.trainer.microBatchSize !== undefined && { micro_batch_size: facts.trainer.microBatchSize }),
      },
      attempts: facts.attempts,
      steps: facts.steps,
      train_seconds: Math.round(facts.trainSeconds),
      images_per_second: Number(facts.imagesPerSecond.toFixed(2)),
    },
    git_commit: facts.gitCommit,
    backend: facts.backend,
    job_id: facts.jobId,
  };
}
