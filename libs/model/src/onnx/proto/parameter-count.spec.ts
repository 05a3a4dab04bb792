import { describe, expect, it } from 'vitest';
import { encodeModel, type ModelProto, type TensorProto, TensorProto_DataType } from './codec';
import { countOnnxParameters } from './parameter-count';

describe('countOnnxParameters', () => {
  it('leaves out BatchNormalization running statistics (buffers, not parameters)', () => {
    const tensor = (name: string, dims: number[]): TensorProto => ({
      name,
      dims,
      dataType: TensorProto_DataType.FLOAT,
    });
    const model: ModelProto = {
      graph: {
        node: [
          {
            opType: 'BatchNormalization',
            input: ['x', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'],
          },
        ],
        initializer: ['bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'].map((n) => tensor(n, [8])),
      },
    };
    expect(countOnnxParameters(encodeModel(model))).toBe(16);
  });

  it('counts initializer elements of every type but int64 (shapes, indices), sparse values too', () => {
    const tensor = (name: string, dims: number[], dataType: TensorProto_DataType): TensorProto => ({
      name,
      dims,
      dataType,
    });
    const model: ModelProto = {
      graph: {
        name: 'g',
        initializer: [
          tensor('w', [4, 3], TensorProto_DataType.FLOAT),
          tensor('b', [4], TensorProto_DataType.FLOAT16),
          tensor('q', [2, 2], TensorProto_DataType.INT8),
          tensor('shape', [3], TensorProto_DataType.INT64),
        ],
        sparseInitializer: [
          {
            values: tensor('s', [5], TensorProto_DataType.FLOAT),
            indices: tensor('i', [5], TensorProto_DataType.INT64),
            dims: [10],
          },
        ],
      },
    };
    expect(countOnnxParameters(encodeModel(model))).toBe(12 + 4 + 4 + 5);
    expect(countOnnxParameters(encodeModel({}))).toBe(0);
  });
});
