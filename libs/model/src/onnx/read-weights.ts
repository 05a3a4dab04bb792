import { hostTensor, numel, type NamedWeights } from '../weights/named-weights';
import {
  bfloat16BitsToNumber,
  decodeFloats,
  float16BitsToNumber,
  type SafetensorsFloatDtype,
} from '../weights/safetensors';
import {
  decodeModel,
  TensorProto_DataLocation,
  TensorProto_DataType,
  type TensorProto,
  type ValueInfoProto,
} from './proto/codec';

export interface OnnxValueSummary {
  readonly name: string;
  /** TensorProto.DataType number (1 = FLOAT); undefined for non-tensor or untyped values. */
  readonly elemType?: number;
  /** Fixed size, symbolic `dim_param` name, or null when the dimension is unknown; null shape = unknown rank. */
  readonly shape: readonly (number | string | null)[] | null;
}

export interface IgnoredInitializer {
  readonly name: string;
  readonly reason: string;
}

export interface OnnxWeights {
  /** Floating-point initializers by name, converted to float32, in file order. */
  readonly weights: NamedWeights;
  readonly metadata: Readonly<Record<string, string>>;
  readonly inputs: readonly OnnxValueSummary[];
  readonly outputs: readonly OnnxValueSummary[];
  /** Initializers left out of `weights`, with why. */
  readonly ignored: readonly IgnoredInitializer[];
  readonly irVersion?: number;
  /** Version of the default ("" / ai.onnx) opset. */
  readonly opsetVersion?: number;
}

/**
 * Name prefixes that other exporters (torch.onnx) give their helper constants; initializers with
 * them are not model weights. Our own exporters use Constant nodes for helpers instead.
 */
const HELPER_PREFIXES = ['/', 'onnx::'];

/**
 * Reads an ONNX model's weights back into the shared {@link NamedWeights} contract (initializers are
 * already in PyTorch layout when written by this library's exporters). Integer initializers (shape
 * constants) and helper constants are skipped and listed in `ignored`; external data is an error.
 */
export function readOnnxWeights(bytes: Uint8Array): OnnxWeights {
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (graph === undefined) throw new Error('ONNX model has no graph');
  const weights: NamedWeights = new Map();
  const ignored: IgnoredInitializer[] = [];
  (graph.initializer ?? []).forEach((t, index) => {
    const name = t.name ?? '';
    if (name === '') throw new Error(`ONNX initializer #${index} has no name`);
    if (HELPER_PREFIXES.some((p) => name.startsWith(p))) {
      ignored.push({ name, reason: 'helper constant' });
      return;
    }
    const dataType = t.dataType ?? TensorProto_DataType.UNDEFINED;
    const dtype = FLOAT_TYPES.get(dataType);
    if (dtype === undefined) {
      ignored.push({ name, reason: `non-float data type ${dataType}` });
      return;
    }
    if (weights.has(name)) throw new Error(`ONNX initializer "${name}" appears twice`);
    weights.set(name, hostTensor(t.dims ?? [], tensorFloats(t, name, dtype)));
  });
  const metadata: Record<string, string> = {};
  for (const { key, value } of model.metadataProps ?? []) metadata[key ?? ''] = value ?? '';
  return {
    weights,
    metadata,
    inputs: (graph.input ?? []).filter((i) => !weights.has(i.name ?? '')).map(summarize),
    outputs: (graph.output ?? []).map(summarize),
    ignored,
    irVersion: model.irVersion,
    opsetVersion: model.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version,
  };
}

const FLOAT_TYPES: ReadonlyMap<number, SafetensorsFloatDtype> = new Map([
  [TensorProto_DataType.FLOAT, 'F32'],
  [TensorProto_DataType.FLOAT16, 'F16'],
  [TensorProto_DataType.BFLOAT16, 'BF16'],
  [TensorProto_DataType.DOUBLE, 'F64'],
]);

const BYTES_PER: Readonly<Record<SafetensorsFloatDtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

function tensorFloats(t: TensorProto, name: string, dtype: SafetensorsFloatDtype): Float32Array {
  if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) {
    throw new Error(`ONNX initializer "${name}" uses external data, which is not supported`);
  }
  const dims = t.dims ?? [];
  const n = numel(dims);
  let out: Float32Array;
  if (t.rawData !== undefined) {
    if (t.rawData.length !== n * BYTES_PER[dtype]) {
      throw new Error(
        `ONNX initializer "${name}": raw_data has ${t.rawData.length} bytes, dims [${dims.join(', ')}] need ${n * BYTES_PER[dtype]}`,
      );
    }
    out = decodeFloats(t.rawData, dtype);
  } else if (dtype === 'F32') {
    out = Float32Array.from(t.floatData ?? []);
  } else if (dtype === 'F64') {
    out = Float32Array.from(t.doubleData ?? []);
  } else {
    // float16 / bfloat16 without raw_data: bit patterns in int32_data.
    const bits = t.int32Data ?? [];
    out = Float32Array.from(bits, (b) =>
      dtype === 'F16' ? float16BitsToNumber(b) : bfloat16BitsToNumber(b),
    );
  }
  if (out.length !== n) {
    throw new Error(
      `ONNX initializer "${name}": ${out.length} values for dims [${dims.join(', ')}] (${n} expected)`,
    );
  }
  return out;
}

function summarize(v: ValueInfoProto): OnnxValueSummary {
  const tensor = v.type?.tensorType;
  return {
    name: v.name ?? '',
    elemType: tensor?.elemType,
    shape:
      tensor?.shape === undefined
        ? null
        : (tensor.shape.dim ?? []).map((d) => d.dimValue ?? d.dimParam ?? null),
  };
}
