/**
 * onnxruntime on a worker thread. onnxruntime-node's `run` computes synchronously on the thread that
 * calls it (its promise only defers the start to a setImmediate), so a session on the main thread
 * stops the event loop for the whole inference: requests arriving meanwhile wait in socket buffers,
 * and the next batch can only be gathered after the cores have gone idle. The session therefore lives
 * on a thread of its own, and the main thread only posts inputs and receives outputs.
 *
 * One thread serves every such session of the process, for its whole life: onnxruntime keeps one
 * environment per process, and threads that loaded it and then ended broke later sessions (measured:
 * a second thread's session hung or took the process down). Runs of different sessions take turns
 * on it, as they would take turns on the cores anyway. This file is the main thread's side
 * (`WorkerNativeSession`); `onnx-thread-worker.ts` is the thread.
 */
import type { Worker } from 'node:worker_threads';
import { siblingModule, spawnModuleWorker } from '@deit-serve/core';

/** What both kinds of native session offer OnnxModelSession. */
export interface NativeSession {
  readonly inputMetadata: readonly NativeValueInfo[];
  readonly outputMetadata: readonly NativeValueInfo[];
  run(feeds: Readonly<Record<string, NativeTensor>>): Promise<NativeOutputs>;
  release(): Promise<void>;
}

export interface NativeValueInfo {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

export interface NativeTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export type NativeOutputs = Record<string, { type: string; data: unknown; dims: readonly number[] }>;

/** Session options as plain data (they cross to the worker by structured clone). */
export type NativeSessionOptions = object;

export type Request =
  | { type: 'create'; id: number; session: number; bytes: Uint8Array; options: NativeSessionOptions }
  | { type: 'run'; id: number; session: number; feeds: Record<string, NativeTensor> }
  | { type: 'release'; id: number; session: number };

export type Reply =
  | { type: 'created'; id: number; inputs: NativeValueInfo[]; outputs: NativeValueInfo[] }
  | { type: 'ran'; id: number; outputs: NativeOutputs }
  | { type: 'released'; id: number }
  | { type: 'failed'; id: number; message: string };

type Waiter = { resolve: (reply: Reply) => void; reject: (e: Error) => void };

/** The process's onnxruntime thread: started on first use, never ended (it does not keep the process alive). */
class OnnxThread {
  private static instance?: OnnxThread;
  private nextId = 0;
  private nextSession = 0;
  private readonly pending = new Map<number, Waiter>();
  private dead?: Error;

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.type === 'failed') waiter.reject(new Error(reply.message));
      else waiter.resolve(reply);
    });
    const die = (error: Error) => {
      this.dead ??= error;
      for (const waiter of this.pending.values()) waiter.reject(this.dead);
      this.pending.clear();
      if (OnnxThread.instance === this) OnnxThread.instance = undefined; // the next session starts a new one
    };
    worker.on('error', (error) => die(new Error(`onnxruntime thread failed: ${error.message}`)));
    worker.on('exit', (code) => die(new Error(`onnxruntime thread exited (code ${code})`)));
  }

  static get(): OnnxThread {
    OnnxThread.instance ??= new OnnxThread(
      spawnModuleWorker(siblingModule(__filename, __dirname, 'onnx-thread-worker'), {}),
    );
    return OnnxThread.instance;
  }

  newSessionId(): number {
    return this.nextSession++;
  }

  request(message: DistributiveOmit<Request, 'id'>, transfer: readonly ArrayBuffer[]): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Work waits on the thread, so the process must too; idle, it may exit.
      this.worker.ref();
      this.worker.postMessage({ ...message, id }, [...transfer]);
    }).finally(() => {
      if (this.pending.size === 0) this.worker.unref();
    });
  }
}

/** The main thread's handle on a session living on the onnxruntime thread. */
export class WorkerNativeSession implements NativeSession {
  private released = false;

  private constructor(
    private readonly thread: OnnxThread,
    private readonly id: number,
    readonly inputMetadata: readonly NativeValueInfo[],
    readonly outputMetadata: readonly NativeValueInfo[],
  ) {}

  static async create(bytes: Uint8Array, options: NativeSessionOptions): Promise<WorkerNativeSession> {
    const thread = OnnxThread.get();
    const id = thread.newSessionId();
    // A copy the thread owns: new Uint8Array copies (Buffer#slice would share the caller's memory,
    // and moving that would detach the caller's bytes).
    const own = new Uint8Array(bytes);
    const reply = await thread.request({ type: 'create', session: id, bytes: own, options }, [own.buffer]);
    if (reply.type !== 'created') throw new Error(`unexpected reply ${reply.type}`);
    return new WorkerNativeSession(thread, id, reply.inputs, reply.outputs);
  }

  async run(feeds: Readonly<Record<string, NativeTensor>>): Promise<NativeOutputs> {
    const reply = await this.thread.request({ type: 'run', session: this.id, feeds: { ...feeds } }, []);
    if (reply.type !== 'ran') throw new Error(`unexpected reply ${reply.type}`);
    return reply.outputs;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.thread.request({ type: 'release', session: this.id }, []);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
