import { FailedPreconditionError, headLogits, InvalidArgumentError, type HeadChoice } from '@deit-serve/core';
import { DecodeAdmission, decodeImage, preprocess } from '@deit-serve/preprocess';
import { inferenceV1 } from '@deit-serve/proto';
import { type Disagreement, disagreement, topK } from './heads';
import type { LoadedModel } from './loaded-model';
import type { InferenceMetrics } from './metrics';
import type { ModelHost } from './model-host';

const { Head } = inferenceV1;

export const DEFAULT_TOP_K = 5;

/** One input of {@link ClassificationService.forward}: encoded image bytes or a preprocessed tensor. */
export type ForwardInput = { image: Uint8Array } | { tensor: inferenceV1.Tensor };

/** What one version's heads said about each input of a {@link ClassificationService.forward} call. */
export interface Forward {
  model: LoadedModel;
  /** The alias the reference resolved through, if any. */
  alias?: string;
  items: ForwardItem[];
  /** `performance.now()` when the call arrived. */
  arrived: number;
}

export interface ForwardItem {
  cls: Float32Array;
  dist: Float32Array | undefined;
  disagreement: Disagreement | undefined;
  timing: { queueMs: number; preprocessMs: number; computeMs: number; batchSize: number };
}

export interface ClassifyContext {
  /** Epoch ms after which the caller no longer wants an answer (the gRPC deadline). */
  deadline?: number;
  /** Aborted when the caller goes away. */
  signal?: AbortSignal;
}

export interface ClassificationOptions {
  defaultModel: string;
  maxDecodedPixels: number;
  /** Pixels decoding at once across requests (bounds decoder memory); default `maxDecodedPixels`. */
  maxDecodingPixels?: number;
}

/** Classifies one image or tensor: preprocessing per the model's manifest, batching, head choice. */
export class ClassificationService {
  private readonly decoding: DecodeAdmission;

  constructor(
    private readonly host: ModelHost,
    private readonly metrics: InferenceMetrics,
    private readonly options: ClassificationOptions,
  ) {
    this.decoding = new DecodeAdmission({ capacity: options.maxDecodingPixels ?? options.maxDecodedPixels });
    metrics.observeDecoding(this.decoding);
  }

  async classify(
    request: inferenceV1.ClassifyRequest,
    context: ClassifyContext = {},
  ): Promise<inferenceV1.ClassifyResponse> {
    const head = headChoice(request.head);
    const input: ForwardInput = request.tensor
      ? { tensor: request.tensor }
      : { image: request.image ?? new Uint8Array() };
    if (!request.image?.length && !request.tensor) {
      throw new InvalidArgumentError('request has no input: set image (encoded bytes) or tensor');
    }
    const forward = await this.forward(request.model, [input], head, context);
    const [{ cls, dist, disagreement: d, timing }] = forward.items;
    const { model } = forward;
    const logits = headLogits(head, cls, dist);
    const predictions = topK(logits, request.topK || DEFAULT_TOP_K).map((p) => ({
      index: p.index,
      label: model.labels[p.index] ?? String(p.index),
      probability: p.probability,
      logit: p.logit,
    }));
    return {
      model: { name: model.name, version: model.version, sha256: model.sha256, alias: forward.alias ?? '' },
      head: head === 'cls' ? Head.HEAD_CLS : head === 'dist' ? Head.HEAD_DIST : Head.HEAD_AVERAGE,
      predictions,
      disagreement: d
        ? {
            available: true,
            top1Match: d.top1Match,
            klDivergence: d.klDivergence,
            clsTop1: d.clsTop1,
            distTop1: d.distTop1,
          }
        : { available: false, top1Match: false, klDivergence: 0, clsTop1: 0, distTop1: 0 },
      timing: { ...timing, totalMs: performance.now() - forward.arrived },
    };
  }

  /**
   * Both heads' logits for each input, from one version of `ref` (the default model when empty):
   * preprocessing per its manifest, the dynamic batcher, the per-version metrics. Classify and the
   * Open Inference Protocol answer from this; `head` is checked against the model (a `dist` choice
   * needs a distillation head). `inputs` may be a function of the leased version, to check a request
   * against the very version that will answer it.
   */
  async forward(
    ref: string,
    inputs: readonly ForwardInput[] | ((model: LoadedModel) => readonly ForwardInput[]),
    head: HeadChoice,
    context: ClassifyContext = {},
  ): Promise<Forward> {
    const arrived = performance.now();
    const lease = await this.host.acquire(ref || this.options.defaultModel);
    try {
      const { model } = lease;
      if (head === 'dist' && !model.hasDistHead) {
        throw new FailedPreconditionError(
          `${model.key} has no distillation head; use HEAD_CLS or HEAD_AVERAGE`,
        );
      }
      const prepared = typeof inputs === 'function' ? inputs(model) : inputs;
      const items = await Promise.all(
        prepared.map((input) => this.forwardOne(model, input, arrived, context)),
      );
      return { model, ...(lease.alias !== undefined && { alias: lease.alias }), items, arrived };
    } finally {
      lease.release();
    }
  }

  private async forwardOne(
    model: LoadedModel,
    input: ForwardInput,
    arrived: number,
    context: ClassifyContext,
  ): Promise<ForwardItem> {
    // Under overload an item that cannot be queued is refused before its image is decoded, and an
    // item waiting for the decoder or decoding holds its place in the queue meanwhile.
    const place = model.batcher.reserve();
    let values;
    try {
      values =
        'tensor' in input
          ? tensorInput(input.tensor, model)
          : await this.imageInput(input.image, model, context.signal);
    } catch (error) {
      place.release();
      throw error;
    }
    const preprocessed = performance.now();
    this.metrics.queueLength.inc();
    let batched;
    try {
      batched = await model.batcher.submit(values, { ...context, place });
    } finally {
      this.metrics.queueLength.dec();
    }
    const { cls, dist } = batched.result;
    const d = dist ? disagreement(cls, dist) : undefined;
    const preprocessMs = preprocessed - arrived;
    this.observe(model, preprocessMs, batched.queueMs, batched.computeMs, d);
    return {
      cls,
      dist,
      disagreement: d,
      timing: {
        queueMs: batched.queueMs,
        preprocessMs,
        computeMs: batched.computeMs,
        batchSize: batched.batchSize,
      },
    };
  }

  private async imageInput(
    bytes: Uint8Array,
    model: LoadedModel,
    signal: AbortSignal | undefined,
  ): Promise<Float32Array> {
    const image = await decodeImage(bytes, {
      maxPixels: this.options.maxDecodedPixels,
      budget: this.decoding,
      ...(signal !== undefined && { signal }),
    });
    return preprocess(image, model.inputSpec);
  }

  private observe(
    model: LoadedModel,
    preprocessMs: number,
    queueMs: number,
    computeMs: number,
    d: Disagreement | undefined,
  ): void {
    const labels = { model: model.name, version: String(model.version) };
    this.metrics.preprocessSeconds.observe(labels, preprocessMs / 1000);
    this.metrics.queueSeconds.observe(labels, queueMs / 1000);
    this.metrics.computeSeconds.observe(labels, computeMs / 1000);
    if (d) {
      this.metrics.headKl.observe(labels, d.klDivergence);
      if (!d.top1Match) this.metrics.headTop1Mismatch.inc(labels);
    }
  }
}

function headChoice(head: inferenceV1.Head): HeadChoice {
  switch (head) {
    case Head.HEAD_CLS:
      return 'cls';
    case Head.HEAD_DIST:
      return 'dist';
    case Head.HEAD_UNSPECIFIED:
    case Head.HEAD_AVERAGE:
      return 'average';
    case Head.UNRECOGNIZED:
    default:
      throw new InvalidArgumentError(`unknown head ${String(head)}; use HEAD_CLS, HEAD_DIST or HEAD_AVERAGE`);
  }
}

/**
 * A preprocessed tensor: [C,H,W] or [1,C,H,W] matching the model's input, float32 little-endian; its
 * bytes as received, once checked.
 */
function tensorInput(tensor: inferenceV1.Tensor, model: LoadedModel): Uint8Array {
  const { channels, imageSize } = model.inputSpec;
  const expected = [channels, imageSize, imageSize];
  const shape = tensor.shape.length === 4 && tensor.shape[0] === 1 ? tensor.shape.slice(1) : tensor.shape;
  if (shape.length !== 3 || shape.some((d, i) => d !== expected[i])) {
    throw new InvalidArgumentError(
      `tensor shape [${tensor.shape.join(', ')}] does not match ${model.key}'s input [${expected.join(', ')}] (or [1, ${expected.join(', ')}])`,
    );
  }
  const bytes = model.itemLength * 4;
  if (tensor.data.byteLength !== bytes) {
    throw new InvalidArgumentError(
      `tensor data has ${tensor.data.byteLength} bytes; shape [${tensor.shape.join(', ')}] needs ${bytes} (float32)`,
    );
  }
  const bad = nonFiniteIndex(tensor.data);
  if (bad >= 0) {
    throw new InvalidArgumentError(`tensor contains NaN or infinite values (first at index ${bad})`);
  }
  // The wire bytes themselves go to the batcher (at any alignment), copied once into the batch.
  return tensor.data;
}

/**
 * Index of the first NaN or ±Infinity among little-endian float32 bytes, or -1: a value is not finite
 * when its exponent bits are all ones. Read through a DataView, so the wire bytes need no aligned
 * copy at any offset: ≈ 0.23 ms for 150,528 values here, against 0.31 ms reading two bytes a value.
 */
export function nonFiniteIndex(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength - 3;
  for (let offset = 0; offset < end; offset += 4) {
    if ((view.getUint32(offset, true) & 0x7f800000) === 0x7f800000) return offset / 4;
  }
  return -1;
}
