import { describe, expect, it } from 'vitest';
import type { NamedWeights } from './named-weights';
import { readSafetensors, SafetensorsError, writeSafetensors } from './safetensors';

/** Builds a safetensors file by hand so the reader is tested against the format, not our writer. */
function rawFile(header: Record<string, unknown>, data: Uint8Array, headerText?: string): Uint8Array {
  const json = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function u16le(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint16(i * 2, v, true));
  return out;
}

function errorOf(f: () => unknown): SafetensorsError {
  try {
    f();
  } catch (e) {
    if (e instanceof SafetensorsError) return e;
    throw e;
  }
  throw new Error('expected a SafetensorsError');
}

const sample = (): NamedWeights =>
  new Map([
    ['cls_token', { shape: [1, 1, 3], data: Float32Array.of(0.1, -2, 3e-8) }],
    ['head.bias', { shape: [2], data: Float32Array.of(Number.NaN, -0) }],
    ['scalar', { shape: [], data: Float32Array.of(7) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
  ]);

describe('safetensors', () => {
  it('write → read gives identical names, shapes, bytes and metadata', () => {
    const weights = sample();
    const bytes = writeSafetensors(weights, { metadata: { format: 'pt', preset: 'deit_tiny' } });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const read = readSafetensors(bytes);
    expect(read.metadata).toEqual({ format: 'pt', preset: 'deit_tiny' });
    expect([...read.weights.keys()]).toEqual([...weights.keys()]);
    for (const [name, t] of weights) {
      const back = read.weights.get(name);
      expect(back?.shape, name).toEqual(t.shape);
      expect(
        Buffer.from(back?.data.buffer ?? new ArrayBuffer(0)).equals(Buffer.from(t.data.buffer)),
        name,
      ).toBe(true);
      expect(read.dtypes.get(name)).toBe('F32');
    }
    expect(read.skipped).toEqual([]);
    expect(read.nestedModelPrefix).toBe(false);
  });

  it("strips the DeiT authors' `model.` nesting and skips the rest of the checkpoint", () => {
    const data = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
    const file = rawFile(
      {
        'model.cls_token': { dtype: 'F32', shape: [1, 1, 2], data_offsets: [0, 8] },
        'model_ema.cls_token': { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      },
      data,
    );
    const read = readSafetensors(file);
    expect(read.nestedModelPrefix).toBe(true);
    expect([...read.weights.keys()]).toEqual(['cls_token']);
    expect(Array.from(read.weights.get('cls_token')?.data ?? [])).toEqual([1, 2]);
    expect(read.skipped.map((s) => s.name)).toEqual(['model_ema.cls_token']);
    expect(readSafetensors(file, { modelPrefix: 'none' }).weights.has('model.cls_token')).toBe(true);
    expect(() => readSafetensors(writeSafetensors(sample()), { modelPrefix: 'strip' })).toThrow(
      /no tensor name starts with "model."/,
    );
  });

  it('converts F16, BF16 and F64 to float32 exactly and skips integer tensors with a note', () => {
    // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), +inf, -0.
    const f16 = u16le([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000]);
    // BF16: 1, -3, 1.5·2^-126 region (0x00c0), NaN.
    const bf16 = u16le([0x3f80, 0xc040, 0x00c0, 0x7fc0]);
    const f64 = new Uint8Array(Float64Array.of(0.5, -1e-3).buffer);
    const i64 = new Uint8Array(BigInt64Array.of(12n).buffer);
    const data = new Uint8Array([...f16, ...bf16, ...f64, ...i64]);
    const file = rawFile(
      {
        __metadata__: { format: 'pt' },
        half: { dtype: 'F16', shape: [6], data_offsets: [0, 12] },
        brain: { dtype: 'BF16', shape: [2, 2], data_offsets: [12, 20] },
        double: { dtype: 'F64', shape: [2], data_offsets: [20, 36] },
        'stem.bn.num_batches_tracked': { dtype: 'I64', shape: [], data_offsets: [36, 44] },
      },
      data,
    );
    const read = readSafetensors(file);
    expect(Array.from(read.weights.get('half')?.data ?? [])).toEqual([1, -2, 65504, 2 ** -24, Infinity, -0]);
    const brain = Array.from(read.weights.get('brain')?.data ?? []);
    expect(brain.slice(0, 3)).toEqual([1, -3, 1.5 * 2 ** -126]);
    expect(Number.isNaN(brain[3])).toBe(true);
    expect(read.weights.get('brain')?.shape).toEqual([2, 2]);
    expect(Array.from(read.weights.get('double')?.data ?? [])).toEqual([0.5, Math.fround(-1e-3)]);
    expect(read.dtypes.get('half')).toBe('F16');
    expect(read.weights.has('stem.bn.num_batches_tracked')).toBe(false);
    expect(read.skipped).toEqual([
      {
        name: 'stem.bn.num_batches_tracked',
        dtype: 'I64',
        shape: [],
        reason: 'integer/bool tensor (I64) carries no weights',
      },
    ]);
  });

  it('reads tensors at unaligned offsets', () => {
    const data = new Uint8Array(3 + 8);
    new DataView(data.buffer).setFloat32(3, 1.25, true);
    new DataView(data.buffer).setFloat32(7, -4, true);
    const read = readSafetensors(
      rawFile(
        {
          pad: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
          w: { dtype: 'F32', shape: [2], data_offsets: [3, 11] },
        },
        data,
      ),
    );
    expect(Array.from(read.weights.get('w')?.data ?? [])).toEqual([1.25, -4]);
  });

  describe('bad files', () => {
    const data = new Uint8Array(16);

    it('too short for the length field', () => {
      expect(errorOf(() => readSafetensors(new Uint8Array(5))).message).toMatch(/5 bytes, too short/);
    });

    it('header length beyond the file (truncated)', () => {
      const file = writeSafetensors(sample());
      expect(errorOf(() => readSafetensors(file.subarray(0, 20))).message).toMatch(
        /^the header length field exceeds the 12 bytes after it/,
      );
    });

    it('bad JSON', () => {
      expect(errorOf(() => readSafetensors(rawFile({}, data, '{"a": '))).message).toMatch(
        /header is not valid JSON/,
      );
      expect(errorOf(() => readSafetensors(rawFile({}, data, '[1]'))).message).toMatch(/must be an object/);
    });

    it('offsets out of range, naming the key', () => {
      const e = errorOf(() =>
        readSafetensors(rawFile({ 'blocks.0.x': { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, data)),
      );
      expect(e.key).toBe('blocks.0.x');
      expect(e.message).toMatch(
        /tensor "blocks\.0\.x": "data_offsets" \[0, 32\] out of range: the byte buffer has 16 bytes/,
      );
    });

    it('truncated data section', () => {
      const file = writeSafetensors(sample());
      expect(errorOf(() => readSafetensors(file.subarray(0, file.length - 4))).message).toMatch(
        /out of range/,
      );
    });

    it('overlapping tensors, naming both', () => {
      const e = errorOf(() =>
        readSafetensors(
          rawFile(
            {
              a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
              b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
            },
            data,
          ),
        ),
      );
      expect(e.message).toMatch(/tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/);
    });

    it('offsets that disagree with dtype × shape, unknown dtypes, bad fields', () => {
      expect(
        errorOf(() =>
          readSafetensors(rawFile({ a: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } }, data)),
        ).message,
      ).toMatch(/tensor "a": "data_offsets" span 8 bytes but F16 \[3\] needs 6/);
      expect(
        errorOf(() =>
          readSafetensors(rawFile({ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, data)),
        ).message,
      ).toMatch(/tensor "a": unsupported dtype "F8_E4M3"/);
      expect(
        errorOf(() =>
          readSafetensors(rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, data)),
        ).message,
      ).toMatch(/tensor "a": "shape" must be an array of non-negative integers/);
      expect(
        errorOf(() => readSafetensors(rawFile({ a: { dtype: 'F32', shape: [1] } }, data))).message,
      ).toMatch(/tensor "a": "data_offsets" must be \[begin, end\]/);
      expect(errorOf(() => readSafetensors(rawFile({ __metadata__: { n: 1 } }, data))).key).toBe(
        '__metadata__.n',
      );
    });
  });
});
