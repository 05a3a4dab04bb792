import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
} from '@deit-serve/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileAccess } from './file-access';
import { listImageFolder, loadImageFolder } from './image-folder';

let root: string;

/** A w×h image of one colour, encoded by sharp. */
async function solid(
  format: 'png' | 'jpeg',
  width: number,
  height: number,
  colour: { r: number; g: number; b: number },
): Promise<Buffer> {
  const image = sharp({ create: { width, height, channels: 3, background: colour } });
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality: 95 }).toBuffer();
}

async function put(path: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, bytes);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'deit-folder-'));
  const data = join(root, 'data');
  const red = { r: 200, g: 30, b: 10 };
  const grey = { r: 90, g: 90, b: 90 };
  // Classes are sorted by name: "bird" = 0, "cat" = 1, "dog" = 2.
  await put(join(data, 'dog', 'd1.png'), await solid('png', 12, 10, red));
  await put(join(data, 'dog', 'd2.jpg'), await solid('jpeg', 16, 16, red));
  await put(join(data, 'dog', 'nested', 'd3.PNG'), await solid('png', 8, 8, grey));
  await put(join(data, 'cat', 'c1.png'), await solid('png', 9, 9, grey));
  await put(join(data, 'cat', 'c2.jpeg'), await solid('jpeg', 20, 10, red));
  const valid = await solid('png', 10, 10, red);
  // A PNG cut in half: the header reads, the pixels do not.
  await put(join(data, 'cat', 'c0-corrupt.png'), valid.subarray(0, valid.length >> 1));
  await put(join(data, 'bird', 'b1.png'), await solid('png', 10, 10, grey));
  await put(join(data, 'bird', 'notes.txt'), 'not an image');
  await put(join(data, 'bird', '.DS_Store'), 'hidden');
  await put(join(data, '.ipynb_checkpoints', 'x.png'), valid);
  await put(join(data, 'README.md'), 'root files are not classes');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('listImageFolder', () => {
  it('lists sorted classes and files, recursively, skipping hidden entries and reporting non-images', async () => {
    const listing = await listImageFolder(join(root, 'data'));
    expect(listing.classes).toEqual(['bird', 'cat', 'dog']);
    expect(listing.files).toEqual([
      { path: 'bird/b1.png', label: 0 },
      { path: 'cat/c0-corrupt.png', label: 1 },
      { path: 'cat/c1.png', label: 1 },
      { path: 'cat/c2.jpeg', label: 1 },
      { path: 'dog/d1.png', label: 2 },
      { path: 'dog/d2.jpg', label: 2 },
      { path: 'dog/nested/d3.PNG', label: 2 },
    ]);
    expect(listing.problems).toEqual([
      { path: 'bird/notes.txt', reason: expect.stringContaining('not an image') },
    ]);
  });

  it('refuses a missing root, a root without classes and a class without images', async () => {
    await expect(listImageFolder(join(root, 'missing'))).rejects.toBeInstanceOf(NotFoundError);
    await mkdir(join(root, 'flat'));
    await put(join(root, 'flat', 'a.png'), await solid('png', 4, 4, { r: 1, g: 2, b: 3 }));
    await expect(listImageFolder(join(root, 'flat'))).rejects.toThrow(
      new InvalidArgumentError(
        `image folder ${join(root, 'flat')} has no classes: expected one sub-folder per class, each holding its images`,
      ),
    );
    await put(join(root, 'holes', 'full', 'a.png'), await solid('png', 4, 4, { r: 1, g: 2, b: 3 }));
    await put(join(root, 'holes', 'empty', 'readme.txt'), 'nothing');
    await expect(listImageFolder(join(root, 'holes'))).rejects.toThrow(
      'class folder "empty" holds no image files',
    );
    await expect(listImageFolder(join(root, 'data', 'bird', 'b1.png'))).rejects.toThrow('is not a directory');
  });
});

describe('loadImageFolder', () => {
  it('decodes every good image, reports the corrupt one and keeps going', async () => {
    const { dataset, paths, problems } = await loadImageFolder(join(root, 'data'));
    expect(dataset.labelNames).toEqual(['bird', 'cat', 'dog']);
    expect(paths).toEqual([
      'bird/b1.png',
      'cat/c1.png',
      'cat/c2.jpeg',
      'dog/d1.png',
      'dog/d2.jpg',
      'dog/nested/d3.PNG',
    ]);
    expect(problems.map((p) => p.path)).toEqual(['bird/notes.txt', 'cat/c0-corrupt.png']);
    expect(problems[1].reason).toMatch(/PNG/);
    expect(dataset.size).toBe(6);
    // Grey images are stored with one channel, colour ones with three, at their native size.
    expect(dataset.get(0)).toMatchObject({ width: 10, height: 10, channels: 1, label: 0 });
    expect(dataset.get(0).pixels[0]).toBe(90);
    const d1 = dataset.get(3);
    expect(d1).toMatchObject({ width: 12, height: 10, channels: 3, label: 2 });
    expect([...d1.pixels.subarray(0, 3)]).toEqual([200, 30, 10]);
  });

  it('resizes to size × size through the eval transform', async () => {
    const { dataset } = await loadImageFolder(join(root, 'data'), { resize: { size: 6 } });
    for (let i = 0; i < dataset.size; i++) expect(dataset.get(i)).toMatchObject({ width: 6, height: 6 });
    // A solid PNG stays exactly its colour after resampling.
    expect(new Set(dataset.get(3).pixels)).toEqual(new Set([200, 30, 10]));
  });

  it('decodes only `limit` images, stratified, replacing a corrupt pick by the next file of its class', async () => {
    // 7 files → 5: quotas bird 5/7, cat 15/7, dog 15/7 → floors 0, 2, 2, the spare one to bird.
    // Cat's picks are c0-corrupt and c1; c0 fails and c2 takes its place.
    const { dataset, paths, problems } = await loadImageFolder(join(root, 'data'), { limit: 5 });
    expect(dataset.size).toBe(5);
    expect(paths).toEqual(['bird/b1.png', 'cat/c1.png', 'cat/c2.jpeg', 'dog/d1.png', 'dog/d2.jpg']);
    expect(problems.map((p) => p.path)).toEqual(['bird/notes.txt', 'cat/c0-corrupt.png']);
    expect([0, 1, 2, 3, 4].map((i) => dataset.labelOf(i))).toEqual([0, 1, 1, 2, 2]);
  });

  it('reports images above maxPixels instead of decoding them', async () => {
    const { paths, problems } = await loadImageFolder(join(root, 'data'), { maxPixels: 150 });
    // d2.jpg is 16×16 = 256 pixels, c2.jpeg 20×10 = 200; the rest are at most 12×10.
    expect(paths).toEqual(['bird/b1.png', 'cat/c1.png', 'dog/d1.png', 'dog/nested/d3.PNG']);
    expect(problems.filter((p) => /above the limit/.test(p.reason)).map((p) => p.path)).toEqual([
      'cat/c2.jpeg',
      'dog/d2.jpg',
    ]);
  });

  it('fails with the problems when nothing decodes', async () => {
    await put(join(root, 'broken', 'a', 'x.png'), 'not really a png');
    await put(join(root, 'broken', 'b', 'y.jpg'), new Uint8Array([0xff, 0xd8, 0xff, 0x00]));
    const err: unknown = await loadImageFolder(join(root, 'broken')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain('none of its 2 image files could be decoded');
    expect((err as Error).message).toContain('a/x.png');
  });

  it('refuses a folder with more images than maxImages before decoding any', async () => {
    const err: unknown = await loadImageFolder(join(root, 'data'), { maxImages: 6 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect((err as Error).message).toMatch(/would load 7 images, more than the 6 allowed/);
    // `limit` is what would be loaded, so a limited load within maxImages goes ahead.
    expect((await loadImageFolder(join(root, 'data'), { limit: 5, maxImages: 5 })).dataset.size).toBe(5);
    expect((await loadImageFolder(join(root, 'data'), { maxImages: 7 })).dataset.size).toBe(6);
  });

  it('stops reading once maxBytes of files would be passed, and counts what it read', async () => {
    const all = await loadImageFolder(join(root, 'data'));
    expect(all.bytesRead).toBeGreaterThan(0);
    expect((await loadImageFolder(join(root, 'data'), { maxBytes: all.bytesRead })).dataset.size).toBe(6);
    const err: unknown = await loadImageFolder(join(root, 'data'), { maxBytes: all.bytesRead - 1 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect((err as Error).message).toMatch(/would pass the limit of [\d,]+ bytes of dataset files/);
    // The corrupt file counts too: it was read.
    const sizes = await Promise.all(
      [
        'bird/b1.png',
        'cat/c0-corrupt.png',
        'cat/c1.png',
        'cat/c2.jpeg',
        'dog/d1.png',
        'dog/d2.jpg',
        'dog/nested/d3.PNG',
      ].map(async (p) => (await stat(join(root, 'data', p))).size),
    );
    expect(all.bytesRead).toBe(sizes.reduce((a, b) => a + b, 0));
  });

  it('skips files and sub-folders that a symlink leads out of its roots, without reading them', async () => {
    const dir = join(root, 'linked');
    await put(join(dir, 'a', 'inside.png'), await solid('png', 4, 4, { r: 1, g: 2, b: 3 }));
    await put(join(root, 'secret', 'outside.png'), await solid('png', 4, 4, { r: 1, g: 2, b: 3 }));
    await symlink(join(root, 'secret', 'outside.png'), join(dir, 'a', 'link.png'));
    await symlink(join(root, 'secret'), join(dir, 'a', 'linked-folder'));
    // Inside the roots a symlink is followed, as torchvision does.
    await symlink(join(dir, 'a', 'inside.png'), join(dir, 'a', 'same.png'));
    const { paths, problems } = await loadImageFolder(dir, { files: new FileAccess([dir]) });
    expect(paths).toEqual(['a/inside.png', 'a/same.png']);
    expect(problems).toEqual([
      { path: 'a/link.png', reason: expect.stringMatching(/outside the data roots through a symbolic link/) },
      {
        path: 'a/linked-folder',
        reason: expect.stringMatching(/outside the data roots through a symbolic link/),
      },
    ]);
    expect(JSON.stringify(problems)).not.toContain(join(root, 'secret'));
    // A class folder that leads out refuses the whole folder (PERMISSION_DENIED).
    await symlink(join(root, 'secret'), join(dir, 'b'));
    await expect(loadImageFolder(dir, { files: new FileAccess([dir]) })).rejects.toBeInstanceOf(
      PermissionDeniedError,
    );
  });

  it('skips a FIFO named like an image and a file above maxFileBytes, without reading them', async () => {
    const dir = join(root, 'odd-files');
    await put(join(dir, 'a', 'fine.png'), await solid('png', 4, 4, { r: 9, g: 9, b: 9 }));
    execFileSync('mkfifo', [join(dir, 'a', 'pipe.png')]);
    await put(join(dir, 'a', 'sparse.png'), '');
    await truncate(join(dir, 'a', 'sparse.png'), 1.5e9);
    const rss = process.memoryUsage().rss;
    const started = Date.now();
    const { paths, problems } = await loadImageFolder(dir);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * 1024 * 1024);
    expect(paths).toEqual(['a/fine.png']);
    expect(problems).toEqual([
      { path: 'a/pipe.png', reason: expect.stringMatching(/is not a regular file \(a FIFO\)/) },
      {
        path: 'a/sparse.png',
        reason: expect.stringMatching(/is 1,500,000,000 bytes, more than the 67,108,864 allowed; not read/),
      },
    ]);
  });

  it('lists a folder reached twice through a symlink loop once', async () => {
    const dir = join(root, 'loop');
    await put(join(dir, 'a', 'x.png'), await solid('png', 4, 4, { r: 5, g: 5, b: 5 }));
    await symlink(join(dir, 'a'), join(dir, 'a', 'again'));
    const listing = await listImageFolder(dir, new FileAccess([dir]));
    expect(listing.files).toEqual([{ path: 'a/x.png', label: 0 }]);
    expect(listing.problems).toEqual([{ path: 'a/again', reason: expect.stringMatching(/already listed/) }]);
  });

  it('checks its options', async () => {
    await expect(loadImageFolder(join(root, 'data'), { limit: 0, resize: { size: 0 } })).rejects.toThrow(
      /limit must be a positive integer.*resize.size must be a positive integer/,
    );
  });
});
