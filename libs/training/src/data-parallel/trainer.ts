/**
 * Data-parallel training across worker_threads: the way to use more than one core, since the tfjs wasm
 * backend runs single-threaded in Node.
 *
 * Each step the leader splits the batch into contiguous slices (sizes differ by at most one row), each
 * worker accumulates its slice's gradient over micro-batches, scaled by slice rows / batch rows, into
 * its region of a shared gradient buffer; the leader sums the regions (which makes the exact
 * full-batch gradient of the batch-mean loss, i.e. slices weighted by their size), applies AdamW in
 * place on the shared weights, and bumps a version so workers upload the new weights on the next
 * step. Weights and gradients cross threads through SharedArrayBuffers, never by copying messages.
 *
 * worker_threads rather than child processes: each thread gets its own wasm instance (own heap, own
 * core) and SharedArrayBuffers need no serialisation. Only one thread touches a buffer at a time
 * (workers during a step, the leader between steps), and message passing orders those phases.
 */
import { siblingModule, spawnModuleWorker } from '@deit-serve/core';
import type { Worker } from 'node:worker_threads';
import type { BackendName } from '@deit-serve/model';
import { AdamW } from '../adamw';
import type { StepResult, TrainerOptions } from '../local-trainer';
import { batchSize, sliceBatch, splitRows, type BatchArray, type HostBatch } from '../task';
import {
  paramViews,
  sharedLayout,
  type LeaderMessage,
  type ParamShape,
  type SharedLayout,
  type WorkerInit,
  type WorkerMessage,
} from './protocol';

export interface DataParallelOptions extends TrainerOptions {
  /** Worker threads; default 2 (one per core on the reference machine). */
  readonly workers?: number;
  /** Absolute path of a module exporting `createTrainTask` (see `TrainTaskModule`). */
  readonly taskModule: string;
  /** JSON-serialisable options for `createTrainTask`; every worker gets the same. */
  readonly taskOptions: unknown;
  /** Default `wasm`. */
  readonly backend?: BackendName;
}

export interface DataParallelStepResult extends StepResult {
  /**
   * Per worker: weight upload and gradient wall time and thread CPU time (ms; the slowest worker
   * bounds the step), and its wasm heap. `optimizerMs` includes summing the workers' gradients.
   */
  readonly workerMs: ReadonlyArray<{
    readonly load: number;
    readonly compute: number;
    readonly cpu?: number;
    readonly heapBytes?: number;
  }>;
}

type StepDone = Extract<WorkerMessage, { type: 'step-done' }>;

interface Pending {
  readonly type: WorkerMessage['type'];
  resolve(message: WorkerMessage): void;
  reject(error: Error): void;
}

class WorkerHandle {
  private pending: Pending | undefined;
  private failure: Error | undefined;

  constructor(
    readonly index: number,
    readonly thread: Worker,
  ) {
    thread.on('message', (message: WorkerMessage) => {
      if (message.type === 'error') {
        const error = new Error(`data-parallel worker ${index}: ${message.message}`);
        if (message.stack !== undefined)
          error.stack = `${error.message}\n--- worker stack ---\n${message.stack}`;
        this.fail(error);
        return;
      }
      const pending = this.pending;
      if (pending === undefined || pending.type !== message.type) {
        this.fail(new Error(`data-parallel worker ${index}: unexpected message ${message.type}`));
        return;
      }
      this.pending = undefined;
      pending.resolve(message);
    });
    thread.on('error', (error) => this.fail(error));
    thread.on('exit', (code) =>
      this.fail(new Error(`data-parallel worker ${index} exited with code ${code}`)),
    );
  }

  /** Resolves with the next message of `type`, after optionally sending `message`. */
  request<T extends WorkerMessage['type']>(
    type: T,
    message?: LeaderMessage,
    transfer?: ArrayBuffer[],
  ): Promise<Extract<WorkerMessage, { type: T }>> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending !== undefined)
      return Promise.reject(new Error(`data-parallel worker ${this.index} is busy`));
    return new Promise((resolve, reject) => {
      this.pending = { type, resolve: resolve as (m: WorkerMessage) => void, reject };
      if (message !== undefined) this.thread.postMessage(message, transfer);
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }
}

export class DataParallelTrainer {
  readonly optimizer: AdamW;
  private readonly weightViews: Float32Array[];
  /** Per worker, per parameter. */
  private readonly gradViews: Float32Array[][];
  private weightsVersion = 0;
  private nextId = 0;
  private closed = false;
  /** Set when a step failed: workers may be mid-step or gone, so the trainer cannot continue. */
  private failure: Error | undefined;

  private constructor(
    private readonly workers: readonly WorkerHandle[],
    readonly layout: SharedLayout,
    weights: SharedArrayBuffer,
    grads: SharedArrayBuffer,
    private readonly options: DataParallelOptions,
  ) {
    this.optimizer = new AdamW(layout.params, options.optimizer);
    this.weightViews = paramViews(weights, layout);
    this.gradViews = workers.map((w) => paramViews(grads, layout, w.index * layout.totalElements));
  }

  static async create(options: DataParallelOptions): Promise<DataParallelTrainer> {
    const count = options.workers ?? 2;
    if (!(Number.isInteger(count) && count >= 1))
      throw new Error(`workers must be a positive integer, got ${count}`);
    const entry = siblingModule(__filename, __dirname, 'worker');
    const handles: WorkerHandle[] = [];
    try {
      for (let index = 0; index < count; index++) {
        const init: WorkerInit = {
          index,
          workers: count,
          taskModule: options.taskModule,
          taskOptions: options.taskOptions,
          backend: options.backend ?? 'wasm',
          microBatchSize: options.microBatchSize,
        };
        handles.push(new WorkerHandle(index, spawnModuleWorker(entry, init)));
      }
      const ready = await Promise.all(handles.map((h) => h.request('ready')));
      const params = ready[0].params;
      ready.forEach((r, i) => {
        if (JSON.stringify(r.params) !== JSON.stringify(params))
          throw new Error(`worker ${i} built a model with different parameters than worker 0`);
      });
      const layout = sharedLayout(params);
      const bytes = layout.totalElements * Float32Array.BYTES_PER_ELEMENT;
      const weights = new SharedArrayBuffer(bytes);
      const grads = new SharedArrayBuffer(bytes * count);
      // Worker 0's initial values become everyone's, so workers with differently seeded inits agree.
      await Promise.all(
        handles.map((h) =>
          h.request('attached', {
            type: 'attach',
            weights,
            grads,
            gradsBase: h.index * layout.totalElements,
            layout,
            publishInitialWeights: h.index === 0,
          }),
        ),
      );
      return new DataParallelTrainer(handles, layout, weights, grads, options);
    } catch (error) {
      await Promise.all(handles.map((h) => h.thread.terminate()));
      throw error;
    }
  }

  get params(): readonly ParamShape[] {
    return this.layout.params;
  }

  /**
   * One optimizer step on `batch` (split across workers); `lr` overrides the optimizer's lr. After a
   * failed step every later step fails with the same error: close the trainer.
   */
  async step(batch: HostBatch, lr?: number): Promise<DataParallelStepResult> {
    if (this.closed) throw new Error('DataParallelTrainer is closed');
    if (this.failure !== undefined) throw this.failure;
    const rows = batchSize(batch);
    const ranges = splitRows(rows, this.workers.length);
    const id = this.nextId++;
    let done: StepDone[];
    try {
      done = await Promise.all(
        this.workers.map((worker, i) => {
          const [start, end] = ranges[i];
          const { slice, transfer } = copySlice(batch, start, end);
          return worker.request(
            'step-done',
            { type: 'step', id, batch: slice, globalBatchSize: rows, weightsVersion: this.weightsVersion },
            transfer,
          );
        }),
      );
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
      throw this.failure;
    }
    const t0 = performance.now();
    const grads = new Map<string, Float32Array | undefined>();
    this.layout.params.forEach((p, i) => grads.set(p.name, this.reduceGradient(i, done)));
    this.optimizer.step(new Map(this.layout.params.map((p, i) => [p.name, this.weightViews[i]])), grads, lr);
    this.weightsVersion++;
    const optimizerMs = performance.now() - t0;
    const losses: Record<string, number> = {};
    for (const d of done) for (const [k, v] of Object.entries(d.losses)) losses[k] = (losses[k] ?? 0) + v;
    return {
      losses,
      rows,
      optimizerMs,
      workerMs: done.map((d) => ({
        load: d.loadMs,
        compute: d.computeMs,
        ...(d.cpuMs === undefined ? {} : { cpu: d.cpuMs }),
        ...(d.heapBytes === undefined ? {} : { heapBytes: d.heapBytes }),
      })),
    };
  }

  /** Sums the workers' gradients of parameter `i` into worker 0's region (idle until the next step). */
  private reduceGradient(i: number, done: readonly StepDone[]): Float32Array | undefined {
    const contributing = done.flatMap((d, w) => (d.present[i] === true ? [this.gradViews[w]?.[i]] : []));
    const [first, ...rest] = contributing;
    if (first === undefined) return undefined; // no worker's loss depends on it: skip, like PyTorch's grad None
    const n = first.length;
    for (const other of rest) for (let k = 0; k < n; k++) first[k] = first[k] + other[k];
    return first;
  }

  /** Copies of the current weights, by name, in the variables' layout. */
  getWeights(): Map<string, Float32Array> {
    return new Map(this.layout.params.map((p, i) => [p.name, this.weightViews[i].slice()]));
  }

  /** Replaces weights (all or some, by name); workers upload them before the next step. */
  setWeights(weights: ReadonlyMap<string, Float32Array>): void {
    const index = new Map(this.layout.params.map((p, i) => [p.name, i]));
    for (const [name, data] of weights) {
      const i = index.get(name);
      if (i === undefined) throw new Error(`setWeights: unknown parameter ${name}`);
      const view = this.weightViews[i];
      if (view.length !== data.length)
        throw new Error(`setWeights: ${name} has ${view.length} values, got ${data.length}`);
      view.set(data);
    }
    this.weightsVersion++;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.thread.terminate()));
  }
}

/** Rows [start, end) copied into fresh buffers, so they can be transferred instead of cloned. */
function copySlice(
  batch: HostBatch,
  start: number,
  end: number,
): { slice: HostBatch; transfer: ArrayBuffer[] } {
  const view = sliceBatch(batch, start, end);
  const slice: Record<string, BatchArray> = {};
  const transfer: ArrayBuffer[] = [];
  for (const [key, array] of Object.entries(view)) {
    const data = array.data.slice();
    slice[key] = { data, shape: array.shape };
    transfer.push(data.buffer);
  }
  return { slice, transfer };
}
