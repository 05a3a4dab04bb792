/**
 * One interface over the training library's two trainers: `LocalTrainer` (this thread, one core) and
 * `DataParallelTrainer` (worker_threads, one wasm instance per core, gradients averaged). The job
 * keeps a leader copy of the student for evaluation, checkpoints and export; `sync` brings it up to
 * date with the trained weights.
 *
 * With `parallelism: 'auto'` on a multi-core wasm host the choice is measured rather than assumed:
 * the first steps run data-parallel, the next ones in one thread (the weights and AdamW state move
 * across), and training continues on whichever moved more images per second. Data parallelism only
 * pays when the cores are really free; on a host shared with other work one thread can be faster.
 */
import { availableParallelism } from 'node:os';
import type { BackendName, DeiT, DeitConfig } from '@deit-serve/model';
import {
  assignHost,
  DataParallelTrainer,
  LocalTrainer,
  type AdamW,
  type AdamWOptions,
  type HostBatch,
} from '@deit-serve/training';
import { optimizerSnapshot, restoreOptimizer, type OptimizerState } from './checkpoint';
import { createTrainTask, FINE_TUNE_TASK_MODULE, type FineTuneTaskOptions } from './train-task';

export type Parallelism = 'auto' | 'local' | { readonly workers: number };

export interface StepOutcome {
  readonly losses: Readonly<Record<string, number>>;
  readonly rows: number;
}

export interface StudentTrainer {
  readonly kind: 'local' | 'data-parallel';
  /** Threads computing gradients. */
  readonly workers: number;
  /** Rows per forward/backward pass in each worker. */
  readonly microBatchSize: number;
  readonly optimizer: AdamW;
  /** The leader's model (eval, checkpoints, export); current after `sync`. */
  readonly model: DeiT;
  step(batch: HostBatch, lr: number): Promise<StepOutcome>;
  /** Copies the trained weights into `model`. */
  sync(): void;
  restoreOptimizer(state: OptimizerState): void;
  close(): Promise<void>;
}

/** A trainer that can hand its state to another one. */
interface Engine extends StudentTrainer {
  /** Trainable parameters by name, in the variables' layout (copies). */
  trainableWeights(): Map<string, Float32Array>;
  /** Replaces trainable parameters (the variables' layout); data-parallel engines only. */
  readonly loadTrainableWeights?: (weights: ReadonlyMap<string, Float32Array>) => void;
}

interface EngineState {
  readonly weights: ReadonlyMap<string, Float32Array>;
  readonly optimizer: OptimizerState;
}

export interface CreateTrainerOptions {
  readonly task: FineTuneTaskOptions;
  readonly optimizer: AdamWOptions;
  readonly batchSize: number;
  readonly backend: string;
  readonly parallelism: Parallelism;
  /** Optimizer steps the run will take; `auto` does not measure runs too short to repay it. */
  readonly totalSteps: number;
  /** Default: {@link defaultMicroBatch}. */
  readonly microBatchSize?: number;
  /** Overrides the module data-parallel workers load (tests running TypeScript sources use a shim). */
  readonly taskModule?: string;
  readonly log: (message: string) => void;
}

/** Steps per mode when `auto` measures: one to warm up (first kernel runs), then timed ones. */
export const PROBE = { warmupSteps: 1, timedSteps: 3, minSteps: 40, minGain: 1.1 } as const;

/**
 * Rows per forward/backward pass. On wasm: what keeps the wasm heap well under its 4 GiB cap, an
 * estimate of the activations kept for the backward pass calibrated on the measurement that DeiT-Ti
 * at 32 px (66 tokens) grows the heap to 1.4 GiB with 16 rows. On native TensorFlow, which keeps
 * fewer intermediates per row (no wasm heap, TensorFlow's BFC allocator): what keeps the process's
 * peak RSS under 2 GiB, calibrated on DeiT-Ti at 32 px peaking at 1.83 GiB with 32 rows
 * (`npm run bench:train-step`). Fewer passes mean larger, faster matmuls: 32 rows run a DeiT-Ti step
 * in 2.5 s where 16 rows take 3.5 s.
 */
export function defaultMicroBatch(config: DeitConfig, rows: number, backend = 'wasm'): number {
  const tokens = (config.imgSize / config.patchSize) ** 2 + (config.distilled ? 2 : 1);
  const floatsPerBlock =
    tokens * config.embedDim * (8 + 4 * config.mlpRatio) + 3 * config.numHeads * tokens ** 2;
  const native = backend === 'tensorflow';
  const bytesPerRow = floatsPerBlock * config.depth * 4 * (native ? 2 : 6);
  const budget = (native ? 1.0 : 1.5) * 2 ** 30;
  return Math.max(1, Math.min(rows, Math.floor(budget / bytesPerRow)));
}

/** How many data-parallel workers `parallelism` asks for here (1: train in this thread). */
export function plannedWorkers(parallelism: Parallelism, backend: string, batchSize: number): number {
  if (parallelism === 'local') return 1;
  if (parallelism !== 'auto') return Math.max(1, Math.min(parallelism.workers, batchSize));
  // Native tfjs already uses every core; the wasm backend is single-threaded in Node.
  if (backend !== 'wasm') return 1;
  return Math.max(1, Math.min(availableParallelism(), batchSize));
}

export async function createStudentTrainer(options: CreateTrainerOptions): Promise<StudentTrainer> {
  const workers = plannedWorkers(options.parallelism, options.backend, options.batchSize);
  const local = (state?: EngineState): Engine =>
    createLocal(
      options,
      options.microBatchSize ?? defaultMicroBatch(options.task.config, options.batchSize, options.backend),
      state,
    );
  if (workers <= 1) return local();
  let parallel: Engine;
  try {
    parallel = await createDataParallel(
      options,
      workers,
      options.microBatchSize ??
        defaultMicroBatch(options.task.config, Math.ceil(options.batchSize / workers)),
    );
  } catch (error) {
    options.log(
      `data-parallel training unavailable (${error instanceof Error ? error.message : String(error)}); training in one thread`,
    );
    return local();
  }
  if (options.parallelism !== 'auto' || options.totalSteps < PROBE.minSteps) return parallel;
  return new ProbingTrainer(parallel, local, options.log);
}

function engineState(engine: Engine): EngineState {
  const { moments, steps } = optimizerSnapshot(engine.optimizer);
  // Copies: the receiving optimizer must not share arrays with the one that is closed.
  const copied = new Map(
    [...moments].map(([n, m]) => [n, { expAvg: m.expAvg.slice(), expAvgSq: m.expAvgSq.slice() }]),
  );
  return { weights: engine.trainableWeights(), optimizer: { moments: copied, steps: { ...steps } } };
}

function createLocal(options: CreateTrainerOptions, microBatchSize: number, state?: EngineState): Engine {
  const task = createTrainTask(options.task);
  if (state !== undefined) {
    for (const p of task.params) {
      const data = state.weights.get(p.name);
      if (data === undefined) throw new Error(`no weights for trainable parameter ${p.name}`);
      assignHost(p.variable, data);
    }
  }
  // LocalTrainer reads its master copy of the weights from the variables here.
  const trainer = new LocalTrainer(task, { optimizer: options.optimizer, microBatchSize });
  if (state !== undefined) restoreOptimizer(trainer.optimizer, state.optimizer);
  return {
    kind: 'local',
    workers: 1,
    microBatchSize,
    optimizer: trainer.optimizer,
    model: task.model,
    step: (batch, lr) => Promise.resolve(trainer.step(batch, lr)),
    sync: () => undefined, // the task's model is the trained one
    restoreOptimizer: (saved) => restoreOptimizer(trainer.optimizer, saved),
    trainableWeights: () =>
      new Map(task.params.map((p) => [p.name, (p.variable.dataSync() as Float32Array).slice()])),
    close: () => {
      task.model.dispose();
      return Promise.resolve();
    },
  };
}

async function createDataParallel(
  options: CreateTrainerOptions,
  workers: number,
  microBatchSize: number,
): Promise<Engine> {
  const trainer = await DataParallelTrainer.create({
    workers,
    taskModule: options.taskModule ?? FINE_TUNE_TASK_MODULE,
    taskOptions: options.task,
    optimizer: options.optimizer,
    microBatchSize,
    backend: options.backend as BackendName,
  });
  // The leader's copy: same starting weights, never trained directly.
  const leader = createTrainTask(options.task).model;
  const variables = leader.namedVariables();
  return {
    kind: 'data-parallel',
    workers,
    microBatchSize,
    optimizer: trainer.optimizer,
    model: leader,
    step: (batch, lr) => trainer.step(batch, lr),
    sync: () => {
      for (const [name, data] of trainer.getWeights()) {
        const variable = variables.get(name);
        if (variable === undefined) throw new Error(`data-parallel worker trains unknown parameter ${name}`);
        assignHost(variable, data);
      }
    },
    restoreOptimizer: (saved) => restoreOptimizer(trainer.optimizer, saved),
    trainableWeights: () => trainer.getWeights(),
    loadTrainableWeights: (weights) => trainer.setWeights(weights),
    close: async () => {
      leader.dispose();
      await trainer.close();
    },
  };
}

/** Time per row of the timed steps, in ms. */
function rate(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Infinity;
}

/**
 * Runs the first steps data-parallel, the next ones in one thread, then keeps the faster (data
 * parallelism must win by {@link PROBE}.minGain to be kept: it also costs memory and threads).
 */
export class ProbingTrainer implements StudentTrainer {
  private current: Engine;
  private phase: 'parallel' | 'local' | 'decided' = 'parallel';
  private stepsInPhase = 0;
  private readonly msPerRow: Record<'parallel' | 'local', number[]> = { parallel: [], local: [] };
  private local: Engine | undefined;

  constructor(
    private readonly parallel: Engine,
    private readonly makeLocal: (state: EngineState) => Engine,
    private readonly log: (message: string) => void,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.current = parallel;
  }

  get kind(): StudentTrainer['kind'] {
    return this.current.kind;
  }
  get workers(): number {
    return this.current.workers;
  }
  get microBatchSize(): number {
    return this.current.microBatchSize;
  }
  get optimizer(): AdamW {
    return this.current.optimizer;
  }
  get model(): DeiT {
    return this.current.model;
  }

  async step(batch: HostBatch, lr: number): Promise<StepOutcome> {
    const t0 = this.clock();
    const outcome = await this.current.step(batch, lr);
    if (this.phase === 'decided') return outcome;
    this.stepsInPhase++;
    if (this.stepsInPhase > PROBE.warmupSteps)
      this.msPerRow[this.phase].push((this.clock() - t0) / outcome.rows);
    if (this.stepsInPhase === PROBE.warmupSteps + PROBE.timedSteps) await this.advance();
    return outcome;
  }

  private async advance(): Promise<void> {
    this.stepsInPhase = 0;
    if (this.phase === 'parallel') {
      this.phase = 'local';
      this.parallel.sync();
      this.local = this.makeLocal(engineState(this.parallel));
      this.current = this.local;
      return;
    }
    this.phase = 'decided';
    const local = this.local as Engine;
    const parallelRate = 1000 / rate(this.msPerRow.parallel);
    const localRate = 1000 / rate(this.msPerRow.local);
    const keepParallel = parallelRate >= localRate * PROBE.minGain;
    this.log(
      `measured data-parallel (${this.parallel.workers} workers) ${parallelRate.toFixed(1)} images/s vs one thread ` +
        `${localRate.toFixed(1)} images/s: training ${keepParallel ? 'data-parallel' : 'in one thread'}`,
    );
    if (keepParallel) {
      // Hand the local steps' progress back to the workers.
      const state = engineState(local);
      const load = this.parallel.loadTrainableWeights;
      if (load === undefined) throw new Error('the data-parallel engine cannot load weights');
      load(state.weights);
      this.parallel.restoreOptimizer(state.optimizer);
      this.current = this.parallel;
      await local.close();
    } else {
      await this.parallel.close();
    }
    this.local = undefined;
  }

  sync(): void {
    this.current.sync();
  }

  restoreOptimizer(state: OptimizerState): void {
    this.current.restoreOptimizer(state);
  }

  async close(): Promise<void> {
    await Promise.all([this.parallel.close(), this.local?.close()]);
  }
}
