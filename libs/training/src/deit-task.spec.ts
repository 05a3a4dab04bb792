import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type DeitConfig } from '@deit-serve/model';
import { DataParallelTrainer } from './data-parallel/trainer';
import { createTrainTask, DEIT_TASK_MODULE, type DeitTaskOptions } from './deit-task';
import { LocalTrainer } from './local-trainer';
import { registerGradients } from './register-gradients';
import type { HostBatch } from './task';

const TINY: DeitConfig = {
  imgSize: 8,
  patchSize: 4,
  inChans: 3,
  embedDim: 16,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
  numClasses: 3,
  distilled: true,
};
const WORKER_START_TIMEOUT = 60_000; // each worker compiles the model sources and instantiates wasm

function batch(rows: number, seed: number): HostBatch {
  let state = seed;
  const next = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  return {
    pixel_values: {
      data: Float32Array.from({ length: rows * 3 * 8 * 8 }, () => next() * 2 - 1),
      shape: [rows, 3, 8, 8],
    },
    labels: { data: Int32Array.from({ length: rows }, () => Math.floor(next() * 3)), shape: [rows] },
    teacher_logits: { data: Float32Array.from({ length: rows * 3 }, () => next() * 4 - 2), shape: [rows, 3] },
  };
}

describe('DeiT distillation task', () => {
  let parallel: DataParallelTrainer | undefined;
  beforeAll(async () => {
    await initBackend('wasm');
    await registerGradients();
  });
  afterAll(async () => {
    await parallel?.close();
  });

  it(
    'trains the same in one process and in two workers (hard distillation)',
    async () => {
      const taskOptions: DeitTaskOptions = {
        preset: TINY,
        seed: 3,
        loss: { type: 'hard', alpha: 0.5, labelSmoothing: 0.1 },
      };
      const optimizer = { lr: 1e-3 };
      const task = createTrainTask(taskOptions);
      const local = new LocalTrainer(task, { optimizer, microBatchSize: 3 });
      parallel = await DataParallelTrainer.create({
        workers: 2,
        taskModule: DEIT_TASK_MODULE,
        taskOptions,
        optimizer,
        microBatchSize: 2,
      });
      for (let step = 0; step < 2; step++) {
        const b = batch(5, 10 + step);
        const expected = local.step(b);
        const got = await parallel.step(b);
        expect(got.losses['total']).toBeCloseTo(expected.losses['total'], 5);
        expect(got.losses['distillation']).toBeCloseTo(expected.losses['distillation'], 5);
      }
      const weights = parallel.getWeights();
      for (const [name, variable] of task.model.namedVariables()) {
        const values = variable.dataSync();
        const other = weights.get(name) as Float32Array;
        const maxDiff = Math.max(...Array.from(values, (v, k) => Math.abs(v - other[k])));
        expect([name, maxDiff < 1e-5]).toEqual([name, true]);
      }
      task.model.dispose();
    },
    WORKER_START_TIMEOUT,
  );

  it("leaves head_dist untouched with 'none' and moves it with 'soft'", () => {
    for (const type of ['none', 'soft'] as const) {
      const task = createTrainTask({ preset: TINY, seed: 1, loss: { type, tau: 2 } });
      const before = task.model.getWeights();
      new LocalTrainer(task, { optimizer: { lr: 1e-2 }, microBatchSize: 4 }).step(batch(4, 99));
      const after = task.model.getWeights();
      const moved = (name: string) =>
        Array.from(after.get(name)?.data ?? []).some((v, k) => v !== before.get(name)?.data[k]);
      expect([type, moved('head.weight'), moved('head_dist.weight'), moved('head_dist.bias')]).toEqual([
        type,
        true,
        type !== 'none',
        type !== 'none',
      ]);
      task.model.dispose();
    }
  });
});
