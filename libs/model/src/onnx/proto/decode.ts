import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { decodeFloats } from '../../weights/safetensors';
import {
  AttributeProtoField as A,
  AttributeType,
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
  type OnnxDimension,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxOperatorSetId,
  type OnnxStringStringEntry,
  type OnnxTensor,
  type OnnxTensorType,
  type OnnxType,
  type OnnxValueInfo,
} from './onnx-proto';

/** A malformed ONNX file; `path` locates the message, e.g. `ModelProto.graph.node[3].attribute[0]`. */
export class OnnxDecodeError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`invalid ONNX protobuf at ${path}: ${detail}`);
    this.name = 'OnnxDecodeError';
  }
}

/** Parses a ModelProto. Unknown fields are skipped; wrong wire types and truncation are errors. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const r = new BinaryReader(bytes);
  return guarded('ModelProto', () => readModel(r, bytes.length, 'ModelProto'));
}

export function decodeTensor(bytes: Uint8Array): OnnxTensor {
  const r = new BinaryReader(bytes);
  return guarded('TensorProto', () => readTensor(r, bytes.length, 'TensorProto'));
}

type Reader = BinaryReader;
type FieldHandler = (field: number, wt: WireType) => boolean;

function readModel(r: Reader, end: number, path: string): OnnxModel {
  const m: OnnxModel = { opsetImport: [], metadataProps: [] };
  fields(r, end, path, (f, wt) => {
    switch (f) {
      case M.irVersion:
        m.irVersion = int64(r, wt, `${path}.ir_version`);
        return true;
      case M.producerName:
        m.producerName = str(r, wt, `${path}.producer_name`);
        return true;
      case M.producerVersion:
        m.producerVersion = str(r, wt, `${path}.producer_version`);
        return true;
      case M.domain:
        m.domain = str(r, wt, `${path}.domain`);
        return true;
      case M.modelVersion:
        m.modelVersion = int64(r, wt, `${path}.model_version`);
        return true;
      case M.docString:
        m.docString = str(r, wt, `${path}.doc_string`);
        return true;
      case M.graph:
        m.graph = sub(r, wt, `${path}.graph`, readGraph);
        return true;
      case M.opsetImport:
        m.opsetImport.push(sub(r, wt, `${path}.opset_import[${m.opsetImport.length}]`, readOpset));
        return true;
      case M.metadataProps:
        m.metadataProps.push(sub(r, wt, `${path}.metadata_props[${m.metadataProps.length}]`, readEntry));
        return true;
      default:
        return false;
    }
  });
  return m;
}

function readOpset(r: Reader, end: number, path: string): OnnxOperatorSetId {
  const op: OnnxOperatorSetId = { version: 0 };
  let sawVersion = false;
  fields(r, end, path, (f, wt) => {
    if (f === O.domain) op.domain = str(r, wt, `${path}.domain`);
    else if (f === O.version) {
      op.version = int64(r, wt, `${path}.version`);
      sawVersion = true;
    } else return false;
    return true;
  });
  if (!sawVersion) throw new OnnxDecodeError(path, 'version is required');
  return op;
}

function readEntry(r: Reader, end: number, path: string): OnnxStringStringEntry {
  const e: OnnxStringStringEntry = { key: '', value: '' };
  fields(r, end, path, (f, wt) => {
    if (f === S.key) e.key = str(r, wt, `${path}.key`);
    else if (f === S.value) e.value = str(r, wt, `${path}.value`);
    else return false;
    return true;
  });
  return e;
}

function readGraph(r: Reader, end: number, path: string): OnnxGraph {
  const g: OnnxGraph = { node: [], initializer: [], input: [], output: [], valueInfo: [] };
  fields(r, end, path, (f, wt) => {
    switch (f) {
      case G.node:
        g.node.push(sub(r, wt, `${path}.node[${g.node.length}]`, readNode));
        return true;
      case G.name:
        g.name = str(r, wt, `${path}.name`);
        return true;
      case G.initializer:
        g.initializer.push(sub(r, wt, `${path}.initializer[${g.initializer.length}]`, readTensor));
        return true;
      case G.docString:
        g.docString = str(r, wt, `${path}.doc_string`);
        return true;
      case G.input:
        g.input.push(sub(r, wt, `${path}.input[${g.input.length}]`, readValueInfo));
        return true;
      case G.output:
        g.output.push(sub(r, wt, `${path}.output[${g.output.length}]`, readValueInfo));
        return true;
      case G.valueInfo:
        g.valueInfo.push(sub(r, wt, `${path}.value_info[${g.valueInfo.length}]`, readValueInfo));
        return true;
      default:
        return false;
    }
  });
  return g;
}

function readNode(r: Reader, end: number, path: string): OnnxNode {
  const n: OnnxNode = { input: [], output: [], opType: '', attribute: [] };
  fields(r, end, path, (f, wt) => {
    switch (f) {
      case N.input:
        n.input.push(str(r, wt, `${path}.input`));
        return true;
      case N.output:
        n.output.push(str(r, wt, `${path}.output`));
        return true;
      case N.name:
        n.name = str(r, wt, `${path}.name`);
        return true;
      case N.opType:
        n.opType = str(r, wt, `${path}.op_type`);
        return true;
      case N.attribute:
        n.attribute.push(sub(r, wt, `${path}.attribute[${n.attribute.length}]`, readAttribute));
        return true;
      case N.docString:
        n.docString = str(r, wt, `${path}.doc_string`);
        return true;
      case N.domain:
        n.domain = str(r, wt, `${path}.domain`);
        return true;
      default:
        return false;
    }
  });
  return n;
}

function readAttribute(r: Reader, end: number, path: string): OnnxAttribute {
  const a: OnnxAttribute = {
    name: '',
    type: AttributeType.UNDEFINED,
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
  };
  fields(r, end, path, (f, wt) => {
    switch (f) {
      case A.name:
        a.name = str(r, wt, `${path}.name`);
        return true;
      case A.f:
        expectWire(wt, WireType.Bit32, `${path}.f`);
        a.f = r.float();
        return true;
      case A.i:
        a.i = int64(r, wt, `${path}.i`);
        return true;
      case A.s:
        a.s = bytesField(r, wt, `${path}.s`);
        return true;
      case A.t:
        a.t = sub(r, wt, `${path}.t`, readTensor);
        return true;
      case A.g:
        a.g = sub(r, wt, `${path}.g`, readGraph);
        return true;
      case A.floats:
        repeated(r, wt, WireType.Bit32, `${path}.floats`, () => a.floats.push(r.float()));
        return true;
      case A.ints:
        repeated(r, wt, WireType.Varint, `${path}.ints`, () =>
          a.ints.push(toSafeNumber(r.int64(), `${path}.ints`)),
        );
        return true;
      case A.strings:
        a.strings.push(bytesField(r, wt, `${path}.strings`));
        return true;
      case A.tensors:
        a.tensors.push(sub(r, wt, `${path}.tensors[${a.tensors.length}]`, readTensor));
        return true;
      case A.graphs:
        a.graphs.push(sub(r, wt, `${path}.graphs[${a.graphs.length}]`, readGraph));
        return true;
      case A.docString:
        a.docString = str(r, wt, `${path}.doc_string`);
        return true;
      case A.type:
        expectWire(wt, WireType.Varint, `${path}.type`);
        a.type = r.int32() as AttributeType;
        return true;
      default:
        return false;
    }
  });
  return a;
}

function readTensor(r: Reader, end: number, path: string): OnnxTensor {
  const t: OnnxTensor = { dims: [], dataType: 0 };
  const floatChunks: Float32Array[] = [];
  const doubleValues: number[] = [];
  fields(r, end, path, (f, wt) => {
    switch (f) {
      case T.dims:
        repeated(r, wt, WireType.Varint, `${path}.dims`, () =>
          t.dims.push(toSafeNumber(r.int64(), `${path}.dims`)),
        );
        return true;
      case T.dataType:
        expectWire(wt, WireType.Varint, `${path}.data_type`);
        t.dataType = r.int32();
        return true;
      case T.floatData:
        if (wt === WireType.LengthDelimited)
          floatChunks.push(decodeFloats(bytesField(r, wt, `${path}.float_data`), 'F32'));
        else {
          expectWire(wt, WireType.Bit32, `${path}.float_data`);
          floatChunks.push(Float32Array.of(r.float()));
        }
        return true;
      case T.int32Data: {
        const values = (t.int32Data ??= []);
        repeated(r, wt, WireType.Varint, `${path}.int32_data`, () => values.push(r.int32()));
        return true;
      }
      case T.stringData:
        (t.stringData ??= []).push(bytesField(r, wt, `${path}.string_data`));
        return true;
      case T.int64Data: {
        const values = (t.int64Data ??= []);
        repeated(r, wt, WireType.Varint, `${path}.int64_data`, () => values.push(BigInt(r.int64())));
        return true;
      }
      case T.name:
        t.name = str(r, wt, `${path}.name`);
        return true;
      case T.rawData:
        t.rawData = bytesField(r, wt, `${path}.raw_data`);
        return true;
      case T.doubleData:
        repeated(r, wt, WireType.Bit64, `${path}.double_data`, () => doubleValues.push(r.double()));
        return true;
      case T.docString:
        t.docString = str(r, wt, `${path}.doc_string`);
        return true;
      case T.dataLocation:
        expectWire(wt, WireType.Varint, `${path}.data_location`);
        t.dataLocation = r.int32();
        return true;
      default:
        return false;
    }
  });
  if (floatChunks.length === 1) t.floatData = floatChunks[0];
  else if (floatChunks.length > 1) {
    const total = floatChunks.reduce((n, c) => n + c.length, 0);
    const all = new Float32Array(total);
    let offset = 0;
    for (const c of floatChunks) {
      all.set(c, offset);
      offset += c.length;
    }
    t.floatData = all;
  }
  if (doubleValues.length > 0) t.doubleData = Float64Array.from(doubleValues);
  return t;
}

function readValueInfo(r: Reader, end: number, path: string): OnnxValueInfo {
  const v: OnnxValueInfo = { name: '' };
  fields(r, end, path, (f, wt) => {
    if (f === V.name) v.name = str(r, wt, `${path}.name`);
    else if (f === V.type) v.type = sub(r, wt, `${path}.type`, readType);
    else if (f === V.docString) v.docString = str(r, wt, `${path}.doc_string`);
    else return false;
    return true;
  });
  return v;
}

function readType(r: Reader, end: number, path: string): OnnxType {
  const t: OnnxType = {};
  fields(r, end, path, (f, wt) => {
    if (f === TypeProtoField.tensorType) t.tensorType = sub(r, wt, `${path}.tensor_type`, readTensorType);
    else if (f === TypeProtoField.denotation) t.denotation = str(r, wt, `${path}.denotation`);
    else return false;
    return true;
  });
  return t;
}

function readTensorType(r: Reader, end: number, path: string): OnnxTensorType {
  const t: OnnxTensorType = {};
  fields(r, end, path, (f, wt) => {
    if (f === TypeProtoTensorField.elemType) {
      expectWire(wt, WireType.Varint, `${path}.elem_type`);
      t.elemType = r.int32();
    } else if (f === TypeProtoTensorField.shape) {
      t.shape = sub(r, wt, `${path}.shape`, readShape);
    } else return false;
    return true;
  });
  return t;
}

function readShape(r: Reader, end: number, path: string): { dim: OnnxDimension[] } {
  const dim: OnnxDimension[] = [];
  fields(r, end, path, (f, wt) => {
    if (f !== TensorShapeProtoField.dim) return false;
    dim.push(sub(r, wt, `${path}.dim[${dim.length}]`, readDimension));
    return true;
  });
  return { dim };
}

function readDimension(r: Reader, end: number, path: string): OnnxDimension {
  const d: OnnxDimension = {};
  fields(r, end, path, (f, wt) => {
    // dim_value and dim_param form a oneof: the last one seen wins.
    if (f === D.dimValue) {
      d.dimValue = int64(r, wt, `${path}.dim_value`);
      delete d.dimParam;
    } else if (f === D.dimParam) {
      d.dimParam = str(r, wt, `${path}.dim_param`);
      delete d.dimValue;
    } else if (f === D.denotation) d.denotation = str(r, wt, `${path}.denotation`);
    else return false;
    return true;
  });
  return d;
}

// ---------------------------------------------------------------------------------------------------
// Wire helpers

function fields(r: Reader, end: number, path: string, onField: FieldHandler): void {
  while (r.pos < end) {
    const [field, wt] = r.tag();
    if (!onField(field, wt)) r.skip(wt, field);
  }
  if (r.pos !== end) throw new OnnxDecodeError(path, `fields run ${r.pos - end} bytes past the message end`);
}

function sub<T>(r: Reader, wt: WireType, path: string, read: (r: Reader, end: number, path: string) => T): T {
  expectWire(wt, WireType.LengthDelimited, path);
  const len = r.uint32();
  const end = r.pos + len;
  if (end > r.len)
    throw new OnnxDecodeError(path, `message of ${len} bytes runs past the end of the data (truncated?)`);
  return guarded(path, () => read(r, end, path));
}

function guarded<T>(path: string, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof OnnxDecodeError) throw e;
    throw new OnnxDecodeError(path, e instanceof Error ? e.message : String(e));
  }
}

function repeated(r: Reader, wt: WireType, scalarWt: WireType, path: string, readOne: () => void): void {
  if (wt === WireType.LengthDelimited) {
    const len = r.uint32();
    const end = r.pos + len;
    if (end > r.len)
      throw new OnnxDecodeError(path, `packed field of ${len} bytes runs past the end of the data`);
    while (r.pos < end) readOne();
    if (r.pos !== end) throw new OnnxDecodeError(path, 'packed values overrun their length');
  } else {
    expectWire(wt, scalarWt, path);
    readOne();
  }
}

function expectWire(actual: WireType, expected: WireType, path: string): void {
  if (actual !== expected) {
    throw new OnnxDecodeError(path, `wire type ${WireType[actual]} where ${WireType[expected]} was expected`);
  }
}

function str(r: Reader, wt: WireType, path: string): string {
  expectWire(wt, WireType.LengthDelimited, path);
  return r.string();
}

function bytesField(r: Reader, wt: WireType, path: string): Uint8Array {
  expectWire(wt, WireType.LengthDelimited, path);
  return r.bytes();
}

function int64(r: Reader, wt: WireType, path: string): number {
  expectWire(wt, WireType.Varint, path);
  return toSafeNumber(r.int64(), path);
}

function toSafeNumber(v: bigint | string, path: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n))
    throw new OnnxDecodeError(path, `int64 ${String(v)} is beyond the safe integer range`);
  return n;
}
