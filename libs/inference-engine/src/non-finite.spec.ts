import { describe, expect, it } from 'vitest';
import { nonFiniteIndex } from './classification.service';

/** `values` as little-endian float32 bytes starting `offset` bytes into a larger buffer. */
function wireBytes(values: number[], offset: number): Uint8Array {
  const out = new Uint8Array(offset + values.length * 4);
  new DataView(out.buffer).setUint32(0, 0); // untouched prefix
  values.forEach((v, i) => new DataView(out.buffer).setFloat32(offset + i * 4, v, true));
  return out.subarray(offset);
}

describe('nonFiniteIndex', () => {
  const finite = [0, -0, 1, -1, 3.4028234663852886e38, -3.4028234663852886e38, 1.4e-45, -1.4e-45, 1e-38];

  it.each([0, 1, 2, 3])('passes every finite float32, at byte offset %i', (offset) => {
    expect(nonFiniteIndex(wireBytes(finite, offset))).toBe(-1);
  });

  it.each([
    [NaN, 0],
    [Infinity, 0],
    [-Infinity, 0],
    [NaN, 3],
    [Infinity, 2],
    [-Infinity, 1],
  ])('finds %d at byte offset %i, wherever it sits', (bad, offset) => {
    for (const at of [0, 4, finite.length]) {
      const values = [...finite];
      values.splice(at, 0, bad);
      expect(nonFiniteIndex(wireBytes(values, offset))).toBe(at);
    }
  });

  it('reports the first of several', () => {
    expect(nonFiniteIndex(wireBytes([1, 2, NaN, Infinity], 1))).toBe(2);
  });
});
