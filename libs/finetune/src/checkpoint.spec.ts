import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTensor } from '@deit-serve/model';
import { AdamW } from '@deit-serve/training';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CHECKPOINT_FORMAT,
  checkpointFileName,
  decodeCheckpoint,
  encodeCheckpoint,
  optimizerSnapshot,
  pruneCheckpoints,
  restoreOptimizer,
  checkpointOptimizer,
  type CheckpointState,
} from './checkpoint';

const state = (overrides: Partial<CheckpointState> = {}): CheckpointState => ({
  format: CHECKPOINT_FORMAT,
  specHash: 'abc',
  epochsCompleted: 3,
  nextBatch: 0,
  globalStep: 12,
  rng: { seed: 1, epoch: 3, batch: 0 },
  optimizerSteps: {},
  trainSeconds: 1.5,
  history: { losses: [{ epoch: 0.5, total: 2, base: 1.5, distillation: 2.5, lr: 1e-3 }], evals: [] },
  ...overrides,
});

describe('checkpoints', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('round-trip weights, AdamW moments and step counts, and the run position', () => {
    const params = [
      { name: 'head.weight', shape: [2, 3] },
      { name: 'head.bias', shape: [2] },
    ];
    const optimizer = new AdamW(params, { lr: 0.1 });
    const weights = new Map([
      ['head.weight', new Float32Array([1, 2, 3, 4, 5, 6])],
      ['head.bias', new Float32Array([0.5, -0.5])],
    ]);
    const grads = new Map([
      ['head.weight', new Float32Array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])],
      ['head.bias', undefined],
    ]);
    optimizer.step(weights, grads);
    const { moments, steps } = optimizerSnapshot(optimizer);
    expect(steps).toEqual({ 'head.weight': 1, 'head.bias': 0 });
    const named = new Map([...weights].map(([n, d]) => [n, hostTensor(n === 'head.bias' ? [2] : [2, 3], d)]));
    const bytes = encodeCheckpoint(state({ optimizerSteps: steps }), named, moments);

    const decoded = decodeCheckpoint(bytes);
    expect(decoded.state.epochsCompleted).toBe(3);
    expect(decoded.state.history.losses).toHaveLength(1);
    expect(Array.from(decoded.weights.get('head.weight')?.data ?? [])).toEqual(
      Array.from(weights.get('head.weight') ?? []),
    );
    const restored = new AdamW(params, { lr: 0.1 });
    restoreOptimizer(restored, checkpointOptimizer(decoded));
    expect(restored.stepCount('head.weight')).toBe(1);
    expect(optimizerSnapshot(restored).moments.get('head.weight')?.expAvgSq).toEqual(
      moments.get('head.weight')?.expAvgSq,
    );

    const other = new AdamW([{ name: 'head_dist.weight', shape: [2, 3] }], { lr: 0.1 });
    expect(() => restoreOptimizer(other, checkpointOptimizer(decoded))).toThrow(
      /does not match the trainable parameters.*head_dist\.weight/,
    );
  });

  it('refuses files that are not checkpoints', () => {
    const plain = encodeCheckpoint(state(), new Map(), new Map());
    expect(() => decodeCheckpoint(plain.subarray(0, 4))).toThrow();
  });

  it('keeps the newest two checkpoint files', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    const names = [
      checkpointFileName(1, 0),
      checkpointFileName(2, 0),
      checkpointFileName(2, 5),
      checkpointFileName(10, 0),
    ];
    for (const name of [...names, 'student-start.safetensors']) await writeFile(join(dir, name), 'x');
    expect(await pruneCheckpoints(dir, 2)).toEqual([checkpointFileName(2, 0), checkpointFileName(1, 0)]);
    expect((await readdir(dir)).sort()).toEqual(
      [checkpointFileName(10, 0), checkpointFileName(2, 5), 'student-start.safetensors'].sort(),
    );
  });
});
