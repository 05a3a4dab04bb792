import sharp from 'sharp';
import { encodePng } from './png';

/**
 * Deterministic, photo-like test images: smooth gradients (what resampling mostly sees), hard-edged
 * shapes and fine stripes (where kernels and antialiasing differ most) and sensor-like noise.
 */

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Interleaved 8-bit pixels with `channels` bands; the 4th band, if any, is a varied alpha. */
export function synthPixels(width: number, height: number, channels: 1 | 3 | 4, seed: number): Uint8Array {
  const rand = mulberry32(seed);
  const rgb = new Float64Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      rgb[i] = (255 * x) / width;
      rgb[i + 1] = (255 * y) / height;
      rgb[i + 2] = 128 + 100 * Math.sin((x + y) / 17);
    }
  }
  const paint = (inside: (x: number, y: number) => boolean, colour: number[]): void => {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!inside(x, y)) continue;
        const i = (y * width + x) * 3;
        for (let c = 0; c < 3; c++) rgb[i + c] = colour[c];
      }
    }
  };
  const colour = (): number[] => [rand() * 255, rand() * 255, rand() * 255];
  for (let s = 0; s < 4; s++) {
    const cx = rand() * width;
    const cy = rand() * height;
    const r = (0.05 + rand() * 0.2) * Math.min(width, height);
    paint((x, y) => (x - cx) ** 2 + (y - cy) ** 2 < r * r, colour());
    const x0 = rand() * width;
    const y0 = rand() * height;
    const w = rand() * width * 0.3;
    const h = rand() * height * 0.3;
    paint((x, y) => x >= x0 && x < x0 + w && y >= y0 && y < y0 + h, colour());
  }
  // One-pixel stripes: the hardest case for a downscaling kernel.
  const sx = Math.floor(width * 0.6);
  paint((x, y) => x >= sx && x < sx + width * 0.2 && y < height * 0.4 && x % 2 === 0, [250, 250, 250]);

  const out = new Uint8Array(width * height * channels);
  for (let p = 0; p < width * height; p++) {
    const noise = (rand() - 0.5) * 24;
    const v = [0, 1, 2].map((c) => Math.max(0, Math.min(255, Math.round(rgb[p * 3 + c] + noise))));
    if (channels === 1) {
      out[p] = Math.round(0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]);
      continue;
    }
    for (let c = 0; c < 3; c++) out[p * channels + c] = v[c];
    if (channels === 4) {
      // Fully transparent, half and opaque regions: PIL keeps the stored colour under alpha 0.
      const x = p % width;
      out[p * 4 + 3] = x < width / 3 ? 0 : x < (2 * width) / 3 ? 128 : 255;
    }
  }
  return out;
}

export interface Fixture {
  name: string;
  bytes: Buffer;
  width: number;
  height: number;
}

function raw(width: number, height: number, channels: 1 | 3 | 4, seed: number): sharp.Sharp {
  return sharp(synthPixels(width, height, channels, seed), { raw: { width, height, channels } });
}

/** Width × height of the tall and wide fixtures, named `tall-WxH.png` / `wide-WxH.png`. */
export const TALL_AND_WIDE: ReadonlyArray<readonly [number, number]> = [
  [100, 400],
  [60, 300],
  [90, 200],
  [37, 513],
  [300, 1200],
  [400, 100],
];

/** The images the agreement test runs through both pipelines. */
export async function agreementFixtures(): Promise<Fixture[]> {
  const make = async (name: string, width: number, height: number, bytes: Promise<Buffer> | Buffer) => ({
    name,
    width,
    height,
    bytes: await bytes,
  });
  const rgb16 = synthPixels(96, 64, 3, 9);
  return Promise.all([
    make('landscape-640x480.jpg', 640, 480, raw(640, 480, 3, 1).jpeg({ quality: 90 }).toBuffer()),
    make('portrait-375x500.png', 375, 500, raw(375, 500, 3, 2).png().toBuffer()),
    make('rgba-333x250.png', 333, 250, raw(333, 250, 4, 3).png().toBuffer()),
    make('grey-257x311.png', 257, 311, encodePng(257, 311, 8, 0, synthPixels(257, 311, 1, 4))),
    make('grey-200x260.jpg', 200, 260, raw(200, 260, 1, 5).jpeg({ quality: 85 }).toBuffer()),
    make('lossy-300x300.webp', 300, 300, raw(300, 300, 3, 6).webp({ quality: 80 }).toBuffer()),
    make('small-160x120.jpg', 160, 120, raw(160, 120, 3, 7).jpeg({ quality: 90 }).toBuffer()),
    make('exact-224x224.png', 224, 224, raw(224, 224, 3, 8).png().toBuffer()),
    make(
      'rgb16-96x64.png',
      96,
      64,
      encodePng(
        96,
        64,
        16,
        2,
        Array.from(rgb16, (v, i) => v * 256 + ((i * 97) % 256)),
      ),
    ),
    make(
      'palette-180x150.png',
      180,
      150,
      raw(180, 150, 4, 10).png({ palette: true, colours: 64 }).toBuffer(),
    ),
    make(
      'exif6-320x240.jpg',
      320,
      240,
      raw(320, 240, 3, 11).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toBuffer(),
    ),
    make('wide-1000x90.png', 1000, 90, raw(1000, 90, 3, 12).png().toBuffer()),
    make('lzw-150x200.tiff', 150, 200, raw(150, 200, 3, 14).tiff({ compression: 'lzw' }).toBuffer()),
    make('quantised-120x90.gif', 120, 90, raw(120, 90, 3, 15).gif().toBuffer()),
    make('lossless-100x70.webp', 100, 70, raw(100, 70, 4, 16).webp({ lossless: true }).toBuffer()),
    make('mnist-28x28.png', 28, 28, encodePng(28, 28, 8, 0, synthPixels(28, 28, 1, 13))),
    // Tall and wide images: Pillow 13 resizes a much taller than wide downscale vertically first.
    ...TALL_AND_WIDE.map(([width, height], i) =>
      make(
        `${width > height ? 'wide' : 'tall'}-${width}x${height}.png`,
        width,
        height,
        raw(width, height, 3, 20 + i)
          .png()
          .toBuffer(),
      ),
    ),
  ]);
}
