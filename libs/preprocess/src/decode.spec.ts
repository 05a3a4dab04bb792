import { InvalidArgumentError } from '@deit-serve/core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { bombPng, encodePng } from '../test/png';
import { DEFAULT_IMAGE_FORMATS, decodeImage, sniffFormat } from './decode';
import { PixelBudget } from './pixel-budget';

const LIMIT = { maxPixels: 4_000_000 };

function pattern(width: number, height: number, channels: number): Buffer {
  const out = Buffer.alloc(width * height * channels);
  for (let i = 0; i < out.length; i++) out[i] = (i * 37 + (i >> 7) * 11) % 256;
  return out;
}

function rgb(width: number, height: number): sharp.Sharp {
  return sharp(pattern(width, height, 3), { raw: { width, height, channels: 3 } });
}

/** Asserts an InvalidArgumentError whose message matches every pattern given. */
async function rejects(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<InvalidArgumentError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidArgumentError);
  const e = err as InvalidArgumentError;
  expect(e.kind).toBe('INVALID_ARGUMENT');
  for (const p of patterns) expect(e.message).toMatch(p);
  return e;
}

describe('decodeImage: formats', () => {
  it('decodes PNG losslessly to RGB', async () => {
    const img = await decodeImage(await rgb(37, 23).png().toBuffer(), LIMIT);
    expect(img).toMatchObject({ width: 37, height: 23, format: 'png' });
    expect(Buffer.from(img.data).equals(pattern(37, 23, 3))).toBe(true);
  });

  it('decodes JPEG close to its source', async () => {
    const img = await decodeImage(await rgb(64, 48).jpeg({ quality: 95 }).toBuffer(), LIMIT);
    expect(img).toMatchObject({ width: 64, height: 48, format: 'jpeg' });
    expect(img.data.length).toBe(64 * 48 * 3);
  });

  it('decodes lossless WebP exactly and lossy WebP', async () => {
    const lossless = await decodeImage(await rgb(30, 20).webp({ lossless: true }).toBuffer(), LIMIT);
    expect(lossless.format).toBe('webp');
    expect(Buffer.from(lossless.data).equals(pattern(30, 20, 3))).toBe(true);
    const lossy = await decodeImage(await rgb(30, 20).webp({ quality: 50 }).toBuffer(), LIMIT);
    expect(lossy).toMatchObject({ width: 30, height: 20, format: 'webp' });
  });

  it('decodes GIF and TIFF', async () => {
    const gif = await decodeImage(await rgb(16, 8).gif().toBuffer(), LIMIT);
    expect(gif).toMatchObject({ width: 16, height: 8, format: 'gif' });
    const tiff = await decodeImage(await rgb(16, 8).tiff({ compression: 'lzw' }).toBuffer(), LIMIT);
    expect(tiff).toMatchObject({ width: 16, height: 8, format: 'tiff' });
    expect(Buffer.from(tiff.data).equals(pattern(16, 8, 3))).toBe(true);
  });

  it('reads only the first frame of an animated GIF', async () => {
    const frames = pattern(10, 12, 4).fill(255, 10 * 6 * 4); // two 10×6 frames
    const gif = await sharp(frames, { raw: { width: 10, height: 12, channels: 4, pageHeight: 6 } })
      .gif()
      .toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(2);
    const img = await decodeImage(gif, LIMIT);
    expect([img.width, img.height]).toEqual([10, 6]);
  });
});

describe('decodeImage: pixel layouts (as PIL convert("RGB"))', () => {
  it('replicates 8-bit grey to three channels', async () => {
    const grey = [0, 50, 100, 255, 7, 8];
    const img = await decodeImage(encodePng(3, 2, 8, 0, grey), LIMIT);
    expect(Array.from(img.data)).toEqual(grey.flatMap((v) => [v, v, v]));
  });

  it('drops alpha without compositing, keeping the colour under alpha 0', async () => {
    const rgba = [10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255];
    const img = await decodeImage(encodePng(3, 1, 8, 6, rgba), LIMIT);
    expect(Array.from(img.data)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90]);
  });

  it('drops alpha of grey+alpha', async () => {
    const img = await decodeImage(encodePng(2, 1, 8, 4, [10, 0, 200, 255]), LIMIT);
    expect(Array.from(img.data)).toEqual([10, 10, 10, 200, 200, 200]);
  });

  it('keeps the high byte of 16-bit RGB, as PIL does', async () => {
    const samples = [0, 255, 256, 1000, 32768, 40000, 65280, 65535, 300];
    const img = await decodeImage(encodePng(3, 1, 16, 2, samples), LIMIT);
    expect(Array.from(img.data)).toEqual(samples.map((v) => v >> 8));
  });

  it('scales 16-bit grey by its high byte (PIL would clip it to 255; see decode.ts)', async () => {
    const samples = [0, 1000, 32768, 65535];
    const img = await decodeImage(encodePng(4, 1, 16, 0, samples), LIMIT);
    expect(Array.from(img.data)).toEqual(samples.flatMap((v) => [v >> 8, v >> 8, v >> 8]));
  });

  it('expands palettes, transparent entries included', async () => {
    const rgba = Buffer.from([255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 128, 9, 9, 9, 255]);
    const png = await sharp(rgba, { raw: { width: 4, height: 1, channels: 4 } })
      .png({ palette: true })
      .toBuffer();
    expect((await sharp(png).metadata()).isPalette).toBe(true);
    const img = await decodeImage(png, LIMIT);
    expect(img.data.length).toBe(12);
    expect(Array.from(img.data.subarray(0, 3))).toEqual([255, 0, 0]);
    expect(Array.from(img.data.subarray(9, 12))).toEqual([9, 9, 9]);
  });

  it('ignores EXIF orientation: pixels come out as stored (PIL without exif_transpose)', async () => {
    const jpeg = await rgb(32, 16).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);
    const img = await decodeImage(jpeg, LIMIT);
    expect([img.width, img.height]).toEqual([32, 16]);
  });
});

describe('decodeImage: refusals', () => {
  it('refuses a decompression bomb from its header, before decoding', async () => {
    // The file declares 10^10 pixels but holds one row: reaching the decoder would have produced a
    // "truncated" error instead, so this message proves the header check ran first.
    const bomb = bombPng(100_000, 100_000);
    expect(bomb.length).toBeLessThan(200);
    const started = performance.now();
    await rejects(
      decodeImage(bomb, LIMIT),
      /PNG/,
      /100000×100000/,
      /10,000,000,000 pixels/,
      /4,000,000/,
      /downscale/,
    );
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('refuses an ordinary image just over the limit and accepts one at it', async () => {
    const png = await rgb(100, 50).png().toBuffer();
    await rejects(decodeImage(png, { maxPixels: 4999 }), /100×50 = 5,000 pixels/, /4,999/);
    await expect(decodeImage(png, { maxPixels: 5000 })).resolves.toMatchObject({ width: 100 });
  });

  it('refuses empty input', async () => {
    await rejects(decodeImage(new Uint8Array(0), LIMIT), /empty/, /JPEG, PNG, WebP, GIF, TIFF or AVIF file/);
  });

  it('refuses unrecognised bytes, showing what they start with', async () => {
    await rejects(
      decodeImage(Buffer.from('hello, this is not an image'), LIMIT),
      /unrecognised/,
      /68 65 6c 6c/,
    );
    const png = await rgb(8, 8).png().toBuffer();
    const wrongMagic = Buffer.from(png);
    wrongMagic[1] = 0x51; // 'Q' instead of 'P'
    await rejects(decodeImage(wrongMagic, LIMIT), /unrecognised/);
  });

  it('refuses formats that are not plain rasters, and formats the caller excluded', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>');
    expect(sniffFormat(svg)).toBe('SVG');
    await rejects(decodeImage(svg, LIMIT), /SVG is not accepted/);
    const png = await rgb(8, 8).png().toBuffer();
    await rejects(
      decodeImage(png, { ...LIMIT, formats: ['jpeg'] }),
      /PNG is not accepted/,
      /send a JPEG file/,
    );
  });

  it('refuses truncated PNG and JPEG', async () => {
    const png = await rgb(64, 48).png().toBuffer();
    await rejects(
      decodeImage(png.subarray(0, Math.floor(png.length * 0.6)), LIMIT),
      /PNG/,
      /truncated or corrupt/,
    );
    const jpeg = await rgb(64, 48).jpeg().toBuffer();
    await rejects(
      decodeImage(jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), LIMIT),
      /JPEG/,
      /truncated or corrupt/,
    );
    await rejects(decodeImage(png.subarray(0, 20), LIMIT), /PNG header is truncated or corrupt/);
  });

  it('refuses bit-flipped data that the codecs can detect', async () => {
    // PNG: every chunk carries a CRC, so a flip anywhere in the image data is caught.
    const png = await rgb(64, 48).png().toBuffer();
    const flippedPng = Buffer.from(png);
    flippedPng[Math.floor(png.length * 0.7)] ^= 0x10;
    await rejects(decodeImage(flippedPng, LIMIT), /PNG/, /corrupt/);
    // JPEG has no checksum; a flip in its Huffman tables is detectable, one in entropy-coded data
    // may decode to wrong pixels silently, in PIL as here.
    const jpeg = await rgb(64, 48).jpeg().toBuffer();
    const dht = jpeg.indexOf(Buffer.from([0xff, 0xc4]));
    const flippedJpeg = Buffer.from(jpeg);
    flippedJpeg[dht + 5] ^= 0x40;
    await rejects(decodeImage(flippedJpeg, LIMIT), /JPEG/, /corrupt/);
  });

  it('refuses a zero-size image', async () => {
    await rejects(decodeImage(encodePng(0, 5, 8, 2, []), LIMIT), /PNG image has zero size \(0×5\)/);
  });

  it('treats a bad limit as a configuration error, not the caller’s', async () => {
    await expect(decodeImage(Buffer.from([1]), { maxPixels: 0 })).rejects.toBeInstanceOf(RangeError);
  });
});

describe('decodeImage: shared pixel budget', () => {
  it('waits for room for its declared pixels, and gives them back after success or failure', async () => {
    const budget = new PixelBudget(10_000);
    const png = await rgb(50, 40).png().toBuffer();
    const full = await budget.acquire(10_000);
    let decoded = false;
    const waiting = decodeImage(png, { ...LIMIT, budget }).then(() => (decoded = true));
    await new Promise((r) => setTimeout(r, 50));
    expect([decoded, budget.queued]).toEqual([false, 1]);
    full();
    await waiting;
    expect(budget.inUse).toBe(0);
    await rejects(
      decodeImage(png.subarray(0, png.length - 40), { ...LIMIT, budget }),
      /truncated or corrupt/,
    );
    expect(budget.inUse).toBe(0);
    // Refused from the header: never takes any of the budget.
    await rejects(decodeImage(bombPng(100_000, 100_000), { ...LIMIT, budget }), /above the limit/);
    expect([budget.inUse, budget.queued]).toEqual([0, 0]);
  });
});

describe('the formats the API documents', () => {
  it('are exactly the formats accepted by default (ClassifyRequest.image in the inference proto)', () => {
    const proto = readFileSync(
      join(__dirname, '..', '..', '..', 'proto', 'deit', 'inference', 'v1', 'inference.proto'),
      'utf8',
    );
    const comment = /\/\/ An encoded image: ([^(]+) \(/.exec(proto)?.[1];
    expect(comment, 'ClassifyRequest.image comment').toBeDefined();
    const documented = (comment ?? '').split(/, | or /).map((name) => name.toLowerCase());
    expect(documented.sort()).toEqual([...DEFAULT_IMAGE_FORMATS].sort());
  });
});
