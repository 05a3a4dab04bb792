import { describe, expect, it } from 'vitest';
import { describeEval, freshTrainingState, trainingLine } from './train-phase';

describe('train phase', () => {
  it("names the backend as the backend describes itself: a native one is not called 'one thread'", () => {
    const local = { kind: 'local', workers: 1, microBatchSize: 8, optimizer: { lr: 1e-3 } } as const;
    expect(trainingLine('fm:3', 'tensorflow (TensorFlow 2.21.0, CPU)', local, 16)).toBe(
      'training fm:3 on tensorflow (TensorFlow 2.21.0, CPU), batch 16 in passes of ≤ 8 rows, 1.00e-3 peak lr',
    );
    expect(trainingLine('fm:3', 'wasm (1 thread)', { ...local, kind: 'data-parallel', workers: 4 }, 64)).toBe(
      'training fm:3 on wasm (1 thread), data-parallel across 4 workers, batch 64 in passes of ≤ 8 rows, 1.00e-3 peak lr',
    );
  });

  it('starts from nothing done, and describes an evaluation per head', () => {
    expect(freshTrainingState()).toEqual({
      history: { losses: [], evals: [] },
      trainSeconds: 0,
      globalStep: 0,
    });
    expect(
      describeEval({
        epoch: 1,
        dataset: 'val',
        images: 40,
        cls: { top1: 0.5, top5: 1 },
        average: { top1: 0.525, top5: 1 },
        teacherTop1: 0.75,
      }),
    ).toBe('top-1 cls 50.00% dist – avg 52.50%, teacher 75.00% on 40 images');
  });
});
