/**
 * A tiny two-head linear classifier on flat features, trained with the distillation loss: small
 * enough that the trainer tests run in milliseconds, while exercising the same code paths as DeiT
 * (two heads, a no-decay token-like parameter, an absent head_dist gradient for `none`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { distillationLoss, type DistillationLossOptions } from '../losses';
import type { HostBatch, NamedVariable, TrainTask } from '../task';

export interface LinearTaskOptions {
  readonly features: number;
  readonly classes: number;
  readonly seed: number;
  readonly loss: DistillationLossOptions;
}

/** This module's path, for `DataParallelTrainer`'s `taskModule`. */
export const LINEAR_TASK_MODULE = __filename;

let instance = 0;

export function createTrainTask(options: LinearTaskOptions): TrainTask {
  const { features, classes } = options;
  let state = options.seed >>> 0;
  // Deterministic small init (LCG), so separate processes can rebuild identical tasks.
  const random = (n: number) =>
    Float32Array.from({ length: n }, () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return (state / 2 ** 32 - 0.5) * 0.2;
    });
  const id = instance++;
  const variable = (name: string, shape: number[]): NamedVariable => ({
    name,
    variable: tf.variable(
      tf.tensor(random(shape.reduce((a, b) => a * b, 1)), shape),
      true,
      `linear_task_${id}/${name}`,
    ),
  });
  const params = [
    variable('cls_token', [1, features]),
    variable('head.weight', [features, classes]),
    variable('head.bias', [classes]),
    variable('head_dist.weight', [features, classes]),
    variable('head_dist.bias', [classes]),
  ];
  const [token, w, b, wd, bd] = params.map((p) => p.variable) as [
    tf.Variable,
    tf.Variable,
    tf.Variable,
    tf.Variable,
    tf.Variable,
  ];
  return {
    params,
    loss(batch: HostBatch) {
      const x = batch['features'];
      const labels = batch['labels'];
      const teacher = batch['teacher_logits'];
      if (x === undefined || labels === undefined || teacher === undefined)
        throw new Error('batch needs features, labels, teacher_logits');
      const input = tf.add(tf.tensor2d(x.data as Float32Array, [x.shape[0], features]), token);
      const value = distillationLoss(
        {
          clsLogits: tf.add(tf.matMul(input, w), b),
          distLogits: tf.add(tf.matMul(input, wd), bd),
          teacherLogits: tf.tensor2d(teacher.data as Float32Array, [teacher.shape[0], classes]),
          labels: tf.tensor1d(labels.data as Int32Array, 'int32'),
        },
        options.loss,
      );
      return { total: value.total, parts: { base: value.base, distillation: value.distillation } };
    },
  };
}

export function linearBatch(rows: number, features: number, classes: number, seed: number): HostBatch {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 22695477) + 1) >>> 0;
    return state / 2 ** 32;
  };
  return {
    features: {
      data: Float32Array.from({ length: rows * features }, () => next() * 2 - 1),
      shape: [rows, features],
    },
    labels: { data: Int32Array.from({ length: rows }, () => Math.floor(next() * classes)), shape: [rows] },
    teacher_logits: {
      data: Float32Array.from({ length: rows * classes }, () => next() * 4 - 2),
      shape: [rows, classes],
    },
  };
}
