import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { buildModel, OnnxGraphBuilder } from '../graph-builder';
import { readOnnxWeights } from '../read-weights';
import {
  AttributeProto_AttributeType,
  decodeModel,
  encodeModel,
  OnnxDecodeError,
  TensorProto,
  TensorProto_DataType,
  type ModelProto,
} from './codec';

function sampleModel(): ModelProto {
  const g = new OnnxGraphBuilder('sample');
  const x = g.addInput('x', TensorProto_DataType.FLOAT, ['batch', 3]);
  const w = g.addInitializer('fc.weight', { shape: [2, 3], data: Float32Array.of(1, 2, 3, -1, 0.5, 0.25) });
  const b = g.addInitializer('fc.bias', { shape: [2], data: Float32Array.of(0.5, -0.5) });
  g.op('Gemm', [x, w, b], { transB: { int: 1 }, alpha: { float: 1 } }, { outputs: ['y'] });
  g.addOutput('y', TensorProto_DataType.FLOAT, ['batch', 2]);
  return buildModel(g.build(), {
    irVersion: 8,
    opsetVersion: 17,
    producerName: 'test',
    metadata: { note: 'héllo ✓' },
  });
}

/** A model whose only content is `tensor` as the graph's one initializer. */
function modelWithInitializer(tensor: TensorProto): ModelProto {
  return { irVersion: 8, graph: { name: 'g', initializer: [tensor] } };
}

describe('ONNX protobuf encode/decode (generated from onnx.proto)', () => {
  it('round-trips a model', () => {
    const model = sampleModel();
    const decoded = decodeModel(encodeModel(model));
    expect(decoded.irVersion).toBe(8);
    expect(decoded.opsetImport).toEqual([{ domain: '', version: 17 }]);
    expect(decoded.producerName).toBe('test');
    expect(decoded.metadataProps).toEqual([{ key: 'note', value: 'héllo ✓' }]);
    const g = decoded.graph;
    expect(g?.name).toBe('sample');
    expect(g?.input?.[0]).toEqual({
      name: 'x',
      type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 3 }] } } },
    });
    expect(g?.node?.[0]).toMatchObject({
      opType: 'Gemm',
      input: ['x', 'fc.weight', 'fc.bias'],
      output: ['y'],
      name: 'Gemm',
    });
    expect(g?.node?.[0]?.attribute?.map((a) => [a.name, a.type, a.i ?? a.f])).toEqual([
      ['transB', AttributeProto_AttributeType.INT, 1],
      ['alpha', AttributeProto_AttributeType.FLOAT, 1],
    ]);
    expect(g?.initializer?.map((t) => [t.name, t.dims, t.dataType])).toEqual([
      ['fc.weight', [2, 3], 1],
      ['fc.bias', [2], 1],
    ]);
    // Encoding the decoded model again gives the same bytes.
    expect(Buffer.from(encodeModel(decoded)).equals(Buffer.from(encodeModel(model)))).toBe(true);
  });

  it('produces a model onnxruntime runs', async () => {
    const session = await InferenceSession.create(encodeModel(sampleModel()));
    try {
      const out = await session.run({ x: new Tensor('float32', Float32Array.of(1, 1, 1, 2, 0, -2), [2, 3]) });
      expect(Array.from(out.y.data as Float32Array)).toEqual([6.5, -0.75, -3.5, -3]);
    } finally {
      await session.release();
    }
  });

  it('round-trips typed tensor fields, including negative int64 and packed floats', () => {
    const tensor: TensorProto = {
      name: 't',
      dims: [3],
      dataType: TensorProto_DataType.INT64,
      int64Data: [-1, 0, 2 ** 40],
      floatData: [1.5, -2],
      doubleData: [0.1],
      int32Data: [-7, 9],
    };
    const back = decodeModel(encodeModel(modelWithInitializer(tensor))).graph?.initializer?.[0];
    expect(back).toMatchObject(tensor);
  });

  it('keeps proto2 presence: a field set to its default is written and read back, an unset one stays unset', () => {
    const g = new OnnxGraphBuilder('g');
    const x = g.addInput('x', TensorProto_DataType.FLOAT, [2, 3]);
    g.op('Softmax', [x], { axis: { int: 0 } }, { outputs: ['y'] });
    g.addOutput('y', TensorProto_DataType.FLOAT, [2, 3]);
    const bytes = encodeModel(buildModel(g.build(), { irVersion: 8, opsetVersion: 17 }));
    const [axis] = decodeModel(bytes).graph?.node?.[0]?.attribute ?? [];
    expect(axis).toMatchObject({ name: 'axis', type: AttributeProto_AttributeType.INT, i: 0 });
    expect(axis?.f).toBeUndefined();
    expect(decodeModel(bytes).producerName).toBeUndefined();
    expect(decodeModel(encodeModel({ modelVersion: 0 })).modelVersion).toBe(0);
  });

  it('accepts unpacked encodings of packed fields and packed encodings of unpacked ones', () => {
    // A TensorProto as another writer may lay it out (field numbers from onnx.proto): packed dims
    // (1), data_type (2), float_data (4) one value at a time, and an unknown field.
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).fork().int64(2).int64(1).join();
    w.tag(2, WireType.Varint).int32(TensorProto_DataType.FLOAT);
    w.tag(4, WireType.Bit32).float(3);
    w.tag(4, WireType.Bit32).float(4);
    w.tag(99, WireType.LengthDelimited).string('unknown field is skipped');
    expect(TensorProto.decode(w.finish())).toMatchObject({ dims: [2, 1], dataType: 1, floatData: [3, 4] });
  });

  it('reports truncation, unsafe int64 values and bytes left after the message as OnnxDecodeError', () => {
    const bytes = encodeModel(sampleModel());
    expect(() => decodeModel(bytes.subarray(0, bytes.length - 5))).toThrow(OnnxDecodeError);
    expect(() => decodeModel(bytes.subarray(0, bytes.length - 5))).toThrow(/invalid ONNX protobuf/);

    const big = new BinaryWriter()
      .tag(1, WireType.Varint)
      .int64(2n ** 60n)
      .finish(); // ir_version
    expect(() => decodeModel(big)).toThrow(OnnxDecodeError);
    expect(() => decodeModel(big)).toThrow(/MAX_SAFE_INTEGER/);

    const trailing = Uint8Array.of(...bytes, 0, 1, 2);
    expect(() => decodeModel(trailing)).toThrow(/parsing stopped at byte \d+ of \d+/);
  });

  it('skips a known field sent with another wire type, as protobuf parsers and onnxruntime do', () => {
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).string('8'); // ir_version is a varint
    w.tag(2, WireType.LengthDelimited).string('producer');
    expect(decodeModel(w.finish())).toMatchObject({ irVersion: undefined, producerName: 'producer' });
  });
});

describe('OnnxGraphBuilder', () => {
  it('gives unique node and value names and shares identical constants', () => {
    const g = new OnnxGraphBuilder('g');
    const x = g.addInput('x', TensorProto_DataType.FLOAT, [2]);
    const a = g.op('Relu', [x]);
    const b = g.op('Relu', [a]);
    expect(a).not.toBe(b);
    expect(g.constInt64([1, 2])).toBe(g.constInt64([1, 2]));
    expect(g.constFloat([0.5])).not.toBe(g.constFloat([0.25]));
    const names = g.build().node?.map((n) => n.name) ?? [];
    expect(new Set(names).size).toBe(names.length);
  });

  it('refuses duplicate names, undefined inputs, undeclared outputs and non-integer int64 constants', () => {
    const g = new OnnxGraphBuilder('g');
    g.addInput('x', TensorProto_DataType.FLOAT, [1]);
    g.addInitializer('w', { shape: [1], data: Float32Array.of(1) });
    expect(() => g.addInitializer('w', { shape: [1], data: Float32Array.of(2) })).toThrow(
      /"w" is already used/,
    );
    expect(() => g.op('Add', ['x', 'nope'])).toThrow(/input "nope" is not defined/);
    expect(() => g.op('Add', ['x', 'w'], {}, { outputs: ['x'] })).toThrow(/"x" is already used/);
    expect(() => g.addOutput('y', TensorProto_DataType.FLOAT, [1])).toThrow(/not produced/);
    expect(() => g.constInt64([1.5])).toThrow(/int64 constant \[1\.5\]: not all integers/);
  });
});

describe('readOnnxWeights', () => {
  it('reads float_data, float16 and double initializers and ignores integer and helper ones', () => {
    const g = new OnnxGraphBuilder('g');
    g.addInput('x', TensorProto_DataType.FLOAT, [1]);
    g.addInitializerTensor({ name: 'a', dims: [2], dataType: TensorProto_DataType.FLOAT, floatData: [1, 2] });
    g.addInitializerTensor({
      name: 'h',
      dims: [2],
      dataType: TensorProto_DataType.FLOAT16,
      int32Data: [0x3c00, 0xc000],
    });
    g.addInitializerTensor({
      name: 'hr',
      dims: [1],
      dataType: TensorProto_DataType.FLOAT16,
      rawData: Uint8Array.of(0x00, 0x3c),
    });
    g.addInitializerTensor({
      name: 'bf',
      dims: [1],
      dataType: TensorProto_DataType.BFLOAT16,
      rawData: Uint8Array.of(0x40, 0xc0),
    });
    g.addInitializerTensor({
      name: 'd',
      dims: [],
      dataType: TensorProto_DataType.DOUBLE,
      doubleData: [0.25],
    });
    g.addInitializerTensor({
      name: 'shape',
      dims: [1],
      dataType: TensorProto_DataType.INT64,
      int64Data: [4],
    });
    g.addInitializerTensor({
      name: 'onnx::MatMul_7',
      dims: [1],
      dataType: TensorProto_DataType.FLOAT,
      floatData: [3],
    });
    const read = readOnnxWeights(encodeModel(buildModel(g.build(), { irVersion: 8, opsetVersion: 17 })));
    expect([...read.weights].map(([k, t]) => [k, t.shape, Array.from(t.data)])).toEqual([
      ['a', [2], [1, 2]],
      ['h', [2], [1, -2]],
      ['hr', [1], [1]],
      ['bf', [1], [-3]],
      ['d', [], [0.25]],
    ]);
    expect(read.ignored).toEqual([
      { name: 'shape', reason: 'non-float data type 7' },
      { name: 'onnx::MatMul_7', reason: 'helper constant' },
    ]);
    expect(read.inputs).toEqual([{ name: 'x', elemType: 1, shape: [1] }]);
    expect(read.opsetVersion).toBe(17);
  });

  it('rejects external data and size mismatches, naming the initializer', () => {
    const ext = new OnnxGraphBuilder('g');
    ext.addInitializerTensor({
      name: 'big',
      dims: [4],
      dataType: TensorProto_DataType.FLOAT,
      dataLocation: 1,
    });
    expect(() =>
      readOnnxWeights(encodeModel(buildModel(ext.build(), { irVersion: 8, opsetVersion: 17 }))),
    ).toThrow(/"big" uses external data/);
    const bad = new OnnxGraphBuilder('g');
    bad.addInitializerTensor({
      name: 'short',
      dims: [4],
      dataType: TensorProto_DataType.FLOAT,
      rawData: new Uint8Array(8),
    });
    expect(() =>
      readOnnxWeights(encodeModel(buildModel(bad.build(), { irVersion: 8, opsetVersion: 17 }))),
    ).toThrow(/"short": raw_data has 8 bytes, dims \[4\] need 16/);
  });
});
