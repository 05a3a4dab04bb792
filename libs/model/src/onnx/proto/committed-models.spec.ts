import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { readOnnxWeights } from '../read-weights';
import { decodeModel, encodeModel } from './codec';

/** Every .onnx file in the repository (registry models, fixtures), one per distinct content. */
function committedModels(): { path: string; bytes: Uint8Array }[] {
  let root = __dirname;
  while (!existsSync(join(root, 'nx.json'))) {
    if (dirname(root) === root) throw new Error('cannot find the workspace root (nx.json)');
    root = dirname(root);
  }
  const paths = execFileSync('git', ['ls-files', '-z', '*.onnx'], { cwd: root })
    .toString()
    .split('\0')
    .filter((p) => p !== '');
  const byContent = new Map<string, { path: string; bytes: Uint8Array }>();
  for (const path of paths) {
    const bytes = new Uint8Array(readFileSync(join(root, path)));
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (!byContent.has(digest)) byContent.set(digest, { path, bytes });
  }
  return [...byContent.values()];
}

async function run(model: Uint8Array, feeds: Record<string, Tensor>): Promise<Record<string, Float32Array>> {
  const session = await InferenceSession.create(model);
  try {
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, t.data as Float32Array]));
  } finally {
    await session.release();
  }
}

/**
 * The decoded message as JSON, each bytes field replaced by its length and sha256: a deep comparison
 * that stays fast on megabytes of raw_data (element-wise equality on them takes minutes).
 */
function fingerprint(message: unknown): string {
  return JSON.stringify(message, (_key, value: unknown) =>
    value instanceof Uint8Array
      ? `bytes(${value.length}, ${createHash('sha256').update(value).digest('hex')})`
      : value,
  );
}

const models = committedModels();

describe('the generated ONNX codec on every committed model', () => {
  it('finds the committed models', () => {
    expect(models.length).toBeGreaterThan(0);
  });

  it.each(models.map((m) => [m.path, m] as const))(
    '%s: decode → encode → decode is unchanged and re-encoding is stable',
    (_path, { bytes }) => {
      const decoded = decodeModel(bytes);
      const encoded = encodeModel(decoded);
      expect(fingerprint(decodeModel(encoded))).toBe(fingerprint(decoded));
      expect(Buffer.from(encodeModel(decodeModel(encoded))).equals(Buffer.from(encoded))).toBe(true);
      // Nothing dropped: the writer puts fields in onnx.proto's declaration order where the file may use
      // field-number order, so the sizes, not the bytes, must agree.
      expect(encoded.length).toBe(bytes.length);
    },
  );

  it.each(models.map((m) => [m.path, m] as const))(
    '%s: onnxruntime gives identical outputs on the re-encoded file',
    async (_path, { bytes }) => {
      const [input] = readOnnxWeights(bytes).inputs;
      expect(input?.shape).not.toBeNull();
      const shape = (input?.shape ?? []).map((d) => (typeof d === 'number' ? d : 2));
      const n = shape.reduce((a, b) => a * b, 1);
      const pixels = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
      const feeds = { [input?.name ?? '']: new Tensor('float32', pixels, shape) };
      const original = await run(bytes, feeds);
      const reencoded = await run(encodeModel(decodeModel(bytes)), feeds);
      expect(Object.keys(reencoded)).toEqual(Object.keys(original));
      const bytesOf = (a: Float32Array | undefined) =>
        a === undefined ? Buffer.alloc(0) : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      for (const [name, values] of Object.entries(original)) {
        expect(bytesOf(values).length, name).toBeGreaterThan(0);
        expect(bytesOf(reencoded[name]).equals(bytesOf(values)), name).toBe(true);
      }
    },
  );
});
