import { describe, expect, it } from 'vitest';
import { bytesRaw, fp32FromContents, fp32Raw, parseBytesRaw, shapeText } from './tensors';

describe('raw tensor layouts', () => {
  it('writes FP32 as little-endian float32 and BYTES as length-prefixed elements, and reads them back', () => {
    const raw = fp32Raw([[1.5, -2], [3]]);
    expect([...new Float32Array(raw.buffer, raw.byteOffset, 3)]).toEqual([1.5, -2, 3]);
    expect(Buffer.from(fp32FromContents([1.5])).readFloatLE(0)).toBe(1.5);
    const elements = [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('xyz')];
    const bytes = bytesRaw(elements);
    expect(Buffer.from(bytes).readUInt32LE(0)).toBe(2);
    expect(parseBytesRaw(bytes, 'input').map((e) => Buffer.from(e).toString())).toEqual(['ab', '', 'xyz']);
  });

  it('refuses a BYTES buffer whose length indicator runs past its end', () => {
    const bytes = Buffer.from(bytesRaw([Buffer.from('abc')]));
    expect(() => parseBytesRaw(bytes.subarray(0, 6), "input 'image'")).toThrow(
      "input 'image': element byte size indicator 3 at byte 0 exceeds the end of the buffer (6 bytes)",
    );
    expect(() => parseBytesRaw(bytes.subarray(0, 2), 'x')).toThrow('incomplete string length indicator');
  });

  it('spells shapes as Triton does', () => {
    expect(shapeText([-1, 3, 28, 28])).toBe('[-1,3,28,28]');
  });
});
