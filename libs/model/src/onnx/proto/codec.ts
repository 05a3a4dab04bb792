import { BinaryReader } from '@bufbuild/protobuf/wire';
import { ModelProto } from '../generated/onnx';

/**
 * The ONNX messages this library reads and writes, as ts-proto generates them from the vendored
 * onnx.proto (proto/third_party/onnx): proto2 optional fields are `undefined` when absent and written
 * whenever set (defaults included), int64 values are numbers, bytes are Uint8Array views.
 */
export {
  AttributeProto,
  AttributeProto_AttributeType,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetIdProto,
  StringStringEntryProto,
  TensorProto,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorShapeProto,
  TensorShapeProto_Dimension,
  TypeProto,
  TypeProto_Tensor,
  ValueInfoProto,
} from '../generated/onnx';

/** A file that is not a valid ModelProto (truncated, or an int64 beyond the safe integer range). */
export class OnnxDecodeError extends Error {
  constructor(detail: string) {
    super(`invalid ONNX protobuf: ${detail}`);
    this.name = 'OnnxDecodeError';
  }
}

/**
 * Parses a ModelProto. As in protobuf's own parsers (and so in onnxruntime), unknown fields and
 * fields of an unexpected wire type are skipped.
 */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const reader = new BinaryReader(bytes);
  let model: ModelProto;
  try {
    model = ModelProto.decode(reader, bytes.length);
  } catch (e) {
    throw new OnnxDecodeError(e instanceof Error ? e.message : String(e));
  }
  if (reader.pos !== bytes.length) {
    throw new OnnxDecodeError(`parsing stopped at byte ${reader.pos} of ${bytes.length}`);
  }
  return model;
}

/** Serialises a ModelProto; tensors' raw_data bytes are copied into the output, not converted. */
export function encodeModel(model: ModelProto): Uint8Array {
  return ModelProto.encode(model).finish();
}
