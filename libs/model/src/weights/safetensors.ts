/**
 * safetensors reader/writer (format: https://huggingface.co/docs/safetensors, "Format" section).
 *
 * Layout: 8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then the byte buffer. The header
 * maps tensor names to `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the byte
 * buffer) plus an optional `__metadata__` object of string → string.
 *
 * Floating tensors (F32, F16, BF16, F64) are read as Float32. Integer and boolean tensors (BatchNorm's
 * `num_batches_tracked`, int64 position ids) carry no learned values for our models, so they are
 * skipped and listed in `skipped` instead of failing the load.
 *
 * Deviation from the reference implementation, on purpose: gaps in the byte buffer are tolerated
 * (the reference rejects them); overlapping or out-of-range tensors are rejected.
 */
import { hostTensor, numel, type NamedWeights } from './named-weights';

export type SafetensorsFloatDtype = 'F64' | 'F32' | 'F16' | 'BF16';

/** Integer/bool dtypes that are skipped rather than rejected. */
const SKIPPED_DTYPES: ReadonlyMap<string, number> = new Map([
  ['I64', 8],
  ['U64', 8],
  ['I32', 4],
  ['U32', 4],
  ['I16', 2],
  ['U16', 2],
  ['I8', 1],
  ['U8', 1],
  ['BOOL', 1],
]);

const FLOAT_DTYPE_BYTES: Readonly<Record<SafetensorsFloatDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
};

export const SAFETENSORS_METADATA_KEY = '__metadata__';

/** Prefix of the DeiT authors' checkpoints, which nest the state dict under `model`. */
export const NESTED_MODEL_PREFIX = 'model.';

/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(
    message: string,
    /** The tensor name or header field at fault, when there is one. */
    readonly key?: string,
  ) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

export interface SkippedTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly reason: string;
}

export interface SafetensorsContents {
  readonly weights: NamedWeights;
  readonly metadata: Readonly<Record<string, string>>;
  /** Original dtype of each loaded tensor (keys as in `weights`). */
  readonly dtypes: ReadonlyMap<string, SafetensorsFloatDtype>;
  /** Tensors present in the file but not loaded, with why. */
  readonly skipped: readonly SkippedTensor[];
  /** Whether the `model.` nesting of the DeiT authors' checkpoints was found and stripped. */
  readonly nestedModelPrefix: boolean;
}

export interface ReadSafetensorsOptions {
  /**
   * `auto` (default): if any key starts with `model.`, load only those keys with the prefix removed
   * (other keys — optimizer state, `model_ema.*`, … — are skipped); otherwise load keys as they are.
   * `strip`: require the prefix. `none`: never strip.
   */
  readonly modelPrefix?: 'auto' | 'strip' | 'none';
}

interface RawEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

export function readSafetensors(
  bytes: Uint8Array,
  options: ReadSafetensorsOptions = {},
): SafetensorsContents {
  const { header, dataStart } = parseHeader(bytes);
  const dataLength = bytes.length - dataStart;

  let metadata: Record<string, string> = {};
  const entries: RawEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === SAFETENSORS_METADATA_KEY) {
      metadata = parseMetadata(value);
      continue;
    }
    entries.push(parseEntry(name, value, dataLength));
  }
  checkNoOverlap(entries);

  const prefixMode = options.modelPrefix ?? 'auto';
  const hasNested = entries.some((e) => e.name.startsWith(NESTED_MODEL_PREFIX));
  const strip = prefixMode === 'strip' || (prefixMode === 'auto' && hasNested);
  if (prefixMode === 'strip' && !hasNested) {
    throw new SafetensorsError(`no tensor name starts with "${NESTED_MODEL_PREFIX}"`);
  }

  const weights: NamedWeights = new Map();
  const dtypes = new Map<string, SafetensorsFloatDtype>();
  const skipped: SkippedTensor[] = [];
  for (const entry of entries) {
    let name = entry.name;
    if (strip) {
      if (!name.startsWith(NESTED_MODEL_PREFIX)) {
        skipped.push({ ...describe(entry), reason: `outside the "${NESTED_MODEL_PREFIX}" state dict` });
        continue;
      }
      name = name.slice(NESTED_MODEL_PREFIX.length);
    }
    if (SKIPPED_DTYPES.has(entry.dtype)) {
      skipped.push({
        ...describe(entry),
        name,
        reason: `integer/bool tensor (${entry.dtype}) carries no weights`,
      });
      continue;
    }
    const dtype = entry.dtype as SafetensorsFloatDtype;
    const raw = bytes.subarray(dataStart + entry.begin, dataStart + entry.end);
    if (weights.has(name)) {
      throw new SafetensorsError(
        `tensor "${name}" appears twice after removing "${NESTED_MODEL_PREFIX}"`,
        name,
      );
    }
    weights.set(name, hostTensor(entry.shape, decodeFloats(raw, dtype)));
    dtypes.set(name, dtype);
  }
  return { weights, metadata, dtypes, skipped, nestedModelPrefix: strip };
}

export interface WriteSafetensorsOptions {
  /** String → string pairs stored under `__metadata__`. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Writes every tensor as F32 in map order; the header is space-padded to a multiple of 8 bytes. */
export function writeSafetensors(weights: NamedWeights, options: WriteSafetensorsOptions = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined && Object.keys(options.metadata).length > 0) {
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`metadata value of "${k}" must be a string`, k);
    }
    header[SAFETENSORS_METADATA_KEY] = { ...options.metadata };
  }
  let offset = 0;
  for (const [name, tensor] of weights) {
    if (name === SAFETENSORS_METADATA_KEY) throw new SafetensorsError(`"${name}" is reserved`, name);
    if (numel(tensor.shape) !== tensor.data.length) {
      throw new SafetensorsError(
        `tensor "${name}" has shape [${tensor.shape.join(', ')}] but ${tensor.data.length} values`,
        name,
      );
    }
    const size = tensor.data.length * 4;
    header[name] = { dtype: 'F32', shape: [...tensor.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padding = (8 - ((8 + json.length) % 8)) % 8;
  if (padding > 0) json = Buffer.concat([json, Buffer.alloc(padding, 0x20)]);

  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const tensor of weights.values()) {
    out.set(float32ToLittleEndianBytes(tensor.data), pos);
    pos += tensor.data.length * 4;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Header parsing

function parseHeader(bytes: Uint8Array): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) {
    throw new SafetensorsError(`file is ${bytes.length} bytes, too short for the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    // The value is not shown: for a file that is not safetensors it is eight bytes of its content.
    throw new SafetensorsError(
      `the header length field exceeds the ${bytes.length - 8} bytes after it (truncated, or not a safetensors file)`,
    );
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES)
    throw new SafetensorsError(`the header length field exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError('header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text, which may be any file's content.
    throw new SafetensorsError('header is not valid JSON');
  }
  if (!isPlainObject(parsed)) throw new SafetensorsError('header JSON must be an object');
  return { header: parsed, dataStart: 8 + n };
}

function parseMetadata(value: unknown): Record<string, string> {
  if (!isPlainObject(value))
    throw new SafetensorsError(`"${SAFETENSORS_METADATA_KEY}" must be an object`, SAFETENSORS_METADATA_KEY);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new SafetensorsError(
        `"${SAFETENSORS_METADATA_KEY}.${k}" must be a string`,
        `${SAFETENSORS_METADATA_KEY}.${k}`,
      );
    }
    out[k] = v;
  }
  return out;
}

function parseEntry(name: string, value: unknown, dataLength: number): RawEntry {
  const fail = (why: string): never => {
    throw new SafetensorsError(`tensor "${name}": ${why}`, name);
  };
  if (!isPlainObject(value)) return fail('header entry must be an object');
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') return fail('"dtype" must be a string');
  const elementBytes = SKIPPED_DTYPES.get(dtype) ?? FLOAT_DTYPE_BYTES[dtype as SafetensorsFloatDtype];
  if (elementBytes === undefined) return fail(`unsupported dtype "${dtype}"`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    return fail('"shape" must be an array of non-negative integers');
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    return fail('"data_offsets" must be [begin, end] with non-negative integers');
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) return fail(`"data_offsets" [${begin}, ${end}] has begin > end`);
  if (end > dataLength) {
    return fail(`"data_offsets" [${begin}, ${end}] out of range: the byte buffer has ${dataLength} bytes`);
  }
  const expected = numel(shape) * elementBytes;
  if (end - begin !== expected) {
    return fail(
      `"data_offsets" span ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`,
    );
  }
  return { name, dtype, shape: shape, begin, end };
}

function checkNoOverlap(entries: readonly RawEntry[]): void {
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.begin < prev.end) {
      throw new SafetensorsError(
        `tensors "${prev.name}" [${prev.begin}, ${prev.end}] and "${cur.name}" [${cur.begin}, ${cur.end}] overlap`,
        cur.name,
      );
    }
  }
}

function describe(entry: RawEntry): Omit<SkippedTensor, 'reason'> {
  return { name: entry.name, dtype: entry.dtype, shape: entry.shape };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

// ---------------------------------------------------------------------------------------------------
// Element conversion (shared with the ONNX reader)

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian bytes of `dtype` → new Float32Array (copies; the source may be unaligned). */
export function decodeFloats(raw: Uint8Array, dtype: SafetensorsFloatDtype): Float32Array {
  const n = raw.length / FLOAT_DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer).set(raw);
    return out;
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = float16BitsToNumber(view.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      // bfloat16 is the upper half of a float32; both views use host order, so this is endian-safe.
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      break;
    }
  }
  return out;
}

/** Float32 values → little-endian bytes (a view when the host is little-endian). */
export function float32ToLittleEndianBytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  return out;
}

/** IEEE 754 binary16 bit pattern → number (exact). */
export function float16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bit pattern → number (exact). */
export function bfloat16BitsToNumber(b: number): number {
  const scratch = new DataView(new ArrayBuffer(4));
  scratch.setUint32(0, (b & 0xffff) << 16);
  return scratch.getFloat32(0);
}
