import { deflateSync } from 'node:zlib';

/**
 * A minimal PNG writer for tests: crafted headers (decompression bombs, zero sizes, 16-bit and
 * grey+alpha layouts) that no encoder would produce on request.
 */

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** PNG colour types: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA. */
export type PngColorType = 0 | 2 | 4 | 6;

export function pngHeader(width: number, height: number, bitDepth: 8 | 16, colorType: PngColorType): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  // compression 0, filter 0, interlace 0
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr)]);
}

/** A PNG whose header declares width×height but which carries only one row of data. */
export function bombPng(width: number, height: number): Buffer {
  const row = Buffer.alloc(1 + Math.min(width, 1024) * 3);
  return Buffer.concat([
    pngHeader(width, height, 8, 2),
    pngChunk('IDAT', deflateSync(row)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

/** Encodes row-major interleaved samples (0..255 or 0..65535), filter type 0 on every row. */
export function encodePng(
  width: number,
  height: number,
  bitDepth: 8 | 16,
  colorType: PngColorType,
  samples: ArrayLike<number>,
): Buffer {
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
  const bytesPerSample = bitDepth / 8;
  const stride = width * channels * bytesPerSample;
  const raw = Buffer.alloc(height * (1 + stride));
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < width * channels; i++) {
      const v = samples[y * width * channels + i];
      const at = y * (1 + stride) + 1 + i * bytesPerSample;
      if (bitDepth === 16) raw.writeUInt16BE(v, at);
      else raw[at] = v;
    }
  }
  return Buffer.concat([
    pngHeader(width, height, bitDepth, colorType),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}
