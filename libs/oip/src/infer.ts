import { headLogits, type HeadChoice, InvalidArgumentError } from '@deit-serve/core';
import { type ForwardInput, type ForwardItem, softmax, topK } from '@deit-serve/inference-engine';
import type { oip } from '@deit-serve/proto';
import { inputsOf, outputsOf, type Signature, type TensorSpec } from './signature';
import { bytesRaw, FP32_BYTES, fp32FromContents, fp32Raw, parseBytesRaw, shapeText } from './tensors';

/** Request parameter choosing the head whose probabilities answer. */
export const HEAD_PARAMETER = 'head';
/** Triton's classification extension: an output's parameter asking for its top k as strings. */
export const CLASSIFICATION_PARAMETER = 'classification';
const HEADS: Readonly<Record<string, HeadChoice>> = { cls: 'cls', dist: 'dist', avg: 'average' };

/** What a request asks of one model, checked against that model's signature. */
export interface ParsedInfer {
  inputs: ForwardInput[];
  outputs: { spec: TensorSpec; classification: number }[];
}

/** Where errors about a request point: Triton's `[request id: …]` prefix and the model's name. */
export interface RequestContext {
  id: string;
  model: string;
  maxBatchSize: number;
}

function prefix(ctx: RequestContext): string {
  return `[request id: ${ctx.id || '<id_unknown>'}] `;
}

/** The `head` parameter (`avg` when absent). */
export function headOf(request: oip.ModelInferRequest): HeadChoice {
  const parameter = request.parameters[HEAD_PARAMETER];
  if (parameter === undefined) return 'average';
  const value = parameter.stringParam;
  const head = value === undefined ? undefined : HEADS[value];
  if (head === undefined) {
    throw new InvalidArgumentError(
      `parameter '${HEAD_PARAMETER}' must be a string, one of ${Object.keys(HEADS)
        .map((h) => `'${h}'`)
        .join(', ')}; got ${value === undefined ? 'a non-string value' : `'${value}'`}`,
    );
  }
  return head;
}

/**
 * The request's inputs as engine inputs (one per batch item) and its requested outputs, with the
 * status codes and messages Triton gives for the same mistakes (all INVALID_ARGUMENT).
 */
export function parseInfer(
  request: oip.ModelInferRequest,
  signature: Signature,
  ctx: RequestContext,
): ParsedInfer {
  const inputs = request.inputs;
  const known = inputsOf(signature);
  if (inputs.length !== 1) {
    throw new InvalidArgumentError(
      `${prefix(ctx)}expected 1 inputs but got ${inputs.length} inputs for model '${ctx.model}'. ` +
        `Got input(s) [${inputs.map((i) => `'${i.name}'`).join(', ')}], but the model takes exactly one of ` +
        `[${known.map((k) => `'${k.name}'`).join(', ')}]`,
    );
  }
  const [input] = inputs;
  const spec = known.find((k) => k.name === input.name);
  if (!spec)
    throw new InvalidArgumentError(
      `${prefix(ctx)}unexpected inference input '${input.name}' for model '${ctx.model}'`,
    );
  if (input.datatype !== spec.datatype) {
    throw new InvalidArgumentError(
      `${prefix(ctx)}inference input '${input.name}' data-type is '${input.datatype}', but model '${ctx.model}' expects '${spec.datatype}'`,
    );
  }
  const expected = [-1, ...spec.dims];
  const shape = input.shape;
  if (shape.length !== expected.length || shape.some((d, i) => (i === 0 ? d < 1 : d !== expected[i]))) {
    throw new InvalidArgumentError(
      `${prefix(ctx)}unexpected shape for input '${input.name}' for model '${ctx.model}'. Expected ${shapeText(expected)}, got ${shapeText(shape)}`,
    );
  }
  const batch = shape[0];
  if (batch > ctx.maxBatchSize) {
    throw new InvalidArgumentError(
      `${prefix(ctx)}inference request batch-size must be <= ${ctx.maxBatchSize} for '${ctx.model}'`,
    );
  }
  const raw = rawContents(request, input, ctx);
  const items =
    spec.datatype === 'FP32'
      ? pixelItems(raw ?? fp32FromContents(input.contents?.fp32Contents ?? []), spec, batch, ctx)
      : imageItems(
          raw ? parseBytesRaw(raw, `input '${input.name}'`) : (input.contents?.bytesContents ?? []),
          spec,
          batch,
          ctx,
        );
  return { inputs: items, outputs: requestedOutputs(request, signature, ctx) };
}

function rawContents(
  request: oip.ModelInferRequest,
  input: oip.ModelInferRequest_InferInputTensor,
  ctx: RequestContext,
): Uint8Array | undefined {
  if (request.rawInputContents.length === 0) return undefined;
  if (request.rawInputContents.length !== request.inputs.length) {
    throw new InvalidArgumentError(
      `${prefix(ctx)}expected ${request.inputs.length} raw_input_contents (one per input) but got ${request.rawInputContents.length} for model '${ctx.model}'`,
    );
  }
  const contents = input.contents;
  if (contents && (contents.fp32Contents.length > 0 || contents.bytesContents.length > 0)) {
    throw new InvalidArgumentError(
      `contents field must not be specified when using raw_input_contents for '${input.name}' for model '${ctx.model}'`,
    );
  }
  return request.rawInputContents[0];
}

function pixelItems(bytes: Uint8Array, spec: TensorSpec, batch: number, ctx: RequestContext): ForwardInput[] {
  const itemBytes = spec.dims.reduce((n, d) => n * d, FP32_BYTES);
  if (bytes.byteLength !== batch * itemBytes) {
    throw new InvalidArgumentError(
      `${prefix(ctx)}input byte size mismatch for input '${spec.name}' for model '${ctx.model}'. Expected ${batch * itemBytes}, got ${bytes.byteLength}`,
    );
  }
  return Array.from({ length: batch }, (_, i) => ({
    tensor: { shape: spec.dims, data: bytes.subarray(i * itemBytes, (i + 1) * itemBytes) },
  }));
}

function imageItems(
  elements: readonly Uint8Array[],
  spec: TensorSpec,
  batch: number,
  ctx: RequestContext,
): ForwardInput[] {
  if (elements.length !== batch) {
    throw new InvalidArgumentError(
      `${prefix(ctx)}expected ${batch} string elements for inference input '${spec.name}' for model '${ctx.model}', got ${elements.length}`,
    );
  }
  return elements.map((image) => ({ image }));
}

function requestedOutputs(
  request: oip.ModelInferRequest,
  signature: Signature,
  ctx: RequestContext,
): ParsedInfer['outputs'] {
  const all = outputsOf(signature);
  if (request.outputs.length === 0) return all.map((spec) => ({ spec, classification: 0 }));
  return request.outputs.map((o) => {
    const spec = all.find((s) => s.name === o.name);
    if (!spec)
      throw new InvalidArgumentError(
        `${prefix(ctx)}unexpected inference output '${o.name}' for model '${ctx.model}'`,
      );
    const parameter = o.parameters[CLASSIFICATION_PARAMETER];
    if (parameter === undefined) return { spec, classification: 0 };
    const k = parameter.int64Param ?? parameter.uint64Param;
    if (k === undefined || !Number.isInteger(k) || k < 1) {
      throw new InvalidArgumentError(
        `${prefix(ctx)}output '${o.name}' parameter '${CLASSIFICATION_PARAMETER}' must be an integer >= 1 (the number of classes to return)`,
      );
    }
    return { spec, classification: k };
  });
}

/**
 * One output per requested output: FP32 values, or for a classification request the top k of the
 * output's values per batch item as BYTES `"value:index:label"` (Triton's classification
 * extension, its `value` printed as C++'s std::to_string prints a float).
 */
export function inferOutputs(
  parsed: ParsedInfer,
  items: readonly ForwardItem[],
  head: HeadChoice,
  signature: Signature,
): { outputs: oip.ModelInferResponse_InferOutputTensor[]; raw: Uint8Array[] } {
  const valuesOf = (spec: TensorSpec): Float32Array[] =>
    items.map(({ cls, dist }) => {
      if (spec === signature.cls) return cls;
      if (spec === signature.dist && dist) return dist;
      return Float32Array.from(softmax(headLogits(head, cls, dist)));
    });
  const outputs: oip.ModelInferResponse_InferOutputTensor[] = [];
  const raw: Uint8Array[] = [];
  for (const { spec, classification } of parsed.outputs) {
    const values = valuesOf(spec);
    if (classification === 0) {
      outputs.push({
        name: spec.name,
        datatype: 'FP32',
        shape: [items.length, ...spec.dims],
        parameters: {},
        contents: undefined,
      });
      raw.push(fp32Raw(values));
      continue;
    }
    const k = Math.min(classification, spec.dims[0]);
    const strings = values.flatMap((v) =>
      // The order of probabilities is the order of logits: one ranking for every output.
      topK(v, k).map(({ index }) =>
        Buffer.from(
          `${v[index].toFixed(6)}:${index}${signature.labels[index] ? `:${signature.labels[index]}` : ''}`,
        ),
      ),
    );
    outputs.push({
      name: spec.name,
      datatype: 'BYTES',
      shape: [items.length, k],
      parameters: {},
      contents: undefined,
    });
    raw.push(bytesRaw(strings));
  }
  return { outputs, raw };
}
