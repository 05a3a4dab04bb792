/**
 * Entry point of one data-parallel worker thread. Each worker_thread loads its own copy of tfjs and
 * its own wasm instance (own 4 GiB heap, own core), builds the task from a module path, and per step:
 * uploads the shared weights when they changed, accumulates gradients of its slice into its region of
 * the shared gradient buffer, and reports the loss.
 */
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '@deit-serve/model';
import { accumulateGradients } from '../gradients';
import { assignHost } from '../local-trainer';
import { threadCpuMs, wasmHeapBytes } from '../resources';
import { registerGradients } from '../register-gradients';
import type { TrainTask, TrainTaskModule } from '../task';
import { paramViews, type LeaderMessage, type WorkerInit, type WorkerMessage } from './protocol';

const port = parentPort;
if (port === null) throw new Error('data-parallel worker must run in a worker_thread');
const init = workerData as WorkerInit;

function post(message: WorkerMessage): void {
  port?.postMessage(message);
}

interface Attached {
  readonly weights: Float32Array[];
  readonly grads: Float32Array[];
}

async function main(): Promise<void> {
  await initBackend(init.backend);
  await registerGradients();
  // require, not import(): the path is chosen at run time and is a .ts source under the test runner,
  // which only the CommonJS loader (with the bootstrap's hook) can load.
  const taskModule = createRequire(__filename)(init.taskModule) as TrainTaskModule;
  const task: TrainTask = await taskModule.createTrainTask(init.taskOptions, {
    workerIndex: init.index,
    workers: init.workers,
  });
  let attached: Attached | undefined;
  let loadedVersion = -1;

  port?.on('message', (message: LeaderMessage) => {
    try {
      switch (message.type) {
        case 'attach': {
          attached = {
            weights: paramViews(message.weights, message.layout),
            grads: paramViews(message.grads, message.layout, message.gradsBase),
          };
          if (message.publishInitialWeights) {
            task.params.forEach((p, i) => (attached?.weights[i] as Float32Array).set(p.variable.dataSync()));
          }
          post({ type: 'attached' });
          return;
        }
        case 'step': {
          if (attached === undefined) throw new Error('step before attach');
          const t0 = performance.now();
          const cpu0 = threadCpuMs();
          if (message.weightsVersion !== loadedVersion) {
            const weights = attached.weights;
            task.params.forEach((p, i) => assignHost(p.variable, weights[i]));
            loadedVersion = message.weightsVersion;
          }
          const t1 = performance.now();
          const result = accumulateGradients(task, message.batch, {
            microBatchSize: init.microBatchSize,
            globalBatchSize: message.globalBatchSize,
            into: attached.grads,
          });
          post({
            type: 'step-done',
            id: message.id,
            losses: result.losses,
            rows: result.rows,
            present: result.grads.map((g) => g !== undefined),
            loadMs: t1 - t0,
            computeMs: performance.now() - t1,
            ...resourceFields(cpu0),
          });
          return;
        }
      }
    } catch (error) {
      reportError(error);
    }
  });
  post({ type: 'ready', params: task.params.map((p) => ({ name: p.name, shape: p.variable.shape })) });
}

function resourceFields(cpuAtStart: number | undefined): { heapBytes?: number; cpuMs?: number } {
  const bytes = wasmHeapBytes();
  const cpu = threadCpuMs();
  return {
    ...(bytes === undefined ? {} : { heapBytes: bytes }),
    ...(cpu === undefined || cpuAtStart === undefined ? {} : { cpuMs: cpu - cpuAtStart }),
  };
}

function reportError(error: unknown): void {
  const e = error instanceof Error ? error : new Error(String(error));
  post({ type: 'error', message: e.message, ...(e.stack === undefined ? {} : { stack: e.stack }) });
}

main().catch(reportError);
