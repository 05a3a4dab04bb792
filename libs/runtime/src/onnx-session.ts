/**
 * The one adapter over onnxruntime-node (house style: a single importer of the native runtime, so its
 * types, errors and threading quirks stay here and in the entry of its worker thread,
 * onnx-thread-worker.ts). Everything else sees plain Float32Arrays.
 */
import { FailedPreconditionError, InvalidArgumentError } from '@deit-serve/core';
import type { InferenceSession } from 'onnxruntime-node';
import { InProcessSession } from './onnx-native';
import {
  type NativeSession,
  type NativeTensor,
  type NativeValueInfo,
  WorkerNativeSession,
} from './onnx-thread';

export type ExecutionProvider = 'cpu' | 'cuda';
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

/** Structural subset of NestJS's `Logger`, so apps pass theirs and tests pass a spy. */
export interface SessionLogger {
  warn(message: string): void;
}

export interface OnnxSessionOptions {
  /** Default 'cpu'. 'cuda' falls back to 'cpu' with a warning when the CUDA EP cannot start. */
  readonly executionProvider?: ExecutionProvider;
  /** onnxruntime intra-op threads; 0 or absent lets onnxruntime use one per core. */
  readonly intraOpThreads?: number;
  /** Default 'all': LayerNorm/GELU/attention-scale fusions are worth ≈1.15× on DeiT (measured-here.md). */
  readonly graphOptimizationLevel?: GraphOptimizationLevel;
  /** Default: console. */
  readonly logger?: SessionLogger;
  /**
   * Where onnxruntime computes. `main` (default): on the calling thread, which onnxruntime-node blocks
   * for the whole run. `worker`: on the process's one onnxruntime thread, shared by every worker
   * session, so that a server's event loop keeps receiving requests while a batch computes
   * (onnx-thread.ts).
   */
  readonly thread?: 'main' | 'worker';
}

/** A dense float32 tensor in row-major order (its data may view an ArrayBuffer or a SharedArrayBuffer). */
export interface FloatTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** A graph input or output as declared in the model; strings are symbolic dims (e.g. `batch`). */
export interface TensorInfo {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

export class OnnxModelSession {
  private released?: Promise<void>;
  private readonly inFlight = new Set<Promise<unknown>>();

  private constructor(
    private readonly session: NativeSession,
    /** The provider the session actually runs on, after any fallback. */
    readonly executionProvider: ExecutionProvider,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
  ) {}

  static async create(bytes: Uint8Array, options: OnnxSessionOptions = {}): Promise<OnnxModelSession> {
    const requested = options.executionProvider ?? 'cpu';
    const logger = options.logger ?? console;
    const base: InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
      // 0 is onnxruntime's own "one per core"; passing it through keeps that meaning.
      intraOpNumThreads: options.intraOpThreads ?? 0,
      // One graph branch at a time: DeiT is a chain, and parallel mode would only add threads.
      executionMode: 'sequential',
      // The memory pattern is planned per input shape and kept: with dynamic batching every batch size
      // seen adds one, and the arena grows to hold them (measured: +55 MB RSS over batches of 1–16 of
      // DeiT-Ti at the same speed; bench/inference). Off, as onnxruntime advises for varying shapes.
      enableMemPattern: false,
      // Idle intra-op threads spin by default, taking the cores the event loop needs to receive the
      // next requests (measured: batch-1 p50 about halved on a busy 2-core host without spinning).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };

    const open: OpenNative =
      options.thread === 'worker'
        ? (b, o) => WorkerNativeSession.create(b, o)
        : (b, o) => InProcessSession.create(b, o);
    let session: NativeSession | undefined;
    let provider: ExecutionProvider = 'cpu';
    let cudaFailure: unknown;
    if (requested === 'cuda') {
      try {
        // 'cpu' after 'cuda' places the few nodes CUDA has no kernel for on the CPU.
        session = await open(bytes, { ...base, executionProviders: ['cuda', 'cpu'] });
        provider = 'cuda';
      } catch (error) {
        cudaFailure = error;
      }
    }
    session ??= await loadCpu(bytes, base, open);
    if (cudaFailure !== undefined) {
      // Warn only once CPU has loaded: if the model itself is broken, the CPU error below says so
      // and a "CUDA unavailable" warning would point at the wrong culprit.
      logger.warn(
        `onnxruntime: CUDA execution provider unavailable (${cudaFailureReason(messageOf(cudaFailure))}); running on CPU`,
      );
    }

    return new OnnxModelSession(
      session,
      provider,
      session.inputMetadata.map(toTensorInfo),
      session.outputMetadata.map(toTensorInfo),
    );
  }

  get inputNames(): readonly string[] {
    return this.inputs.map((i) => i.name);
  }

  get outputNames(): readonly string[] {
    return this.outputs.map((o) => o.name);
  }

  /**
   * Static dims of one input after its leading batch dim (`[3, H, W]` for `pixel_values`). Throws if
   * any of them is symbolic: callers batch by concatenating equally sized items.
   */
  itemDims(inputName: string = this.soleInputName()): readonly number[] {
    const input = this.inputs.find((i) => i.name === inputName);
    if (!input) throw new InvalidArgumentError(`model has no input "${inputName}"`);
    const rest = input.shape.slice(1);
    if (input.shape.length === 0 || rest.some((d) => typeof d !== 'number')) {
      throw new FailedPreconditionError(
        `input "${inputName}" has shape [${input.shape.join(', ')}]: expected a batch dim followed by static dims`,
      );
    }
    return rest as number[];
  }

  get isReleased(): boolean {
    return this.released !== undefined;
  }

  /**
   * One inference. Feeds cross to a worker-thread session by structured clone: copied when over an
   * ArrayBuffer, shared when over a SharedArrayBuffer (the caller then leaves them alone until the
   * run settles).
   */
  async run(feeds: Readonly<Record<string, FloatTensor>>): Promise<Record<string, FloatTensor>> {
    this.assertLive();
    const nativeFeeds: Record<string, NativeTensor> = {};
    for (const input of this.inputs) {
      const feed = feeds[input.name];
      if (!feed) throw new InvalidArgumentError(`missing input "${input.name}"`);
      checkFeed(input, feed);
      nativeFeeds[input.name] = { data: feed.data, dims: [...feed.dims] };
    }
    for (const name of Object.keys(feeds)) {
      if (!this.inputs.some((i) => i.name === name)) {
        throw new InvalidArgumentError(
          `model has no input "${name}" (inputs: ${this.inputNames.join(', ')})`,
        );
      }
    }

    const pending = this.session.run(nativeFeeds);
    this.inFlight.add(pending);
    try {
      const outputs = await pending;
      const result: Record<string, FloatTensor> = {};
      for (const [name, tensor] of Object.entries(outputs)) {
        if (tensor.type !== 'float32') {
          throw new FailedPreconditionError(`output "${name}" is ${tensor.type}; only float32 is supported`);
        }
        result[name] = { data: tensor.data as Float32Array, dims: tensor.dims };
      }
      return result;
    } finally {
      this.inFlight.delete(pending);
    }
  }

  /**
   * One run of zeros per batch size, so that the first real request does not pay for onnxruntime's
   * lazy allocations and kernel selection. Returns milliseconds per batch size.
   */
  async warmUp(batchSizes: readonly number[] = [1]): Promise<{ batchSize: number; ms: number }[]> {
    const timings: { batchSize: number; ms: number }[] = [];
    for (const batchSize of batchSizes) {
      if (!Number.isInteger(batchSize) || batchSize < 1) {
        throw new InvalidArgumentError(`warm-up batch size must be a positive integer, got ${batchSize}`);
      }
      const feeds: Record<string, FloatTensor> = {};
      for (const input of this.inputs) {
        const dims = [batchSize, ...this.itemDims(input.name)];
        feeds[input.name] = { data: new Float32Array(product(dims)), dims };
      }
      const start = performance.now();
      await this.run(feeds);
      timings.push({ batchSize, ms: performance.now() - start });
    }
    return timings;
  }

  /**
   * Frees the native session once runs already started have finished (disposing under a running
   * `run` would pull memory from under onnxruntime). Idempotent; runs after this call fail.
   */
  release(): Promise<void> {
    this.released ??= Promise.allSettled([...this.inFlight]).then(() => this.session.release());
    return this.released;
  }

  private assertLive(): void {
    if (this.released) throw new FailedPreconditionError('onnxruntime session has been released');
  }

  private soleInputName(): string {
    const [first, ...others] = this.inputs;
    if (!first || others.length > 0) {
      throw new InvalidArgumentError(
        `model has ${this.inputs.length} inputs (${this.inputNames.join(', ')}); name the one meant`,
      );
    }
    return first.name;
  }
}

type OpenNative = (bytes: Uint8Array, options: InferenceSession.SessionOptions) => Promise<NativeSession>;

async function loadCpu(
  bytes: Uint8Array,
  base: InferenceSession.SessionOptions,
  open: OpenNative,
): Promise<NativeSession> {
  try {
    return await open(bytes, { ...base, executionProviders: ['cpu'] });
  } catch (error) {
    throw new InvalidArgumentError(`onnxruntime could not load the model: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

function toTensorInfo(m: NativeValueInfo): TensorInfo {
  return { name: m.name, type: m.type, shape: [...m.shape] };
}

/** onnxruntime's own shape errors name C++ internals; this names the caller's mistake. */
function checkFeed(input: TensorInfo, feed: FloatTensor): void {
  if (input.type !== 'float32') {
    throw new FailedPreconditionError(`input "${input.name}" is ${input.type}; only float32 is supported`);
  }
  const { dims, data } = feed;
  const fits =
    dims.length === input.shape.length &&
    dims.every((d, i) => {
      const declared = input.shape[i];
      return Number.isInteger(d) && d >= 1 && (typeof declared !== 'number' || declared === d);
    });
  if (!fits) {
    throw new InvalidArgumentError(
      `input "${input.name}" has dims [${dims.join(', ')}]; the model expects [${input.shape.join(', ')}]`,
    );
  }
  if (data.length !== product(dims)) {
    throw new InvalidArgumentError(
      `input "${input.name}" has ${data.length} values; dims [${dims.join(', ')}] need ${product(dims)}`,
    );
  }
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/**
 * The reason a CUDA session failed, in a line: onnxruntime wraps CUDA's own message ("CUDA failure
 * 100: no CUDA-capable device is detected") in C++ signatures and file names, and when the provider
 * or a library it links cannot be loaded it throws only "Failed to load shared library", having logged
 * the library's name itself (on stderr, just before).
 */
export function cudaFailureReason(message: string): string {
  const cuda = /CUDA failure \d+: [^;]*/.exec(message)?.[0].trim();
  if (cuda !== undefined) {
    const call = /expr=(\w+)/.exec(message)?.[1];
    return call === undefined ? cuda : `${cuda}, in ${call}`;
  }
  if (message.includes('Failed to load shared library')) {
    return (
      "its library or one that it links could not be loaded (onnxruntime's error line above names it: " +
      'libcuda.so.1 is the NVIDIA driver; the others come with `DEIT_GPU=cuda npm ci`, docs/install.md)'
    );
  }
  return message;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
