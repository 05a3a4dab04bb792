import { InvalidArgumentError } from '@deit-serve/core';
import {
  decodeTensor,
  encodeTensor,
  formatLabelsText,
  parseLabelsText,
  parseManifestFields,
  safeParseManifest,
} from '../src/index';
import { describe, expect, it } from 'vitest';
import { sampleFields } from './fixtures/sample';

function complete(fields: unknown): unknown {
  return {
    schema_version: 1,
    name: 'm',
    version: 1,
    created_at: '2025-01-01T00:00:00.000Z',
    files: { 'model.onnx': { sha256: 'b'.repeat(64), size: 3 } },
    ...(fields as object),
  };
}

function problemOf(mutate: (fields: Record<string, unknown>) => void): string {
  const fields = structuredClone(sampleFields()) as unknown as Record<string, unknown>;
  mutate(fields);
  try {
    parseManifestFields(fields);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return (error as Error).message;
  }
  throw new Error('expected the fields to be rejected');
}

describe('manifest schema', () => {
  it('accepts the sample and fills defaults', () => {
    const { metrics, lineage, self_check, ...minimal } = sampleFields();
    expect(metrics).toBeDefined();
    expect(lineage).toBeDefined();
    expect(self_check).toBeDefined();
    const parsed = parseManifestFields(minimal);
    expect(parsed.metrics).toBeNull();
    expect(parsed.lineage).toBeNull();
    expect(parsed.self_check).toBeNull();
    const result = safeParseManifest(complete(sampleFields()));
    expect(result.ok).toBe(true);
  });

  it('names every offending field', () => {
    const message = problemOf((f) => {
      const input = f['input'] as Record<string, unknown>;
      input['mean'] = [0.5];
      input['interpolation'] = 'lanczos';
      input['crop_pct'] = 1.5;
    });
    expect(message).toContain('input.mean: has 1 values but channels is 3');
    expect(message).toContain('input.interpolation');
    expect(message).toContain('input.crop_pct');
  });

  it('rejects unknown fields, label gaps and multi-line labels', () => {
    expect(problemOf((f) => (f['crop_pc'] = 0.9))).toContain('crop_pc');
    expect(problemOf((f) => (f['labels'] = { '0': 'a', '2': 'c' }))).toContain('1 is missing');
    expect(problemOf((f) => (f['labels'] = { '0': 'a\nb' }))).toContain('single lines');
  });

  it('checks the self-check sample against its shape and the outputs', () => {
    expect(
      problemOf((f) => {
        const check = f['self_check'] as { input: { shape: number[] } };
        check.input.shape = [1, 3, 4, 4];
      }),
    ).toContain('self_check.input.data: holds 48 bytes but shape [1, 3, 4, 4] of float32 needs 192');
    expect(
      problemOf((f) => {
        const check = f['self_check'] as { expected: Record<string, unknown> };
        check.expected['probs'] = encodeTensor([1], new Float32Array([1]));
      }),
    ).toContain('self_check.expected.probs: is not one of the outputs (logits, logits_dist)');
  });

  it('refuses manifests of an unknown schema version and ones without model.onnx', () => {
    const future = safeParseManifest({ ...(complete(sampleFields()) as object), schema_version: 2 });
    expect(future).toEqual({ ok: false, problem: 'unsupported schema_version 2 (this build reads 1)' });
    const noModel = safeParseManifest({ ...(complete(sampleFields()) as object), files: {} });
    expect(noModel.ok).toBe(false);
    expect(!noModel.ok && noModel.problem).toContain('files: must include model.onnx');
  });

  it('round-trips tensors and labels', () => {
    const data = new Float32Array([1.5, -2.25, 3e-8, 0]);
    const decoded = decodeTensor(encodeTensor([2, 2], data));
    expect(decoded.shape).toEqual([2, 2]);
    expect([...decoded.data]).toEqual([...data]);
    expect(() => encodeTensor([3], data)).toThrow(InvalidArgumentError);
    const labels = { '0': 'cat', '1': 'dog' };
    expect(formatLabelsText(labels)).toBe('cat\ndog\n');
    expect(parseLabelsText('cat\r\ndog\n')).toEqual(labels);
  });
});
