/**
 * Glue between the batcher and a classifier session: items are single images ([3, H, W] float32,
 * already preprocessed, as values or little-endian bytes), the model takes [B, 3, H, W] and returns
 * one or two logit heads.
 */
import { endianness } from 'node:os';
import { FailedPreconditionError, InvalidArgumentError } from '@deit-serve/core';
import type { FloatTensor, OnnxModelSession } from './onnx-session';

/** What the glue needs from a session; a structural type so tests can pass a fake. */
export type ClassifierSession = Pick<OnnxModelSession, 'run' | 'itemDims' | 'inputNames' | 'outputNames'>;

export interface ClassifierIoNames {
  /** Default: the model's only input. */
  readonly input?: string;
  /** Class-token head (DeiT `cls_logits`). */
  readonly cls: string;
  /** Distillation-token head (distilled DeiT `dist_logits`); absent for single-head models. */
  readonly dist?: string;
}

export interface ClassifierLogits {
  readonly cls: Float32Array;
  readonly dist?: Float32Array;
}

/**
 * One preprocessed image: its float32 values, or the same values as little-endian float32 bytes at any
 * alignment (a tensor straight off the wire, copied once, into the batch).
 */
export type ClassifierItem = Float32Array | Uint8Array;

export type ClassifierExecute = (items: readonly ClassifierItem[]) => Promise<ClassifierLogits[]>;

export interface ClassifierExecuteOptions {
  /**
   * The batcher's largest batch: batch buffers of this many items are reused from run to run instead
   * of allocated per batch (default 1; a larger batch gets a buffer of its own).
   */
  readonly maxBatchSize?: number;
}

/**
 * A batch execute function for {@link DynamicBatcher}: one session run per batch, logits split back
 * per item. Names are checked here, once, rather than on every batch. Each batch is copied into a
 * reused SharedArrayBuffer, which a worker-thread session reads in place (posting it shares rather than
 * copies), so a steady load allocates no batch memory on either thread: no garbage for their collectors,
 * no RSS growth from freed multi-megabyte blocks. (Moving an ArrayBuffer there and back was tried:
 * every move counts as a new external allocation and drove the main thread's full collections from 22
 * to 36 in ten seconds of load.)
 */
export function createClassifierExecute(
  session: ClassifierSession,
  names: ClassifierIoNames,
  options: ClassifierExecuteOptions = {},
): ClassifierExecute {
  const input = names.input ?? session.inputNames[0];
  if (names.input === undefined && session.inputNames.length !== 1) {
    throw new InvalidArgumentError(
      `model has inputs ${session.inputNames.join(', ')}; name the pixel input explicitly`,
    );
  }
  for (const output of [names.cls, names.dist]) {
    if (output !== undefined && !session.outputNames.includes(output)) {
      throw new FailedPreconditionError(
        `model has no output "${output}" (outputs: ${session.outputNames.join(', ')})`,
      );
    }
  }
  if (endianness() !== 'LE') {
    throw new FailedPreconditionError('this host is big-endian; float32 items are little-endian');
  }
  const itemDims = session.itemDims(input);
  const itemSize = itemDims.reduce((a, b) => a * b, 1);
  const pool = new BatchBufferPool(Math.max(1, options.maxBatchSize ?? 1) * itemSize * 4);

  return async (items) => {
    if (items.length === 0) return [];
    for (const [i, item] of items.entries()) {
      const values = item instanceof Float32Array ? item.length : item.byteLength / 4;
      if (values !== itemSize) {
        throw new InvalidArgumentError(
          `item ${i} has ${values} values; input "${input}" takes [${itemDims.join(', ')}] = ${itemSize} per item`,
        );
      }
    }
    const buffer = pool.take(items.length * itemSize * 4);
    const data = new Float32Array(buffer, 0, items.length * itemSize);
    items.forEach((item, i) => {
      if (item instanceof Float32Array) data.set(item, i * itemSize);
      else new Uint8Array(buffer, i * itemSize * 4, itemSize * 4).set(item);
    });
    let out;
    try {
      out = await session.run({ [input]: { data, dims: [items.length, ...itemDims] } });
    } finally {
      pool.give(buffer);
    }
    const cls = splitBatch(out, names.cls, items.length);
    const dist = names.dist === undefined ? undefined : splitBatch(out, names.dist, items.length);
    return cls.map((c, i) => (dist ? { cls: c, dist: dist[i] } : { cls: c }));
  };
}

/** Batch buffers of one size, reused. Batches run one at a time: one buffer in use, at most two kept. */
class BatchBufferPool {
  private readonly free: SharedArrayBuffer[] = [];

  constructor(private readonly bytes: number) {}

  take(bytes: number): SharedArrayBuffer {
    if (bytes > this.bytes) return new SharedArrayBuffer(bytes);
    return this.free.pop() ?? new SharedArrayBuffer(this.bytes);
  }

  give(buffer: SharedArrayBuffer): void {
    if (buffer.byteLength === this.bytes && this.free.length < 2) this.free.push(buffer);
  }
}

/** Per-item copies (not views), so a caller keeping one item's logits does not pin the whole batch. */
function splitBatch(out: Readonly<Record<string, FloatTensor>>, name: string, batch: number): Float32Array[] {
  const tensor = out[name];
  if (!tensor) throw new FailedPreconditionError(`model returned no output "${name}"`);
  if (tensor.dims[0] !== batch || tensor.data.length % batch !== 0) {
    throw new FailedPreconditionError(
      `output "${name}" has dims [${tensor.dims.join(', ')}] for a batch of ${batch}`,
    );
  }
  const per = tensor.data.length / batch;
  return Array.from({ length: batch }, (_, i) => tensor.data.slice(i * per, (i + 1) * per));
}
