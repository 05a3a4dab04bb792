import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  AttributeProtoField as A,
  DimensionField as D,
  GraphProtoField as G,
  ModelProtoField as M,
  NodeProtoField as N,
  OperatorSetIdProtoField as O,
  StringStringEntryProtoField as S,
  TensorProtoField as T,
  TensorShapeProtoField,
  TypeProtoField,
  TypeProtoTensorField,
  ValueInfoProtoField as V,
  type OnnxAttribute,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxType,
  type OnnxValueInfo,
} from './onnx-proto';

/** Serialises a ModelProto. Fields are written in field-number order, as protoc does. */
export function encodeModel(model: OnnxModel): Uint8Array {
  const w = new BinaryWriter();
  writeModel(w, model);
  return w.finish();
}

export function encodeTensor(tensor: OnnxTensor): Uint8Array {
  const w = new BinaryWriter();
  writeTensor(w, tensor);
  return w.finish();
}

function writeModel(w: BinaryWriter, m: OnnxModel): void {
  optInt64(w, M.irVersion, m.irVersion);
  optString(w, M.producerName, m.producerName);
  optString(w, M.producerVersion, m.producerVersion);
  optString(w, M.domain, m.domain);
  optInt64(w, M.modelVersion, m.modelVersion);
  optString(w, M.docString, m.docString);
  if (m.graph !== undefined) message(w, M.graph, () => writeGraph(w, m.graph as OnnxGraph));
  for (const op of m.opsetImport) {
    message(w, M.opsetImport, () => {
      optString(w, O.domain, op.domain);
      optInt64(w, O.version, op.version);
    });
  }
  for (const e of m.metadataProps) {
    message(w, M.metadataProps, () => {
      optString(w, S.key, e.key);
      optString(w, S.value, e.value);
    });
  }
}

function writeGraph(w: BinaryWriter, g: OnnxGraph): void {
  for (const n of g.node) message(w, G.node, () => writeNode(w, n));
  optString(w, G.name, g.name);
  for (const t of g.initializer) message(w, G.initializer, () => writeTensor(w, t));
  optString(w, G.docString, g.docString);
  for (const v of g.input) message(w, G.input, () => writeValueInfo(w, v));
  for (const v of g.output) message(w, G.output, () => writeValueInfo(w, v));
  for (const v of g.valueInfo) message(w, G.valueInfo, () => writeValueInfo(w, v));
}

function writeNode(w: BinaryWriter, n: OnnxNode): void {
  for (const s of n.input) w.tag(N.input, WireType.LengthDelimited).string(s);
  for (const s of n.output) w.tag(N.output, WireType.LengthDelimited).string(s);
  optString(w, N.name, n.name);
  optString(w, N.opType, n.opType);
  for (const a of n.attribute) message(w, N.attribute, () => writeAttribute(w, a));
  optString(w, N.docString, n.docString);
  optString(w, N.domain, n.domain);
}

function writeAttribute(w: BinaryWriter, a: OnnxAttribute): void {
  optString(w, A.name, a.name);
  if (a.f !== undefined) w.tag(A.f, WireType.Bit32).float(a.f);
  optInt64(w, A.i, a.i);
  if (a.s !== undefined) w.tag(A.s, WireType.LengthDelimited).bytes(a.s);
  if (a.t !== undefined) message(w, A.t, () => writeTensor(w, a.t as OnnxTensor));
  if (a.g !== undefined) message(w, A.g, () => writeGraph(w, a.g as OnnxGraph));
  for (const f of a.floats) w.tag(A.floats, WireType.Bit32).float(f);
  for (const i of a.ints) w.tag(A.ints, WireType.Varint).int64(i);
  for (const s of a.strings) w.tag(A.strings, WireType.LengthDelimited).bytes(s);
  for (const t of a.tensors) message(w, A.tensors, () => writeTensor(w, t));
  for (const g of a.graphs) message(w, A.graphs, () => writeGraph(w, g));
  optString(w, A.docString, a.docString);
  w.tag(A.type, WireType.Varint).int32(a.type);
}

function writeTensor(w: BinaryWriter, t: OnnxTensor): void {
  for (const d of t.dims) w.tag(T.dims, WireType.Varint).int64(d);
  w.tag(T.dataType, WireType.Varint).int32(t.dataType);
  if (t.floatData !== undefined) {
    const data = t.floatData;
    message(w, T.floatData, () => data.forEach((v) => w.float(v)));
  }
  if (t.int32Data !== undefined) {
    const data = t.int32Data;
    message(w, T.int32Data, () => data.forEach((v) => w.int32(v)));
  }
  for (const s of t.stringData ?? []) w.tag(T.stringData, WireType.LengthDelimited).bytes(s);
  if (t.int64Data !== undefined) {
    const data = t.int64Data;
    message(w, T.int64Data, () => data.forEach((v) => w.int64(v)));
  }
  optString(w, T.name, t.name);
  if (t.rawData !== undefined) w.tag(T.rawData, WireType.LengthDelimited).bytes(t.rawData);
  if (t.doubleData !== undefined) {
    const data = t.doubleData;
    message(w, T.doubleData, () => data.forEach((v) => w.double(v)));
  }
  optString(w, T.docString, t.docString);
  if (t.dataLocation !== undefined) w.tag(T.dataLocation, WireType.Varint).int32(t.dataLocation);
}

function writeValueInfo(w: BinaryWriter, v: OnnxValueInfo): void {
  optString(w, V.name, v.name);
  if (v.type !== undefined) message(w, V.type, () => writeType(w, v.type as OnnxType));
  optString(w, V.docString, v.docString);
}

function writeType(w: BinaryWriter, t: OnnxType): void {
  const tensorType = t.tensorType;
  if (tensorType !== undefined) {
    message(w, TypeProtoField.tensorType, () => {
      if (tensorType.elemType !== undefined)
        w.tag(TypeProtoTensorField.elemType, WireType.Varint).int32(tensorType.elemType);
      const shape = tensorType.shape;
      if (shape !== undefined) {
        message(w, TypeProtoTensorField.shape, () => {
          for (const dim of shape.dim) {
            message(w, TensorShapeProtoField.dim, () => {
              optInt64(w, D.dimValue, dim.dimValue);
              optString(w, D.dimParam, dim.dimParam);
              optString(w, D.denotation, dim.denotation);
            });
          }
        });
      }
    });
  }
  optString(w, TypeProtoField.denotation, t.denotation);
}

function message(w: BinaryWriter, field: number, body: () => void): void {
  w.tag(field, WireType.LengthDelimited).fork();
  body();
  w.join();
}

function optString(w: BinaryWriter, field: number, value: string | undefined): void {
  if (value !== undefined) w.tag(field, WireType.LengthDelimited).string(value);
}

function optInt64(w: BinaryWriter, field: number, value: number | undefined): void {
  if (value !== undefined) {
    if (!Number.isSafeInteger(value)) throw new RangeError(`field ${field}: ${value} is not a safe integer`);
    w.tag(field, WireType.Varint).int64(value);
  }
}
