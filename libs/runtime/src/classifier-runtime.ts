/**
 * Glue between the batcher and a classifier session: items are single images ([3, H, W] float32,
 * already preprocessed), the model takes [B, 3, H, W] and returns one or two logit heads.
 */
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

export type ClassifierExecute = (items: readonly Float32Array[]) => Promise<ClassifierLogits[]>;

/**
 * A batch execute function for {@link DynamicBatcher}: one session run per batch, logits split back
 * per item. Names are checked here, once, rather than on every batch.
 */
export function createClassifierExecute(
  session: ClassifierSession,
  names: ClassifierIoNames,
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
  const itemDims = session.itemDims(input);
  const itemSize = itemDims.reduce((a, b) => a * b, 1);

  return async (items) => {
    if (items.length === 0) return [];
    for (const [i, item] of items.entries()) {
      if (item.length !== itemSize) {
        throw new InvalidArgumentError(
          `item ${i} has ${item.length} values; input "${input}" takes [${itemDims.join(', ')}] = ${itemSize} per item`,
        );
      }
    }
    // A single item is already laid out as a batch of one: no copy.
    let data = items[0];
    if (items.length > 1) {
      data = new Float32Array(items.length * itemSize);
      items.forEach((item, i) => data.set(item, i * itemSize));
    }
    // A batch assembled here is ours to give away: it moves to a worker-thread session uncopied.
    const out = await session.run(
      { [input]: { data, dims: [items.length, ...itemDims] } },
      { transferInputs: items.length > 1 },
    );
    const cls = splitBatch(out, names.cls, items.length);
    const dist = names.dist === undefined ? undefined : splitBatch(out, names.dist, items.length);
    return cls.map((c, i) => (dist ? { cls: c, dist: dist[i] } : { cls: c }));
  };
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
