import { DomainError } from '@deit-serve/core';
import type { ForwardItem } from '@deit-serve/inference-engine';
import { type oip, oipClient } from '@deit-serve/proto';
import { describe, expect, it } from 'vitest';
import { headOf, inferOutputs, parseInfer } from './infer';
import type { Signature } from './signature';
import { bytesRaw, fp32Raw, parseBytesRaw } from './tensors';

const signature: Signature = {
  pixels: { name: 'pixel_values', datatype: 'FP32', dims: [1, 2, 2] },
  image: { name: 'image', datatype: 'BYTES', dims: [1] },
  cls: { name: 'cls_logits', datatype: 'FP32', dims: [3] },
  dist: { name: 'dist_logits', datatype: 'FP32', dims: [3] },
  probabilities: { name: 'probabilities', datatype: 'FP32', dims: [3] },
  labels: ['cat', 'dog', 'owl'],
};
const ctx = { id: 'r1', model: 'm', maxBatchSize: 4 };

function request(partial: Partial<oip.ModelInferRequest>): oip.ModelInferRequest {
  return {
    modelName: 'm',
    modelVersion: '',
    id: '',
    parameters: {},
    inputs: [],
    outputs: [],
    rawInputContents: [],
    ...partial,
  };
}

function input(
  name: string,
  datatype: string,
  shape: number[],
  fp32Contents?: number[],
): oip.ModelInferRequest_InferInputTensor {
  return {
    name,
    datatype,
    shape,
    parameters: {},
    contents: fp32Contents && oipClient.InferTensorContents.fromPartial({ fp32Contents }),
  };
}

function pixels(batch: number, values = batch * 4) {
  return request({
    inputs: [input('pixel_values', 'FP32', [batch, 1, 2, 2])],
    rawInputContents: [fp32Raw([new Float32Array(values).fill(0.5)])],
  });
}

function failure(call: () => unknown): { kind: string; message: string } {
  try {
    call();
  } catch (error) {
    if (error instanceof DomainError) return { kind: error.kind, message: error.message };
    throw error;
  }
  throw new Error('expected a failure');
}

describe('parseInfer', () => {
  it('splits a batch into one engine input per item, from raw or typed contents', () => {
    const parsed = parseInfer(pixels(2), signature, ctx);
    expect(parsed.inputs).toHaveLength(2);
    expect(parsed.inputs[1]).toEqual({ tensor: { shape: [1, 2, 2], data: expect.any(Uint8Array) } });
    expect(parsed.outputs.map((o) => o.spec.name)).toEqual(['cls_logits', 'dist_logits', 'probabilities']);
    const typed = request({
      inputs: [input('pixel_values', 'FP32', [1, 1, 2, 2], [1, 2, 3, 4])],
    });
    const [item] = parseInfer(typed, signature, ctx).inputs;
    const data = item && 'tensor' in item ? item.tensor.data : new Uint8Array();
    expect([...new Float32Array(data.slice().buffer)]).toEqual([1, 2, 3, 4]);
    const images = request({
      inputs: [input('image', 'BYTES', [2, 1])],
      rawInputContents: [bytesRaw([Buffer.from('a'), Buffer.from('b')])],
    });
    expect(parseInfer(images, signature, ctx).inputs).toHaveLength(2);
  });

  it("answers Triton's messages for wrong shapes, datatypes, byte sizes and names (INVALID_ARGUMENT)", () => {
    const id = '[request id: r1] ';
    expect(failure(() => parseInfer(pixels(1, 3), signature, ctx))).toEqual({
      kind: 'INVALID_ARGUMENT',
      message: `${id}input byte size mismatch for input 'pixel_values' for model 'm'. Expected 16, got 12`,
    });
    const shaped = request({ inputs: [input('pixel_values', 'FP32', [1, 4])] });
    expect(failure(() => parseInfer(shaped, signature, ctx)).message).toBe(
      `${id}unexpected shape for input 'pixel_values' for model 'm'. Expected [-1,1,2,2], got [1,4]`,
    );
    const typed = request({ inputs: [input('pixel_values', 'FP16', [1, 1, 2, 2])] });
    expect(failure(() => parseInfer(typed, signature, ctx)).message).toBe(
      `${id}inference input 'pixel_values' data-type is 'FP16', but model 'm' expects 'FP32'`,
    );
    expect(failure(() => parseInfer(pixels(5), signature, ctx)).message).toBe(
      `${id}inference request batch-size must be <= 4 for 'm'`,
    );
    const unknown = request({ inputs: [input('x', 'FP32', [1])] });
    expect(failure(() => parseInfer(unknown, signature, ctx)).message).toBe(
      `${id}unexpected inference input 'x' for model 'm'`,
    );
    const both = pixels(1);
    both.inputs = [input('pixel_values', 'FP32', [1, 1, 2, 2], [1, 2, 3, 4])];
    expect(failure(() => parseInfer(both, signature, ctx)).message).toBe(
      "contents field must not be specified when using raw_input_contents for 'pixel_values' for model 'm'",
    );
    const output = pixels(1);
    output.outputs = [{ name: 'nope', parameters: {} }];
    expect(failure(() => parseInfer(output, signature, ctx)).message).toBe(
      `${id}unexpected inference output 'nope' for model 'm'`,
    );
    expect(failure(() => parseInfer(request({}), signature, { ...ctx, id: '' })).message).toMatch(
      /^\[request id: <id_unknown>\] expected 1 inputs but got 0 inputs for model 'm'/,
    );
  });
});

describe('headOf', () => {
  it('reads the head parameter (average when absent) and refuses unknown values', () => {
    const head = (value?: string) =>
      headOf(request(value === undefined ? {} : { parameters: { head: { stringParam: value } } }));
    expect(head()).toBe('average');
    expect(head('cls')).toBe('cls');
    expect(head('dist')).toBe('dist');
    expect(head('avg')).toBe('average');
    expect(failure(() => head('teacher'))).toEqual({
      kind: 'INVALID_ARGUMENT',
      message: "parameter 'head' must be a string, one of 'cls', 'dist', 'avg'; got 'teacher'",
    });
  });
});

describe('inferOutputs', () => {
  const item: ForwardItem = {
    cls: Float32Array.from([2, 0, 1]),
    dist: Float32Array.from([0, 2, 1]),
    disagreement: undefined,
    timing: { queueMs: 0, preprocessMs: 0, computeMs: 0, batchSize: 1 },
  };

  it("gives both heads' logits and the chosen head's probabilities", () => {
    const parsed = parseInfer(pixels(1), signature, ctx);
    const { outputs, raw } = inferOutputs(parsed, [item], 'cls', signature);
    expect(outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['cls_logits', 'FP32', [1, 3]],
      ['dist_logits', 'FP32', [1, 3]],
      ['probabilities', 'FP32', [1, 3]],
    ]);
    const values = raw.map((r) => [...new Float32Array(r.slice().buffer)]);
    expect(values[0]).toEqual([2, 0, 1]);
    expect(values[1]).toEqual([0, 2, 1]);
    const e = [Math.exp(2), 1, Math.exp(1)];
    const sum = e[0] + e[1] + e[2];
    values[2]?.forEach((p, i) => expect(p).toBeCloseTo(e[i] / sum, 6));
  });

  it('answers a classification request with the top k as "value:index:label" strings', () => {
    const request = pixels(1);
    request.outputs = [{ name: 'dist_logits', parameters: { classification: { int64Param: 2 } } }];
    const parsed = parseInfer(request, signature, ctx);
    const { outputs, raw } = inferOutputs(parsed, [item, item], 'average', signature);
    expect(outputs[0]).toMatchObject({ name: 'dist_logits', datatype: 'BYTES', shape: [2, 2] });
    expect(parseBytesRaw(raw[0], 'out').map((s) => Buffer.from(s).toString())).toEqual([
      '2.000000:1:dog',
      '1.000000:2:owl',
      '2.000000:1:dog',
      '1.000000:2:owl',
    ]);
  });
});
