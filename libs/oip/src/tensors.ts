import { InvalidArgumentError } from '@deit-serve/core';

/** The two Open Inference Protocol datatypes the models take and give. */
export type Datatype = 'FP32' | 'BYTES';

/** Bytes of one FP32 element. */
export const FP32_BYTES = 4;

/** Float32 values as little-endian bytes, one copy (the protocol's raw tensor layout). */
export function fp32Raw(parts: readonly ArrayLike<number>[]): Uint8Array {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = new Float32Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return littleEndian(out);
}

/**
 * BYTES elements in the protocol's raw layout: each element a 4-byte little-endian length, then
 * its bytes.
 */
export function bytesRaw(elements: readonly Uint8Array[]): Uint8Array {
  const out = Buffer.alloc(elements.reduce((n, e) => n + 4 + e.length, 0));
  let at = 0;
  for (const element of elements) {
    out.writeUInt32LE(element.length, at);
    out.set(element, at + 4);
    at += 4 + element.length;
  }
  return out;
}

/** The elements of a raw BYTES tensor; `what` names it in the error for a malformed one. */
export function parseBytesRaw(raw: Uint8Array, what: string): Uint8Array[] {
  const view = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const elements: Uint8Array[] = [];
  for (let at = 0; at < view.length;) {
    if (at + 4 > view.length) {
      throw new InvalidArgumentError(`${what}: incomplete string length indicator at byte ${at}`);
    }
    const length = view.readUInt32LE(at);
    if (at + 4 + length > view.length) {
      throw new InvalidArgumentError(
        `${what}: element byte size indicator ${length} at byte ${at} exceeds the end of the buffer (${view.length} bytes)`,
      );
    }
    elements.push(view.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return elements;
}

/** Typed `fp32_contents` as raw little-endian bytes. */
export function fp32FromContents(values: readonly number[]): Uint8Array {
  return littleEndian(Float32Array.from(values));
}

function littleEndian(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const view = new DataView(new ArrayBuffer(values.byteLength));
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return new Uint8Array(view.buffer);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Triton's spelling of a shape: `[-1,3,224,224]`. */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
