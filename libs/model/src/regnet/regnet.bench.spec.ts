/**
 * Training-step timing on wasm; skipped unless REGNET_BENCH=1 (it takes tens of seconds):
 *   REGNET_BENCH=1 npx vitest run --config libs/model/vitest.config.ts src/regnet/regnet.bench
 * REGNET_BENCH_PRESET and REGNET_BENCH_BATCH pick the model and batch (default regnety_fmnist_28, 64);
 * REGNET_BENCH_CONFIG='{"groupWidth":48}' overrides preset fields, REGNET_BENCH_EVAL_ONLY=1 times
 * inference only, REGNET_BENCH_PROFILE=1 adds a per-kernel profile.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../backend';
import { isRegNetPresetName, REGNET_PRESETS, type RegNetConfig } from './presets';
import { createRegNet } from './regnet';

const enabled = process.env.REGNET_BENCH === '1';

describe.skipIf(!enabled)('RegNet training-step timing (wasm)', () => {
  it('forward + backward per batch', { timeout: 600_000 }, async () => {
    await initBackend('wasm');
    const presetName = process.env.REGNET_BENCH_PRESET ?? 'regnety_fmnist_28';
    if (!isRegNetPresetName(presetName)) throw new Error(`unknown preset ${presetName}`);
    const preset = REGNET_PRESETS[presetName];
    const batch = Number(process.env.REGNET_BENCH_BATCH ?? 64);
    const reps = Number(process.env.REGNET_BENCH_REPS ?? 5);
    const overrides = JSON.parse(process.env.REGNET_BENCH_CONFIG ?? '{}') as Partial<RegNetConfig>;
    const model = createRegNet({ preset: presetName, config: overrides, zeroInitLast: false });
    const vars = [...model.namedVariables().values()];
    const x = tf.randomNormal<tf.Rank.R4>([batch, 3, preset.imgSize, preset.imgSize]);
    const labels = tf.oneHot(
      tf.tensor1d(
        Array.from({ length: batch }, (_, i) => i % preset.numClasses),
        'int32',
      ),
      preset.numClasses,
    );
    // Both CPU time of this process and wall time: the machine is shared, and wall time varies up to
    // 3× with other users' load (the backend is single-threaded, so CPU ≈ wall on an idle machine).
    interface Timing {
      cpu: number;
      wall: number;
    }
    const timed = (run: () => void): Timing => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      run();
      const c = process.cpuUsage(c0);
      return { cpu: (c.user + c.system) / 1000, wall: performance.now() - t0 };
    };
    const step = (): Timing =>
      timed(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(labels, model.forward(x, { training: true })),
          vars,
        );
        value.dataSync();
        tf.dispose([value, ...Object.values(grads)]);
      });
    const inference = (): Timing =>
      timed(() => {
        const y = model.forward(x);
        y.dataSync();
        y.dispose();
      });
    const evalOnly = process.env.REGNET_BENCH_EVAL_ONLY === '1';
    inference();
    if (!evalOnly) step();
    const steps = evalOnly ? [] : Array.from({ length: reps }, step);
    const infers = Array.from({ length: reps }, inference);
    const fmt = (v: Timing[]): string => {
      if (v.length === 0) return 'not run';
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const cpu = v.map((t) => t.cpu);
      const wall = v.map((t) => t.wall);
      return `CPU min ${Math.min(...cpu).toFixed(0)} / median ${median(cpu).toFixed(0)} ms, wall min ${Math.min(...wall).toFixed(0)} / median ${median(wall).toFixed(0)} ms`;
    };
    console.log(
      `${presetName} ${JSON.stringify(overrides)} (${model.numParameters.toLocaleString('en')} params), batch ${batch}\n` +
        `  forward+backward: ${fmt(steps)}\n  eval forward: ${fmt(infers)}`,
    );
    if (process.env.REGNET_BENCH_PROFILE === '1') {
      const profile = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(labels, model.forward(x, { training: true })),
          vars,
        );
        value.dataSync();
        tf.dispose([value, ...Object.values(grads)]);
      });
      console.log(`peak tensor memory of a step: ${(profile.peakBytes / 2 ** 20).toFixed(0)} MiB`);
      const byKernel = new Map<string, number>();
      for (const k of profile.kernels)
        byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number));
      console.log(
        [...byKernel]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 15)
          .map(([k, ms]) => `${k} ${ms.toFixed(0)}`)
          .join(', '),
      );
      const byShape = new Map<string, [number, number]>();
      for (const k of profile.kernels) {
        if (k.name === '') continue;
        const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
        const [ms, count] = byShape.get(key) ?? [0, 0];
        byShape.set(key, [ms + (k.kernelTimeMs as number), count + 1]);
      }
      console.log(
        [...byShape]
          .sort((a, b) => b[1][0] - a[1][0])
          .slice(0, 30)
          .map(([k, [ms, c]]) => `${ms.toFixed(1)} ms ×${c} ${k}`)
          .join('\n'),
      );
    }
    expect(infers.length).toBe(reps);
    tf.dispose([x, labels]);
    model.dispose();
  });
});
