import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@deit-serve/model';
import { registerGradients } from '../register-gradients';
import { LocalTrainer } from '../local-trainer';
import {
  createTrainTask,
  LINEAR_TASK_MODULE,
  linearBatch,
  type LinearTaskOptions,
} from '../testing/linear-task';
import { DataParallelTrainer } from './trainer';

const WORKER_START_TIMEOUT = 30_000; // each worker compiles its sources and instantiates wasm

function optionsFor(type: LinearTaskOptions['loss']['type']): LinearTaskOptions {
  return { features: 6, classes: 4, seed: 7, loss: { type, alpha: 0.5, tau: 2, labelSmoothing: 0.1 } };
}

describe('DataParallelTrainer', () => {
  const trainers: DataParallelTrainer[] = [];
  beforeAll(async () => {
    await initBackend('wasm');
    await registerGradients();
  });
  afterAll(async () => {
    await Promise.all(trainers.map((t) => t.close()));
  });

  for (const type of ['soft', 'none'] as const) {
    it(
      `matches the single-process step on the full batch (${type}, uneven slices, micro-batches)`,
      async () => {
        const taskOptions = optionsFor(type);
        const optimizer = { lr: 0.05, weightDecay: 0.1 };
        const local = new LocalTrainer(createTrainTask(taskOptions), { optimizer, microBatchSize: 5 });
        const parallel = await DataParallelTrainer.create({
          workers: 2,
          taskModule: LINEAR_TASK_MODULE,
          taskOptions,
          optimizer,
          microBatchSize: 2,
        });
        trainers.push(parallel);
        const initial = parallel.getWeights();
        for (let step = 0; step < 3; step++) {
          const batch = linearBatch(7, 6, 4, 100 + step); // 7 rows: slices of 4 and 3, micro-batches of 2
          const expected = local.step(batch, 0.05 / (step + 1));
          const got = await parallel.step(batch, 0.05 / (step + 1));
          expect(got.rows).toBe(7);
          for (const key of ['total', 'base', 'distillation'])
            expect(got.losses[key]).toBeCloseTo(expected.losses[key], 5);
        }
        const localWeights = new Map(createTrainTask(taskOptions).params.map((p) => [p.name, 0]));
        expect([...parallel.getWeights().keys()]).toEqual([...localWeights.keys()]);
        const weights = parallel.getWeights();
        for (const [name, values] of weights) {
          const reference = local['weights'][parallel.params.findIndex((p) => p.name === name)];
          const maxDiff = Math.max(...Array.from(values, (v, k) => Math.abs(v - reference[k])));
          expect([name, maxDiff < 1e-5]).toEqual([name, true]);
        }
        const moved = (name: string) =>
          Array.from(weights.get(name) ?? []).some((v, k) => v !== initial.get(name)?.[k]);
        expect(moved('head.weight')).toBe(true);
        // With no distillation the dist head has no gradient: AdamW skips it, not even decaying it.
        expect(moved('head_dist.weight')).toBe(type !== 'none');
      },
      WORKER_START_TIMEOUT,
    );
  }

  it(
    'fails the step when a worker fails, and every later step',
    async () => {
      const trainer = await DataParallelTrainer.create({
        workers: 1,
        taskModule: LINEAR_TASK_MODULE,
        taskOptions: optionsFor('soft'),
        optimizer: { lr: 0.1 },
        microBatchSize: 4,
      });
      trainers.push(trainer);
      const { features, labels } = linearBatch(3, 6, 4, 1);
      await expect(trainer.step({ features, labels })).rejects.toThrow(
        /worker 0: batch needs features, labels, teacher_logits/,
      );
      await expect(trainer.step(linearBatch(3, 6, 4, 1))).rejects.toThrow(/batch needs/);
    },
    WORKER_START_TIMEOUT,
  );

  it(
    'reports a task that fails to build as an error of create()',
    async () => {
      await expect(
        DataParallelTrainer.create({
          workers: 1,
          taskModule: '/nonexistent/task.js',
          taskOptions: {},
          optimizer: { lr: 1 },
          microBatchSize: 1,
        }),
      ).rejects.toThrow(/worker 0.*Cannot find module/);
    },
    WORKER_START_TIMEOUT,
  );
});
