/**
 * Training-step benchmark: DeiT-Ti distilled, 32×32 input, patch 4, 10 classes, batch 64; forward of
 * both heads + distillation loss + backward + AdamW. Measures, in one run on the same machine:
 *   tfjs-local  one process, gradients accumulated over micro-batches (the wasm heap caps a pass)
 *   tfjs-dp     data-parallel worker_threads (one wasm instance per core), gradients averaged
 *   torch       the identical step in plain PyTorch (torch_step.py), OpenBLAS-openmp, 2 threads
 * and prints ms/step with the ratio to PyTorch. `--profile` adds a per-kernel breakdown of one
 * micro-batch forward+backward (tf.profile), to find what dominates.
 *
 * Usage: bench/train-step/run.sh [--only tfjs-local,tfjs-dp,torch] [--steps 4] [--warmup 1] [--batch 64]
 *        [--micro 16|auto] [--workers 2] [--loss soft|hard] [--profile] [--python /usr/bin/python3]
 *        [--preset deit_pico_distilled_patch7_28]   (another distilled 10-class preset; tfjs stacks only)
 *        [--teacher regnety_fmnist_28]   (a RegNetY classifier step instead, the zoo's teacher; tfjs only)
 *        [--backend wasm|tensorflow]     (tensorflow: tfjs-node, built by `npm ci`; default wasm)
 *        [--report]   (one stack: print its samples and the process's peak RSS as a last JSON line)
 * `--micro auto` picks what the trainers pick: `defaultMicroBatch` of each pass's rows for DeiT, the
 * whole slice for RegNetY (the zoo's teacher training). run.sh measures here only when a flag other
 * than --steps, --warmup and --python is given (`--only tfjs-local,tfjs-dp,torch`: all three in one
 * process); without one it runs the comparison, each stack in its own process (comparison.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { describeBackend, initBackend, type BackendName } from '../../libs/model/src/backend';
import { DEIT_PRESETS, type DeitPresetName, isDeitPresetName } from '../../libs/model/src/deit/presets';
import { defaultMicroBatch } from '../../libs/finetune/src/student-trainer';
import {
  isRegNetPresetName,
  REGNET_PRESETS,
  type RegNetPresetName,
} from '../../libs/model/src/regnet/presets';
import { DataParallelTrainer } from '../../libs/training/src/data-parallel/trainer';
import { createTrainTask, DEIT_TASK_MODULE, type DeitTaskOptions } from '../../libs/training/src/deit-task';
import { accumulateGradients } from '../../libs/training/src/gradients';
import { LocalTrainer } from '../../libs/training/src/local-trainer';
import {
  createTrainTask as createRegNetTrainTask,
  REGNET_TASK_MODULE,
  type RegNetTaskOptions,
} from '../../libs/training/src/regnet-task';
import { threadCpuMs, wasmHeapBytes } from '../../libs/training/src/resources';
import { registerGradients } from '../../libs/training/src/register-gradients';
import type { HostBatch, TrainTask } from '../../libs/training/src/task';
import { type ChildReport, reportLine, type Stack, stats } from './results';

interface Args {
  steps: number;
  warmup: number;
  batch: number;
  micro: number | 'auto';
  workers: number;
  loss: 'soft' | 'hard';
  only: Stack[];
  profile: boolean;
  python: string;
  preset: DeitPresetName;
  teacher: RegNetPresetName | undefined;
  backend: BackendName;
  report: boolean;
}

const DEFAULT_PRESET: DeitPresetName = 'deit_tiny_distilled_patch4_32';
const CLASSES = 10;
// The step both stacks run: DeiT defaults for the loss (α 0.5, τ 1, numel), smoothing 0.1, AdamW.
const LOSS = { alpha: 0.5, tau: 1, labelSmoothing: 0.1, softNormalization: 'numel' } as const;
const OPTIMIZER = { lr: 5e-4, weightDecay: 0.05 };

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    steps: 4,
    warmup: 1,
    batch: 64,
    micro: 16,
    workers: 2,
    loss: 'soft',
    only: ['tfjs-local', 'tfjs-dp', 'torch'],
    profile: false,
    python: '/usr/bin/python3',
    preset: DEFAULT_PRESET,
    teacher: undefined,
    backend: 'wasm',
    report: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const count = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min}, got ${v}`);
      return n;
    };
    switch (flag) {
      case '--steps':
        args.steps = count(1);
        break;
      case '--warmup':
        args.warmup = count(0);
        break;
      case '--batch':
        args.batch = count(1);
        break;
      case '--micro':
        if (argv[i + 1] === 'auto') {
          args.micro = 'auto';
          i++;
        } else args.micro = count(1);
        break;
      case '--workers':
        args.workers = count(1);
        break;
      case '--loss': {
        const v = value();
        if (v !== 'soft' && v !== 'hard') throw new Error('--loss must be soft or hard');
        args.loss = v;
        break;
      }
      case '--only': {
        const stacks = value().split(',');
        const unknown = stacks.filter((s) => s !== 'tfjs-local' && s !== 'tfjs-dp' && s !== 'torch');
        if (unknown.length > 0)
          throw new Error(`--only takes tfjs-local, tfjs-dp, torch; got ${unknown.join(', ')}`);
        args.only = stacks as Stack[];
        break;
      }
      case '--report':
        args.report = true;
        break;
      case '--profile':
        args.profile = true;
        break;
      case '--python':
        args.python = value();
        break;
      case '--preset': {
        const v = value();
        if (!isDeitPresetName(v) || !DEIT_PRESETS[v].distilled || DEIT_PRESETS[v].numClasses !== CLASSES)
          throw new Error(`--preset must name a distilled ${CLASSES}-class preset, got ${v}`);
        args.preset = v;
        break;
      }
      case '--teacher': {
        const v = value();
        if (!isRegNetPresetName(v)) throw new Error(`--teacher must name a RegNetY preset, got ${v}`);
        args.teacher = v;
        break;
      }
      case '--backend': {
        const v = value();
        if (v !== 'wasm' && v !== 'tensorflow') throw new Error('--backend must be wasm or tensorflow');
        args.backend = v;
        break;
      }
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  // torch_step.py builds the default network only: a ratio against another model would be meaningless.
  if ((args.preset !== DEFAULT_PRESET || args.teacher !== undefined) && args.only.includes('torch'))
    throw new Error(`--preset and --teacher run the tfjs stacks only: add --only tfjs-local,tfjs-dp`);
  if (args.report && args.only.length !== 1)
    throw new Error('--report measures one stack per process: name it with --only');
  return args;
}

/** Deterministic synthetic batch (the step's cost does not depend on the values). */
function makeBatch(rows: number, img: number): HostBatch {
  let state = 12345;
  const uniform = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  return {
    pixel_values: {
      data: Float32Array.from({ length: rows * 3 * img * img }, () => uniform() * 4 - 2),
      shape: [rows, 3, img, img],
    },
    labels: { data: Int32Array.from({ length: rows }, () => Math.floor(uniform() * CLASSES)), shape: [rows] },
    teacher_logits: {
      data: Float32Array.from({ length: rows * CLASSES }, () => uniform() * 6 - 3),
      shape: [rows, CLASSES],
    },
  };
}

function gib(bytes: number | undefined): string {
  return bytes === undefined ? 'n/a' : `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

function fmt(ms: number): string {
  return ms.toFixed(0).padStart(7);
}

/** One measured step: wall time, and CPU time spent on the critical path (see the summary's note). */
interface Sample {
  readonly wallMs: number;
  readonly cpuMs: number | undefined;
}

/** The step to measure: the DeiT distillation task, or a RegNetY classifier (`--teacher`). */
interface BenchTask {
  readonly title: string;
  readonly imgSize: number;
  /** For data-parallel workers. */
  readonly module: string;
  readonly options: DeitTaskOptions | RegNetTaskOptions;
  /** Rows per forward/backward pass for passes of `rows` (a process's or a worker's share). */
  microBatch(rows: number): number;
  create(): TrainTask & { readonly model: { dispose(): void } };
}

function benchTask(args: Args): BenchTask {
  if (args.teacher !== undefined) {
    const { imgSize, stageWidths } = REGNET_PRESETS[args.teacher];
    const options: RegNetTaskOptions = {
      preset: args.teacher,
      config: { numClasses: CLASSES },
      seed: 0,
      labelSmoothing: LOSS.labelSmoothing,
    };
    return {
      title: `${args.teacher} (${imgSize}x${imgSize}, widths ${stageWidths.join('/')}), ${CLASSES} classes, batch ${args.batch}, cross-entropy, AdamW`,
      imgSize,
      module: REGNET_TASK_MODULE,
      options,
      // The zoo's teacher training passes whole slices (a RegNet step fits the wasm heap easily).
      microBatch: (rows) => (args.micro === 'auto' ? rows : args.micro),
      create: () => createRegNetTrainTask(options),
    };
  }
  const { imgSize, patchSize } = DEIT_PRESETS[args.preset];
  const options: DeitTaskOptions = {
    preset: args.preset,
    numClasses: CLASSES,
    seed: 0,
    loss: { type: args.loss, ...LOSS },
  };
  return {
    title: `${args.preset} (${imgSize}x${imgSize}, patch ${patchSize}), ${CLASSES} classes, batch ${args.batch}, ${args.loss} distillation, AdamW`,
    imgSize,
    module: DEIT_TASK_MODULE,
    options,
    microBatch: (rows) =>
      args.micro === 'auto' ? defaultMicroBatch(DEIT_PRESETS[args.preset], rows, args.backend) : args.micro,
    create: () => createTrainTask(options),
  };
}

async function benchLocal(args: Args, spec: BenchTask, batch: HostBatch, micro: number): Promise<Sample[]> {
  const task = spec.create();
  // Native TensorFlow computes on its own thread pools, so the whole process's CPU is the step's.
  const cpuNow = (): number | undefined => {
    if (args.backend !== 'tensorflow') return threadCpuMs();
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const trainer = new LocalTrainer(task, { optimizer: OPTIMIZER, microBatchSize: micro });
  const samples: Sample[] = [];
  for (let i = 0; i < args.warmup + args.steps; i++) {
    const cpu0 = cpuNow();
    const t0 = performance.now();
    const result = trainer.step(batch);
    const wallMs = performance.now() - t0;
    const cpu1 = cpuNow();
    const cpuMs = cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0;
    if (i >= args.warmup) samples.push({ wallMs, cpuMs });
    console.log(
      `  tfjs-local step ${i}${i < args.warmup ? ' (warm-up)' : ''}: ${fmt(wallMs)} ms, cpu ${cpuMs?.toFixed(0) ?? 'n/a'} ms` +
        `  (optimizer+upload ${result.optimizerMs.toFixed(0)} ms, loss ${result.losses['total']?.toFixed(4)})`,
    );
  }
  console.log(
    `  wasm heap after the steps: ${gib(wasmHeapBytes())}; process RSS ${gib(process.memoryUsage().rss)}, peak ${gib(peakRssBytes())}`,
  );
  if (args.profile) await profileMicroBatch(task, batch, micro);
  task.model.dispose();
  return samples;
}

async function benchDataParallel(
  args: Args,
  spec: BenchTask,
  batch: HostBatch,
  micro: number,
): Promise<Sample[]> {
  const t0 = performance.now();
  const trainer = await DataParallelTrainer.create({
    workers: args.workers,
    taskModule: spec.module,
    taskOptions: spec.options,
    optimizer: OPTIMIZER,
    microBatchSize: micro,
    backend: args.backend,
  });
  console.log(`  started ${args.workers} workers in ${(performance.now() - t0).toFixed(0)} ms`);
  const samples: Sample[] = [];
  try {
    for (let i = 0; i < args.warmup + args.steps; i++) {
      const s0 = performance.now();
      const result = await trainer.step(batch);
      const wallMs = performance.now() - s0;
      const workerCpu = result.workerMs.map((w) => w.cpu);
      // Critical path on idle cores: the slowest worker, then the leader's reduce + AdamW.
      const cpuMs = workerCpu.some((c) => c === undefined)
        ? undefined
        : Math.max(...workerCpu.map((c) => c ?? 0)) + result.optimizerMs;
      if (i >= args.warmup) samples.push({ wallMs, cpuMs });
      const workers = result.workerMs
        .map(
          (w) =>
            `${w.load.toFixed(0)}+${w.compute.toFixed(0)} cpu ${w.cpu?.toFixed(0) ?? 'n/a'} heap ${gib(w.heapBytes)}`,
        )
        .join('; ');
      console.log(
        `  tfjs-dp step ${i}${i < args.warmup ? ' (warm-up)' : ''}: ${fmt(wallMs)} ms  (workers load+grad ${workers};` +
          ` reduce+AdamW ${result.optimizerMs.toFixed(0)} ms; loss ${result.losses['total']?.toFixed(4)})`,
      );
    }
  } finally {
    await trainer.close();
  }
  console.log(`  leader process peak RSS (workers are threads of it): ${gib(peakRssBytes())}`);
  return samples;
}

/** Peak resident set of this process (VmHWM), undefined where /proc is absent. */
function peakRssBytes(): number | undefined {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Per-kernel time of one micro-batch forward+backward, summed by kernel name. */
async function profileMicroBatch(task: TrainTask, batch: HostBatch, micro: number): Promise<void> {
  const rows = Math.min(micro, batch['labels']?.shape[0] ?? micro);
  const slice: HostBatch = Object.fromEntries(
    Object.entries(batch).map(([k, a]) => {
      const row = a.shape.slice(1).reduce((x, y) => x * y, 1);
      return [k, { data: a.data.subarray(0, rows * row), shape: [rows, ...a.shape.slice(1)] }];
    }),
  );
  const byKernel = new Map<string, { ms: number; count: number }>();
  let total = 0;
  // On wasm every kernel is synchronous, so the profiler's per-kernel wall times are exact.
  const info = await tf.profile(() => {
    accumulateGradients(task, slice, { microBatchSize: rows });
  });
  const backend = tf.getBackend();
  for (const k of info.kernels) {
    // Ops and custom-gradient scopes are recorded too, around the kernels they run: count leaves only.
    if (tf.getKernel(k.name, backend) === undefined) continue;
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const entry = byKernel.get(key) ?? { ms: 0, count: 0 };
    entry.ms += ms;
    entry.count += 1;
    byKernel.set(key, entry);
    total += ms;
  }
  console.log(
    `\n  profile: one micro-batch of ${rows} (forward + backward), kernel time ${total.toFixed(0)} ms; top kernels (name, input shapes):`,
  );
  for (const [key, { ms, count }] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) {
    console.log(
      `  ${ms.toFixed(1).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%  ×${String(count).padStart(3)}  ${key}`,
    );
  }
}

function benchTorch(
  args: Args,
):
  { samples: Sample[]; info: string; label: string; peakRssBytes: number | undefined } | { skipped: string } {
  const script = join(__dirname, 'torch_step.py');
  if (!existsSync(args.python)) return { skipped: `${args.python} not found` };
  const result = spawnSync(
    args.python,
    [
      script,
      '--steps',
      String(args.steps),
      '--warmup',
      String(args.warmup),
      '--batch',
      String(args.batch),
      '--loss',
      args.loss,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 30 * 60_000 },
  );
  if (result.status !== 0)
    return { skipped: `torch_step.py failed (status ${result.status}): ${result.stdout.slice(-2000)}` };
  const lines = result.stdout.trim().split('\n');
  for (const line of lines.slice(0, -1)) console.log(`  ${line}`);
  const summary = JSON.parse(lines[lines.length - 1]) as {
    times_ms?: number[];
    cpu_ms?: number[];
    threads?: number;
    info?: string;
    peak_rss_bytes?: number;
    label?: string;
    skipped?: string;
  };
  if (summary.skipped !== undefined || summary.times_ms === undefined)
    return { skipped: summary.skipped ?? 'no times' };
  const threads = summary.threads ?? 1;
  // Critical path on idle cores, if the threads split the work evenly: CPU time / threads.
  const samples = summary.times_ms.map((wallMs, i) => {
    const cpu = summary.cpu_ms?.[i];
    return { wallMs, cpuMs: cpu === undefined ? undefined : cpu / threads };
  });
  const info = summary.info ?? '';
  return { samples, info, label: summary.label ?? info, peakRssBytes: summary.peak_rss_bytes };
}

export async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  const spec = benchTask(args);
  const batch = makeBatch(args.batch, spec.imgSize);
  const backend = await initBackend(args.backend);
  if (backend !== args.backend)
    throw new Error(`backend ${args.backend} is not available here (got ${backend})`);
  await registerGradients();
  console.log(`${spec.title}; tfjs ${tf.version_core} on ${describeBackend()}`);
  console.log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (2 cores; other load inflates every number)`,
  );
  const results = new Map<string, Sample[]>();
  let torchNote = '';
  // With --report there is exactly one stack: what the comparison reads back.
  let report: ChildReport | undefined;
  /** A tfjs stack's samples into the table, and its report line's content. */
  const recordTfjs = (stack: Stack, label: string, samples: Sample[]): ChildReport => {
    results.set(label, samples);
    return { stack, label, batch: args.batch, timesMs: wallTimes(samples), peakRssBytes: peakRssBytes() };
  };
  for (const stack of args.only) {
    console.log(`\n${stack}:`);
    switch (stack) {
      case 'tfjs-local': {
        const micro = spec.microBatch(args.batch);
        const label = `tfjs-${args.backend}, 1 process, micro-batch ${micro}`;
        report = recordTfjs(stack, label, await benchLocal(args, spec, batch, micro));
        break;
      }
      case 'tfjs-dp': {
        const micro = spec.microBatch(Math.ceil(args.batch / args.workers));
        const label = `tfjs-${args.backend}, ${args.workers} workers, micro-batch ${micro}`;
        report = recordTfjs(stack, label, await benchDataParallel(args, spec, batch, micro));
        break;
      }
      case 'torch': {
        const torch = benchTorch(args);
        if ('skipped' in torch) {
          torchNote = `PyTorch skipped: ${torch.skipped}`;
          report = {
            stack,
            label: 'torch',
            batch: args.batch,
            timesMs: [],
            peakRssBytes: undefined,
            skipped: torch.skipped,
          };
        } else {
          results.set('torch', torch.samples);
          torchNote = torch.info;
          report = {
            stack,
            label: torch.label,
            batch: args.batch,
            timesMs: wallTimes(torch.samples),
            peakRssBytes: torch.peakRssBytes,
          };
        }
        break;
      }
    }
  }
  const torch = results.get('torch');
  const torchWall = torch === undefined ? undefined : stats(torch.map((s) => s.wallMs));
  const torchCpu = cpuMedian(torch);
  const ratio = (value: number, reference: number | undefined): string =>
    reference === undefined ? '' : `${(value / reference).toFixed(2)}x`;
  console.log(`\nms/step after ${args.warmup} warm-up step(s), ${args.steps} measured; ratios to PyTorch`);
  console.log(
    `  ${''.padEnd(42)} ${'median'.padStart(7)} ${'ratio'.padStart(6)} ${'min'.padStart(7)} ${'ratio'.padStart(6)}` +
      ` | ${'CPU est.'.padStart(8)} ${'ratio'.padStart(6)}`,
  );
  for (const [name, samples] of results) {
    const wall = stats(samples.map((s) => s.wallMs));
    const cpu = cpuMedian(samples);
    console.log(
      `  ${name.padEnd(42)} ${fmt(wall.median)} ${ratio(wall.median, torchWall?.median).padStart(6)}` +
        ` ${fmt(wall.min)} ${ratio(wall.min, torchWall?.min).padStart(6)}` +
        ` | ${cpu === undefined ? '     n/a' : fmt(cpu).padStart(8)} ${cpu === undefined ? '' : ratio(cpu, torchCpu).padStart(6)}`,
    );
  }
  if (torchNote !== '') console.log(`  ${torchNote}`);
  console.log(
    '  Wall clock is the number to quote, from an idle machine. On a shared one, other load only adds time, so the' +
      ' min is the better estimate; the CPU estimate (tfjs-local: main-thread CPU, process CPU on tensorflow; tfjs-dp: slowest worker' +
      " thread's CPU + the leader's reduce/AdamW; torch: process CPU / threads) discounts waiting, but OpenMP" +
      " threads spin under contention, which inflates PyTorch's CPU.",
  );
  if (args.report && report !== undefined) console.log(reportLine(report));
  return 0;
}

function wallTimes(samples: readonly Sample[]): number[] {
  return samples.map((s) => s.wallMs);
}

function cpuMedian(samples: readonly Sample[] | undefined): number | undefined {
  if (samples === undefined || samples.some((s) => s.cpuMs === undefined)) return undefined;
  return stats(samples.map((s) => s.cpuMs ?? 0)).median;
}
