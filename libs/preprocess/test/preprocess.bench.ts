import sharp from 'sharp';
import { bench, describe } from 'vitest';
import { decodeImage, evalGeometry, preprocess, type InputSpec, type RgbImage } from '../src';
import { synthPixels } from './fixtures';

/**
 * Cost of one image at DeiT's cfg (224, bicubic, crop_pct 0.9). preprocess is plain JS on the
 * calling thread; decodeImage and the sharp resize run on libvips' threads.
 *   npx vitest bench --run --config libs/preprocess/vitest.config.mts
 * Not part of `npm test`: timings on shared CI runners are noise, not a pass/fail signal.
 */

const DEIT: InputSpec = {
  imageSize: 224,
  channels: 3,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  interpolation: 'bicubic',
  cropPct: 0.9,
};

const LIMIT = { maxPixels: 50_000_000 };
const OPTIONS = { time: 1000, warmupTime: 200 };

const sizes = [
  [640, 480],
  [1920, 1080],
  [4032, 3024],
] as const;

/** Decoded-equivalent pixels, built synchronously (a CommonJS module has no top-level await). */
const images: RgbImage[] = sizes.map(([width, height]) => ({
  data: synthPixels(width, height, 3, width),
  width,
  height,
}));

/** JPEG encodings for the decode benchmark, made on first use (during warm-up). */
const jpegs = new Map<number, Promise<Buffer>>();
function jpegOf(i: number): Promise<Buffer> {
  let jpeg = jpegs.get(i);
  if (!jpeg) {
    const { data, width, height } = images[i];
    jpeg = sharp(data, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toBuffer();
    jpegs.set(i, jpeg);
  }
  return jpeg;
}

/** The rejected alternative, for comparison: sharp's cubic kernel on the decoded pixels. */
async function sharpResize(image: RgbImage): Promise<Buffer> {
  const g = evalGeometry(image.width, image.height, DEIT);
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(g.resizeWidth, g.resizeHeight, { fit: 'fill', kernel: 'cubic' })
    .extract({ left: g.cropLeft, top: g.cropTop, width: 224, height: 224 })
    .raw()
    .toBuffer();
}

for (const [i, [w, h]] of sizes.entries()) {
  const image = images[i];
  describe(`${w}×${h} → 224`, () => {
    bench(
      'preprocess (Pillow-exact resample + crop + normalise)',
      () => {
        preprocess(image, DEIT);
      },
      OPTIONS,
    );
    bench(
      'sharp cubic resize + crop (rejected alternative, bytes only)',
      async () => {
        await sharpResize(image);
      },
      OPTIONS,
    );
    bench(
      'decodeImage (JPEG q90)',
      async () => {
        await decodeImage(await jpegOf(i), LIMIT);
      },
      OPTIONS,
    );
  });
}
