import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InvalidArgumentError, NotFoundError } from '@deit-serve/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FASHION_MNIST_DIR,
  FASHION_MNIST_LABELS,
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
  loadFashionMnist,
  loadIdxDataset,
  readIdxImages,
  readIdxLabels,
} from './idx';

function idx(magic: number, dims: number[], data: Uint8Array): Uint8Array {
  const header = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  header.setUint32(0, magic);
  dims.forEach((d, i) => header.setUint32(4 + 4 * i, d));
  const out = new Uint8Array(header.byteLength + data.length);
  out.set(new Uint8Array(header.buffer));
  out.set(data, header.byteLength);
  return out;
}

const COUNT = 5;
const ROWS = 3;
const COLS = 4;
const PIXELS = Uint8Array.from({ length: COUNT * ROWS * COLS }, (_, i) => (i * 37) % 256);
const LABELS = Uint8Array.from([0, 9, 3, 3, 7]);
const imagesFile = (): Uint8Array => idx(IDX_IMAGES_MAGIC, [COUNT, ROWS, COLS], PIXELS);
const labelsFile = (labels = LABELS): Uint8Array => idx(IDX_LABELS_MAGIC, [labels.length], labels);

let dir: string;
const at = (name: string): string => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'deit-idx-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(name: string, bytes: Uint8Array): Promise<string> {
  await writeFile(at(name), bytes);
  return at(name);
}

describe('IDX reading', () => {
  it.each([
    ['raw', (b: Uint8Array) => b],
    ['gzip', (b: Uint8Array) => new Uint8Array(gzipSync(b))],
  ])('round-trips %s files, with the sha256 of the stored bytes', async (kind, encode) => {
    const imageBytes = encode(imagesFile());
    const images = await readIdxImages(await put(`images-${kind}`, imageBytes));
    expect(images.content).toMatchObject({ count: COUNT, rows: ROWS, cols: COLS });
    expect(images.content.pixels).toEqual(PIXELS);
    expect(images.sha256).toBe(createHash('sha256').update(imageBytes).digest('hex'));
    const labels = await readIdxLabels(await put(`labels-${kind}`, encode(labelsFile())), 10);
    expect(labels.content).toEqual(LABELS);
  });

  it('names the file and the expected magic, never the bytes found, when the magic is wrong', async () => {
    const path = await put('swapped', labelsFile());
    await expect(readIdxImages(path)).rejects.toThrow(
      new InvalidArgumentError(
        `${path}: not an IDX images (ubyte, 3 dims) file (bad magic number; expected 0x00000803)`,
      ),
    );
    // int32 data (type 0x0c) is not what these data sets use.
    const int32 = await put('int32', idx(0x00000c01, [1], new Uint8Array(4)));
    await expect(readIdxLabels(int32)).rejects.toThrow(/bad magic number; expected 0x00000801\)$/);
    // A text file: nothing of it in the message, in any spelling.
    const text = await put('text', new TextEncoder().encode('root:x:0:0:root:/root:/bin/bash\n'));
    const error = (await readIdxImages(text).catch((e: unknown) => e)) as Error;
    expect(error.message).toBe(
      `${text}: not an IDX images (ubyte, 3 dims) file (bad magic number; expected 0x00000803)`,
    );
  });

  it('reports truncation: short header, short data, cut gzip stream', async () => {
    const shortHeader = await put('short-header', imagesFile().subarray(0, 10));
    await expect(readIdxImages(shortHeader)).rejects.toThrow(
      `${shortHeader}: truncated header (10 bytes, 3 dimensions need 16)`,
    );
    const tiny = await put('tiny', new Uint8Array([0, 0]));
    await expect(readIdxImages(tiny)).rejects.toThrow(
      `${tiny}: 2 bytes is too short for an IDX header (truncated)`,
    );
    const shortData = await put('short-data', imagesFile().subarray(0, 16 + 50));
    await expect(readIdxImages(shortData)).rejects.toThrow(
      `${shortData}: truncated: the header declares 5×3×4 = 60 bytes of data, the file has 50`,
    );
    const gz = gzipSync(imagesFile());
    const cutGzip = await put('cut.gz', gz.subarray(0, gz.length - 12));
    await expect(readIdxImages(cutGzip)).rejects.toThrow(`${cutGzip}: gzip data is truncated or corrupt`);
    const trailing = await put('trailing', new Uint8Array([...labelsFile(), 1, 2]));
    await expect(readIdxLabels(trailing)).rejects.toThrow(`${trailing}: 2 unexpected bytes after the 5 data`);
  });

  it('rejects a label outside the class range, naming its index (not the byte)', async () => {
    const path = await put('bad-labels', labelsFile(Uint8Array.from([0, 1, 10, 2, 3])));
    await expect(readIdxLabels(path, 10)).rejects.toThrow(
      new InvalidArgumentError(`${path}: the label at index 2 is out of range; expected 0–9`),
    );
  });

  it('rejects images and labels that disagree on the count', async () => {
    const images = await put('pair-images', imagesFile());
    const labels = await put('pair-labels', labelsFile(Uint8Array.from([1, 2, 3])));
    await expect(loadIdxDataset(images, labels, FASHION_MNIST_LABELS)).rejects.toThrow(
      `${images} holds 5 images but ${labels} holds 3 labels; they must match`,
    );
  });

  it('raises NotFoundError for a missing file', async () => {
    await expect(readIdxImages(at('nope'))).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('loadFashionMnist', () => {
  it('loads a split from a directory of the four file names, as a grey dataset', async () => {
    const fm = join(dir, 'fashion');
    await mkdir(fm);
    await writeFile(join(fm, 't10k-images-idx3-ubyte.gz'), gzipSync(imagesFile()));
    const labelBytes = gzipSync(labelsFile());
    await writeFile(join(fm, 't10k-labels-idx1-ubyte.gz'), labelBytes);
    const test = await loadFashionMnist(fm, 'test');
    expect(test.count).toBe(COUNT);
    expect(test.images).toEqual(PIXELS);
    expect(test.labels).toEqual(LABELS);
    expect(test.labelNames).toEqual(FASHION_MNIST_LABELS);
    expect(test.labelNames).toHaveLength(10);
    expect(test.sha256.labels).toBe(createHash('sha256').update(labelBytes).digest('hex'));
    const sample = test.dataset.get(1);
    expect(sample).toMatchObject({ width: COLS, height: ROWS, channels: 1, label: 9 });
    expect(sample.pixels).toEqual(PIXELS.subarray(12, 24));

    // The split defaults to train, whose files are absent: NotFoundError with the install hint.
    const err: unknown = await loadFashionMnist(fm).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain('train-images-idx3-ubyte.gz does not exist');
    expect((err as Error).message).toContain('apt-get install dataset-fashion-mnist');
  });

  it("defaults to the Debian package's directory", () => {
    expect(FASHION_MNIST_DIR).toBe('/usr/share/datasets/fashion-mnist');
  });

  it('raises NotFoundError with the apt-get hint when the directory is missing', async () => {
    await expect(loadFashionMnist(at('missing'))).rejects.toThrow(
      new NotFoundError(
        `Fashion-MNIST directory ${at('missing')} does not exist; install it with \`apt-get install dataset-fashion-mnist\``,
      ),
    );
  });
});
