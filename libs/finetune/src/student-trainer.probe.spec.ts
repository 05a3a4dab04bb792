import type { DeiT } from '@deit-serve/model';
import { AdamW } from '@deit-serve/training';
import { describe, expect, it } from 'vitest';
import { optimizerSnapshot } from './checkpoint';
import { PROBE, ProbingTrainer } from './student-trainer';

/** A stand-in engine whose steps take `msPerRow` of a fake clock and count themselves. */
function fakeEngine(kind: 'local' | 'data-parallel', msPerRow: number, clock: { now: number }) {
  const weights = new Map([['w', new Float32Array([0])]]);
  const optimizer = new AdamW([{ name: 'w', shape: [1] }], { lr: 0.1 });
  const engine = {
    kind,
    workers: kind === 'local' ? 1 : 2,
    microBatchSize: 8,
    optimizer,
    model: {} as DeiT,
    steps: 0,
    closed: false,
    loaded: undefined as ReadonlyMap<string, Float32Array> | undefined,
    step: (_batch: unknown, _lr: number) => {
      clock.now += msPerRow * 8;
      engine.steps++;
      weights.set('w', new Float32Array([engine.steps]));
      optimizer.step(new Map([['w', new Float32Array(1)]]), new Map([['w', new Float32Array([1])]]));
      return Promise.resolve({ losses: { total: 1 }, rows: 8 });
    },
    sync: () => undefined,
    restoreOptimizer: () => undefined,
    trainableWeights: () => new Map(weights),
    loadTrainableWeights: (w: ReadonlyMap<string, Float32Array>) => void (engine.loaded = w),
    close: () => {
      engine.closed = true;
      return Promise.resolve();
    },
  };
  return engine;
}

const probeSteps = PROBE.warmupSteps + PROBE.timedSteps;

async function run(parallelMs: number, localMs: number) {
  const clock = { now: 0 };
  const parallel = fakeEngine('data-parallel', parallelMs, clock);
  const locals: Array<ReturnType<typeof fakeEngine>> = [];
  const logs: string[] = [];
  const trainer = new ProbingTrainer(
    parallel,
    (state) => {
      const local = fakeEngine('local', localMs, clock);
      expect(state.weights.get('w')?.[0]).toBe(probeSteps); // the parallel steps' progress moved over
      expect(state.optimizer.steps['w']).toBe(probeSteps);
      locals.push(local);
      return local;
    },
    (m) => logs.push(m),
    () => clock.now,
  );
  for (let i = 0; i < 3 * probeSteps; i++) await trainer.step({}, 0.1);
  return { trainer, parallel, local: locals[0], logs };
}

describe('ProbingTrainer', () => {
  it('keeps data parallelism when it is faster by the margin, with the local steps handed back', async () => {
    const { trainer, parallel, local, logs } = await run(1, 2);
    expect(trainer.kind).toBe('data-parallel');
    expect(logs).toEqual([
      'measured data-parallel (2 workers) 1000.0 images/s vs one thread 500.0 images/s: training data-parallel',
    ]);
    expect(local?.closed).toBe(true);
    expect(parallel.loaded?.get('w')?.[0]).toBe(probeSteps);
    expect(parallel.steps).toBe(3 * probeSteps - probeSteps);
  });

  it('switches to one thread when data parallelism does not pay', async () => {
    const { trainer, parallel, local, logs } = await run(1, 1.05);
    expect(trainer.kind).toBe('local');
    expect(logs[0]).toMatch(/training in one thread$/);
    expect(parallel.closed).toBe(true);
    expect(local?.steps).toBe(2 * probeSteps);
    expect(optimizerSnapshot(trainer.optimizer).steps['w']).toBe(2 * probeSteps);
  });
});
