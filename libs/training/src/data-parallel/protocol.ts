/**
 * Messages between the data-parallel leader and its workers. Weights and gradients never travel in
 * messages: they live in SharedArrayBuffers both sides map as Float32Array views, laid out by
 * `SharedLayout`. Messages carry the batch slices (transferred, not cloned) and small results.
 */
import type { BackendName } from '@deit-serve/model';
import type { HostBatch } from '../task';

/** `workerData` of every worker. */
export interface WorkerInit {
  readonly index: number;
  readonly workers: number;
  readonly taskModule: string;
  readonly taskOptions: unknown;
  readonly backend: BackendName;
  readonly microBatchSize: number;
}

export interface ParamShape {
  readonly name: string;
  readonly shape: readonly number[];
}

/** Where each parameter's values start (in float32 elements) inside a weights or gradient buffer. */
export interface SharedLayout {
  readonly params: readonly ParamShape[];
  readonly offsets: readonly number[];
  readonly totalElements: number;
}

export type LeaderMessage =
  | {
      readonly type: 'attach';
      readonly weights: SharedArrayBuffer;
      /** Holds every worker's gradients; this worker writes from element `gradsBase` on. */
      readonly grads: SharedArrayBuffer;
      readonly gradsBase: number;
      readonly layout: SharedLayout;
      /** Copy this worker's initial variable values into `weights` (worker 0 only). */
      readonly publishInitialWeights: boolean;
    }
  | {
      readonly type: 'step';
      readonly id: number;
      readonly batch: HostBatch;
      readonly globalBatchSize: number;
      /** Reload `weights` into the variables when this differs from the last version loaded. */
      readonly weightsVersion: number;
    };

export type WorkerMessage =
  | { readonly type: 'ready'; readonly params: readonly ParamShape[] }
  | { readonly type: 'attached' }
  | {
      readonly type: 'step-done';
      readonly id: number;
      readonly losses: Readonly<Record<string, number>>;
      readonly rows: number;
      /** Per parameter: whether a gradient was written (false: the loss does not depend on it). */
      readonly present: readonly boolean[];
      /** Time in the worker: weight upload and gradient computation, for profiling the step. */
      readonly loadMs: number;
      readonly computeMs: number;
      /** CPU time of the worker thread during the step (load + compute), where Linux reports it. */
      readonly cpuMs?: number;
      /** The worker's wasm heap after the step (peak so far), when on wasm. */
      readonly heapBytes?: number;
    }
  | { readonly type: 'error'; readonly message: string; readonly stack?: string };

export function sharedLayout(params: readonly ParamShape[]): SharedLayout {
  const offsets: number[] = [];
  let total = 0;
  for (const p of params) {
    offsets.push(total);
    total += p.shape.reduce((a, b) => a * b, 1);
  }
  return { params, offsets, totalElements: total };
}

/** One Float32Array view per parameter over a buffer laid out by `layout`. */
export function paramViews(buffer: SharedArrayBuffer, layout: SharedLayout, baseElement = 0): Float32Array[] {
  return layout.params.map((p, i) => {
    const size = p.shape.reduce((a, b) => a * b, 1);
    return new Float32Array(buffer, (baseElement + layout.offsets[i]) * Float32Array.BYTES_PER_ELEMENT, size);
  });
}
