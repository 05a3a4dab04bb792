import { createHash, type Hash } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DomainError, InvalidArgumentError, ResourceExhaustedError } from '@deit-serve/core';
import type { CheckedFile } from './file-access';

/**
 * Reads one IDX file, gzip-compressed or raw, through an opened {@link CheckedFile}, a chunk at a
 * time: the header is checked as soon as it is in, the limits are applied to what the header declares
 * before the data is inflated, and inflating stops a little past the declared size. So a small gzip
 * that would inflate to gigabytes, or a file claiming more images than allowed, costs a few kilobytes.
 * Messages never quote the file's bytes (a refused file may be anything).
 */

export interface IdxReadLimits {
  /** Most entries (images, labels) the header may declare. */
  readonly maxImages?: number;
  /** Most bytes the file may hold decompressed, header included. */
  readonly maxBytes?: number;
}

export interface IdxBytes {
  /** The decompressed file: header and data. */
  readonly bytes: Uint8Array;
  /** SHA-256 of the file as stored. */
  readonly sha256: string;
}

/** Bytes past the declared data that are still counted (to say how many) before reading stops. */
export const IDX_EXCESS_COUNTED = 1 << 20;

/**
 * Stored bytes a gzip file may hold beyond its decompressed size: deflate's worst case for data that
 * does not compress is a few bytes per 16 KiB block, plus headers.
 */
function storedAllowance(inflated: number): number {
  return inflated + Math.ceil(inflated / 1000) + (64 << 10);
}

/** Reads `file` expecting `expectedMagic` (whose low byte is the number of dimensions). */
export async function readIdxBytes(
  file: CheckedFile,
  expectedMagic: number,
  what: string,
  limits: IdxReadLimits = {},
): Promise<IdxBytes> {
  const hash = createHash('sha256');
  // Until the header says how much data there is, any amount of stored bytes may be needed.
  const bound = { storedMax: Number.POSITIVE_INFINITY };
  const stored = hashed(file.chunks(), hash, bound, file.path);
  const first = await stored.next();
  const head = first.done === true ? new Uint8Array(0) : first.value;
  const compressed = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  const all = prepend(head, stored);
  const bytes = await assemble(compressed ? gunzipChunks(all, file.path) : all, {
    name: file.path,
    what,
    expectedMagic,
    limits,
    compressed,
    onDeclared: (total) => {
      bound.storedMax = storedAllowance(total + IDX_EXCESS_COUNTED);
    },
  });
  for await (const _ of stored) {
    // Whatever gunzip did not need (trailing bytes after the stream) still counts in the hash.
  }
  return { bytes, sha256: hash.digest('hex') };
}

export function hex(magic: number): string {
  return `0x${magic.toString(16).padStart(8, '0')}`;
}

/**
 * The stored bytes, hashed as they pass; more than `bound.storedMax` of them is refused (bytes after
 * the end of the gzip data, which zlib would otherwise skip through to the end of the file).
 */
async function* hashed(
  chunks: AsyncIterable<Uint8Array>,
  hash: Hash,
  bound: { readonly storedMax: number },
  name: string,
): AsyncGenerator<Uint8Array> {
  let read = 0;
  for await (const chunk of chunks) {
    read += chunk.length;
    if (read > bound.storedMax) {
      throw new InvalidArgumentError(
        `${name}: more stored bytes than the data its header declares can take (bytes after the end ` +
          'of the gzip data?); not read further',
      );
    }
    hash.update(chunk);
    yield chunk;
  }
}

async function* prepend(head: Uint8Array, rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (head.length > 0) yield head;
  for (let next = await rest.next(); next.done !== true; next = await rest.next()) yield next.value;
}

/** Inflates as the consumer asks: zlib pauses when its output is not taken, so nothing runs ahead. */
async function* gunzipChunks(input: AsyncIterable<Uint8Array>, name: string): AsyncGenerator<Uint8Array> {
  const gunzip = createGunzip();
  const feeding = pipeline(Readable.from(input), gunzip).then(
    () => undefined,
    () => undefined, // reported through the iteration below, or the consumer stopped early
  );
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (cause) {
    if (cause instanceof DomainError) throw cause; // from the stored bytes' own checks
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new InvalidArgumentError(`${name}: gzip data is truncated or corrupt (${reason})`, { cause });
  } finally {
    gunzip.destroy();
    await feeding;
  }
}

interface AssembleContext {
  readonly name: string;
  /** `IDX images (ubyte, 3 dims)`, for messages. */
  readonly what: string;
  readonly expectedMagic: number;
  readonly limits: IdxReadLimits;
  readonly compressed: boolean;
  /** Told the file's whole decompressed size once the header is in and accepted. */
  readonly onDeclared: (total: number) => void;
}

/** Collects the header, checks it and the limits, then exactly the declared data. */
async function assemble(chunks: AsyncIterable<Uint8Array>, context: AssembleContext): Promise<Uint8Array> {
  const { name, expectedMagic } = context;
  const ndims = expectedMagic & 0xff;
  const headerLength = 4 + 4 * ndims;
  const header = new Uint8Array(headerLength);
  let got = 0;
  let out: Uint8Array | undefined;
  let dims: number[] = [];
  let filled = 0;
  let excess = 0;
  for await (const chunk of chunks) {
    let offset = 0;
    if (out === undefined) {
      const take = Math.min(headerLength - got, chunk.length);
      header.set(chunk.subarray(0, take), got);
      got += take;
      offset = take;
      if (got >= 4) checkMagic(header, context);
      if (got < headerLength) continue;
      const view = new DataView(header.buffer);
      dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i));
      out = allocate(headerLength, dims, context);
      context.onDeclared(out.length);
      out.set(header);
      filled = headerLength;
    }
    const rest = chunk.length - offset;
    const take = Math.min(rest, out.length - filled);
    out.set(chunk.subarray(offset, offset + take), filled);
    filled += take;
    excess += rest - take;
    if (excess > IDX_EXCESS_COUNTED) {
      throw new InvalidArgumentError(
        `${name}: more than ${IDX_EXCESS_COUNTED.toLocaleString('en-US')} unexpected bytes after the ` +
          `${dims.join('×')} data declared by the header; not read further`,
      );
    }
  }
  if (out === undefined) {
    if (got < 4) {
      throw new InvalidArgumentError(`${name}: ${got} bytes is too short for an IDX header (truncated)`);
    }
    throw new InvalidArgumentError(
      `${name}: truncated header (${got} bytes, ${ndims} dimensions need ${headerLength})`,
    );
  }
  if (filled < out.length) {
    throw new InvalidArgumentError(
      `${name}: truncated: the header declares ${dims.join('×')} = ${out.length - headerLength} bytes of data, the file has ${filled - headerLength}`,
    );
  }
  if (excess > 0) {
    throw new InvalidArgumentError(
      `${name}: ${excess} unexpected bytes after the ${dims.join('×')} data declared by the header`,
    );
  }
  return out;
}

function checkMagic(header: Uint8Array, { name, what, expectedMagic }: AssembleContext): void {
  const magic = new DataView(header.buffer).getUint32(0);
  // The value read is not shown: the file may be anything (a symlinked /etc/passwd, a key).
  if (magic !== expectedMagic) {
    throw new InvalidArgumentError(
      `${name}: not an ${what} file (bad magic number; expected ${hex(expectedMagic)})`,
    );
  }
}

/** The buffer for the whole file, once the header says how large it is and the limits allow it. */
function allocate(headerLength: number, dims: readonly number[], context: AssembleContext): Uint8Array {
  const { name, limits, compressed } = context;
  const count = dims[0] ?? 0;
  const entries = dims.length === 1 ? 'labels' : 'images';
  const not = compressed ? 'not inflated' : 'not read';
  if (limits.maxImages !== undefined && count > limits.maxImages) {
    throw new ResourceExhaustedError(
      `${name}: the header declares ${count.toLocaleString('en-US')} ${entries}, more than the ` +
        `${limits.maxImages.toLocaleString('en-US')} allowed; ${not}`,
    );
  }
  const total = dims.reduce((a, b) => a * b, 1) + headerLength;
  if (limits.maxBytes !== undefined && total > limits.maxBytes) {
    throw new ResourceExhaustedError(
      `${name}: the header declares ${count.toLocaleString('en-US')} ${entries} (${dims.join('×')}), ` +
        `${total.toLocaleString('en-US')} bytes, more than the ${limits.maxBytes.toLocaleString('en-US')} ` +
        `bytes allowed; ${not}`,
    );
  }
  if (total > bufferConstants.MAX_LENGTH) {
    throw new InvalidArgumentError(
      `${name}: the header declares ${dims.join('×')} data, more than one buffer can hold`,
    );
  }
  // Zeroed pages are only committed as they are written: a truncated file costs what it holds.
  return new Uint8Array(total);
}
