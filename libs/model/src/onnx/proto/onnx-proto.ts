/**
 * The subset of onnx.proto (github.com/onnx/onnx, onnx/onnx.proto, `syntax = "proto2"`) that this
 * library writes and reads. Field numbers are copied from that file; message and field names keep
 * the proto's spelling in the comments so they can be looked up. Fields not listed here are skipped
 * by the decoder and never written.
 */

/** ModelProto (onnx.proto `message ModelProto`). */
export const ModelProtoField = {
  irVersion: 1, // optional int64 ir_version
  producerName: 2, // optional string producer_name
  producerVersion: 3, // optional string producer_version
  domain: 4, // optional string domain
  modelVersion: 5, // optional int64 model_version
  docString: 6, // optional string doc_string
  graph: 7, // optional GraphProto graph
  opsetImport: 8, // repeated OperatorSetIdProto opset_import
  metadataProps: 14, // repeated StringStringEntryProto metadata_props
} as const;

/** GraphProto. */
export const GraphProtoField = {
  node: 1, // repeated NodeProto node
  name: 2, // optional string name
  initializer: 5, // repeated TensorProto initializer
  docString: 10, // optional string doc_string
  input: 11, // repeated ValueInfoProto input
  output: 12, // repeated ValueInfoProto output
  valueInfo: 13, // repeated ValueInfoProto value_info
} as const;

/** NodeProto. */
export const NodeProtoField = {
  input: 1, // repeated string input
  output: 2, // repeated string output
  name: 3, // optional string name
  opType: 4, // optional string op_type
  attribute: 5, // repeated AttributeProto attribute
  docString: 6, // optional string doc_string
  domain: 7, // optional string domain
} as const;

/** AttributeProto. */
export const AttributeProtoField = {
  name: 1, // optional string name
  f: 2, // optional float f
  i: 3, // optional int64 i
  s: 4, // optional bytes s
  t: 5, // optional TensorProto t
  g: 6, // optional GraphProto g
  floats: 7, // repeated float floats (not packed in proto2)
  ints: 8, // repeated int64 ints (not packed in proto2)
  strings: 9, // repeated bytes strings
  tensors: 10, // repeated TensorProto tensors
  graphs: 11, // repeated GraphProto graphs
  docString: 13, // optional string doc_string
  type: 20, // optional AttributeType type
} as const;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;
export type AttributeType = (typeof AttributeType)[keyof typeof AttributeType];

/** TensorProto. */
export const TensorProtoField = {
  dims: 1, // repeated int64 dims (not packed in proto2)
  dataType: 2, // optional int32 data_type
  floatData: 4, // repeated float float_data [packed = true]
  int32Data: 5, // repeated int32 int32_data [packed = true]
  stringData: 6, // repeated bytes string_data
  int64Data: 7, // repeated int64 int64_data [packed = true]
  name: 8, // optional string name
  rawData: 9, // optional bytes raw_data (fixed-width little-endian)
  doubleData: 10, // repeated double double_data [packed = true]
  docString: 12, // optional string doc_string
  dataLocation: 14, // optional DataLocation data_location (DEFAULT = 0, EXTERNAL = 1)
} as const;

/** TensorProto.DataType (the values this library names; others pass through as numbers). */
export const TensorDataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;
export type TensorDataType = (typeof TensorDataType)[keyof typeof TensorDataType];

export const TENSOR_DATA_LOCATION_EXTERNAL = 1;

/** ValueInfoProto. */
export const ValueInfoProtoField = {
  name: 1, // optional string name
  type: 2, // optional TypeProto type
  docString: 3, // optional string doc_string
} as const;

/** TypeProto (only the `tensor_type` member of its oneof). */
export const TypeProtoField = {
  tensorType: 1, // Tensor tensor_type
  denotation: 6, // optional string denotation
} as const;

/** TypeProto.Tensor. */
export const TypeProtoTensorField = {
  elemType: 1, // optional int32 elem_type
  shape: 2, // optional TensorShapeProto shape
} as const;

/** TensorShapeProto. */
export const TensorShapeProtoField = {
  dim: 1, // repeated Dimension dim
} as const;

/** TensorShapeProto.Dimension. */
export const DimensionField = {
  dimValue: 1, // int64 dim_value (oneof value)
  dimParam: 2, // string dim_param (oneof value)
  denotation: 3, // optional string denotation
} as const;

/** OperatorSetIdProto. */
export const OperatorSetIdProtoField = {
  domain: 1, // optional string domain
  version: 2, // optional int64 version
} as const;

/** StringStringEntryProto. */
export const StringStringEntryProtoField = {
  key: 1, // optional string key
  value: 2, // optional string value
} as const;

// ---------------------------------------------------------------------------------------------------
// Plain-object messages. Optional proto2 scalars are `undefined` when absent; repeated fields are
// always arrays. int64 values are JS numbers (checked to be safe integers when decoding), except
// TensorProto.int64_data, which is bigint.

export interface OnnxTensor {
  name?: string;
  dims: number[];
  dataType: number;
  rawData?: Uint8Array;
  floatData?: Float32Array;
  int32Data?: number[];
  int64Data?: bigint[];
  doubleData?: Float64Array;
  stringData?: Uint8Array[];
  dataLocation?: number;
  docString?: string;
}

export interface OnnxAttribute {
  name: string;
  type: AttributeType;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: OnnxTensor;
  g?: OnnxGraph;
  floats: number[];
  ints: number[];
  strings: Uint8Array[];
  tensors: OnnxTensor[];
  graphs: OnnxGraph[];
  docString?: string;
}

export interface OnnxDimension {
  dimValue?: number;
  dimParam?: string;
  denotation?: string;
}

export interface OnnxTensorType {
  elemType?: number;
  /** Absent shape = unknown rank. */
  shape?: { dim: OnnxDimension[] };
}

export interface OnnxType {
  /** Absent for non-tensor types (sequence, map, …), which this library does not model. */
  tensorType?: OnnxTensorType;
  denotation?: string;
}

export interface OnnxValueInfo {
  name: string;
  type?: OnnxType;
  docString?: string;
}

export interface OnnxNode {
  input: string[];
  output: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute: OnnxAttribute[];
  docString?: string;
}

export interface OnnxGraph {
  name?: string;
  node: OnnxNode[];
  initializer: OnnxTensor[];
  input: OnnxValueInfo[];
  output: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
  docString?: string;
}

export interface OnnxOperatorSetId {
  /** "" (or absent) is the default ONNX domain. */
  domain?: string;
  version: number;
}

export interface OnnxStringStringEntry {
  key: string;
  value: string;
}

export interface OnnxModel {
  irVersion?: number;
  opsetImport: OnnxOperatorSetId[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: OnnxGraph;
  metadataProps: OnnxStringStringEntry[];
}
