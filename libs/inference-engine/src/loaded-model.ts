import { FailedPreconditionError, IntegrityError } from '@deit-serve/core';
import { inputSpecFromManifest, type InputSpec } from '@deit-serve/preprocess';
import { decodeTensor, labelsInOrder, type LoadedVersion, type Manifest } from '@deit-serve/registry';
import {
  type ClassifierItem,
  type ClassifierLogits,
  createClassifierExecute,
  DynamicBatcher,
  type ExecutionProvider,
  OnnxModelSession,
  releaseNow,
} from '@deit-serve/runtime';

export interface BatchingOptions {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  maxQueueSize: number;
}

export interface LoadOptions {
  executionProvider: ExecutionProvider;
  intraOpThreads: number;
  /** Where onnxruntime computes; default `worker` (the event loop keeps serving meanwhile). */
  onnxThread?: 'main' | 'worker';
  batching: BatchingOptions;
  logger: { log(message: string): void; warn(message: string): void };
  onBatch?: (model: LoadedModel, size: number, computeMs: number) => void;
}

/**
 * One model version in memory: its onnxruntime session, its batcher and what its manifest says
 * about inputs, outputs and labels. Requests hold a lease while they use it, so that retiring a
 * version (after a reload) waits for them before the session is released.
 */
export class LoadedModel {
  readonly loadedAt = new Date();
  private leases = 0;
  private retiring?: Promise<void>;
  private leasesReleased?: () => void;

  private constructor(
    readonly name: string,
    readonly version: number,
    readonly manifest: Manifest,
    readonly labels: readonly string[],
    readonly inputSpec: InputSpec,
    readonly inputName: string,
    readonly session: OnnxModelSession,
    readonly batcher: DynamicBatcher<ClassifierItem, ClassifierLogits>,
  ) {}

  /** `name:version`. */
  get key(): string {
    return `${this.name}:${this.version}`;
  }

  get sha256(): string {
    return this.manifest.files['model.onnx']?.sha256 ?? '';
  }

  get hasDistHead(): boolean {
    return this.manifest.outputs.dist !== null;
  }

  /** Number of values of one preprocessed input. */
  get itemLength(): number {
    return this.inputSpec.channels * this.inputSpec.imageSize * this.inputSpec.imageSize;
  }

  /**
   * Creates the session from verified bytes (taking them: `model.onnx` leaves `version.files` and its
   * memory is freed), runs the manifest's self-check (expected outputs for a stored input), warms up,
   * and only then returns: a version that fails any step never serves.
   */
  static async load(version: LoadedVersion, options: LoadOptions): Promise<LoadedModel> {
    const { manifest } = version;
    const bytes = version.files.get('model.onnx');
    if (!bytes) throw new IntegrityError(`${version.model}:${version.version}: model.onnx was not loaded`);
    let session: OnnxModelSession;
    try {
      session = await OnnxModelSession.create(bytes, {
        executionProvider: options.executionProvider,
        intraOpThreads: options.intraOpThreads,
        thread: options.onnxThread ?? 'worker',
        logger: options.logger,
      });
    } finally {
      // The version is this load's own (ModelHost reads it for this call only) and onnxruntime keeps
      // its own copy: the file's bytes (24 MB for DeiT-Ti) go now, not at some later collection.
      version.files.delete('model.onnx');
      releaseNow(bytes); // a view over part of a larger buffer is left to the collector
    }
    try {
      const input = manifest.input;
      const spec = inputSpecFromManifest(input);
      const names = {
        input: input.name,
        cls: manifest.outputs.cls,
        ...(manifest.outputs.dist ? { dist: manifest.outputs.dist } : {}),
      };
      const execute = createClassifierExecute(session, names, {
        maxBatchSize: options.batching.maxBatchSize,
      });
      await selfCheck(version, session, input.name);
      // The batcher's metrics hook needs the model, which needs the batcher.
      const holder: { model?: LoadedModel } = {};
      const batcher = new DynamicBatcher<ClassifierItem, ClassifierLogits>({
        name: `${version.model}:${version.version}`,
        ...options.batching,
        execute,
        onBatch: (stats) => {
          if (holder.model && stats.ok) options.onBatch?.(holder.model, stats.size, stats.computeMs);
        },
      });
      const model = new LoadedModel(
        version.model,
        version.version,
        manifest,
        labelsInOrder(manifest.labels),
        spec,
        input.name,
        session,
        batcher,
      );
      holder.model = model;
      const warm = await session.warmUp([1, Math.min(options.batching.maxBatchSize, 8)]);
      options.logger.log(
        `${model.key} loaded (sha256 ${model.sha256.slice(0, 12)}…, ${session.executionProvider}, ` +
          `warm-up ${warm.map((w) => `b${w.batchSize} ${w.ms.toFixed(1)} ms`).join(', ')})`,
      );
      return model;
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /** Takes a lease; throws if the version is already retiring. */
  acquire(): () => void {
    if (this.retiring) throw new FailedPreconditionError(`${this.key} is being unloaded`);
    this.leases++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.leases--;
      if (this.leases === 0) this.leasesReleased?.();
    };
  }

  /** Waits for every lease, lets queued work finish, then releases the session (idempotent). */
  retire(): Promise<void> {
    this.retiring ??= (async () => {
      if (this.leases > 0) await new Promise<void>((resolve) => (this.leasesReleased = resolve));
      await this.batcher.close();
      await this.session.release();
    })();
    return this.retiring;
  }
}

async function selfCheck(
  version: LoadedVersion,
  session: OnnxModelSession,
  inputName: string,
): Promise<void> {
  const check = version.manifest.self_check;
  if (check === null) return;
  const input = decodeTensor(check.input);
  const outputs = await session.run({ [inputName]: { data: input.data, dims: input.shape } });
  for (const [name, encoded] of Object.entries(check.expected)) {
    const expected = decodeTensor(encoded);
    const actual = outputs[name];
    if (!actual)
      throw new IntegrityError(`${version.model}:${version.version}: self-check output ${name} missing`);
    let worst = 0;
    for (let i = 0; i < expected.data.length; i++) {
      const e = expected.data[i];
      const excess =
        Math.abs((actual.data[i] ?? NaN) - e) - (check.tolerance.atol + check.tolerance.rtol * Math.abs(e));
      if (!(excess <= 0)) worst = Math.max(worst, Number.isNaN(excess) ? Infinity : excess);
    }
    if (worst > 0 || actual.data.length !== expected.data.length) {
      throw new IntegrityError(
        `${version.model}:${version.version}: self-check failed on ${name} (outputs differ from the manifest's ` +
          `expected values beyond atol ${check.tolerance.atol}, rtol ${check.tolerance.rtol})`,
      );
    }
  }
}
