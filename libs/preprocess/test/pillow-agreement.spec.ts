import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeImage,
  evalGeometry,
  normalizationTable,
  preprocess,
  type DecodedImage,
  type InputSpec,
  type Interpolation,
} from '../src';
import { resizeWindow } from '../src/resample';
import { agreementFixtures, synthPixels, TALL_AND_WIDE, type Fixture } from './fixtures';

/**
 * End-to-end agreement with an independent implementation: the same encoded files go through
 * decodeImage + preprocess here and through PIL + numpy (timm_eval_reference.py) there, and the
 * normalised tensors are compared. The same comparison is made for sharp's own resize kernels,
 * which is how the resampler was chosen.
 *
 * Needs python3 with Pillow ≥ 13 and numpy (`pip install 'pillow>=13' numpy`); skipped, with the
 * reason in the test name, when they are missing. Pillow 13 chose a new pass order for tall
 * downscales (see verticalPassFirst), which this library follows, so older Pillow differs by a
 * level or more on those images. PYTHON overrides the interpreter.
 */

const python = process.env['PYTHON'] ?? 'python3';
const probe = spawnSync(python, ['-c', 'import PIL, numpy; print(PIL.__version__)'], {
  encoding: 'utf8',
});
const pillowMajor = Number.parseInt(probe.stdout ?? '', 10);
const missing =
  probe.error !== undefined || probe.status !== 0
    ? `skipped: ${python} with pillow and numpy not found (pip install pillow numpy)`
    : !(pillowMajor >= 13)
      ? `skipped: Pillow ${probe.stdout.trim()} is older than 13, whose resize pass order this library follows`
      : undefined;
if (missing) console.warn(`[preprocess] Pillow agreement ${missing}`);

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

interface Case {
  fixture: string;
  spec: InputSpec;
}

function spec(
  imageSize: number,
  cropPct: number,
  interpolation: Interpolation,
  channels: 1 | 3 = 3,
): InputSpec {
  return channels === 3
    ? { imageSize, cropPct, interpolation, channels, ...IMAGENET }
    : { imageSize, cropPct, interpolation, channels, mean: [0.5], std: [0.5] };
}

const INTERPOLATIONS = ['bicubic', 'bilinear', 'nearest'] as const;

const tallAndWide = TALL_AND_WIDE.map(([w, h]) => `${w > h ? 'wide' : 'tall'}-${w}x${h}.png`);

function cases(fixtures: Fixture[]): Case[] {
  const all = fixtures.map((f) => f.name);
  const some = [
    'landscape-640x480.jpg',
    'portrait-375x500.png',
    'rgba-333x250.png',
    'small-160x120.jpg',
    'wide-1000x90.png',
  ];
  return [
    // DeiT's own cfg (timm): 224, bicubic, crop_pct 0.9 → 248.
    ...all.map((fixture) => ({ fixture, spec: spec(224, 0.9, 'bicubic') })),
    // The DeiT repo's 0.875 (→ 256) and a 384 model's crop_pct 1.0.
    ...some.map((fixture) => ({ fixture, spec: spec(224, 0.875, 'bicubic') })),
    { fixture: 'landscape-640x480.jpg', spec: spec(384, 1, 'bicubic') },
    ...some.map((fixture) => ({ fixture, spec: spec(224, 0.875, 'bilinear') })),
    ...some.map((fixture) => ({ fixture, spec: spec(224, 0.9, 'nearest') })),
    { fixture: 'exact-224x224.png', spec: spec(224, 1, 'bicubic') }, // identity: the fast path
    { fixture: 'exact-224x224.png', spec: spec(224, 1, 'nearest') },
    { fixture: 'mnist-28x28.png', spec: spec(28, 1, 'bicubic', 1) },
    { fixture: 'mnist-28x28.png', spec: spec(32, 1, 'bilinear', 1) },
    { fixture: 'mnist-28x28.png', spec: spec(224, 0.875, 'bicubic') },
    { fixture: 'grey-257x311.png', spec: spec(224, 0.9, 'bicubic', 1) },
    { fixture: 'landscape-640x480.jpg', spec: spec(224, 0.9, 'bicubic', 1) },
    // Tall and wide images at sizes that shrink them, so that Pillow 13 runs the vertical pass
    // first on the tall ones (e.g. 100×400 → 32×128, 300×1200 → 248×992); 224 bicubic is above.
    ...tallAndWide.flatMap((fixture) =>
      INTERPOLATIONS.flatMap((k) => [
        { fixture, spec: spec(32, 1, k) },
        { fixture, spec: spec(48, 0.875, k) },
        { fixture, spec: spec(32, 0.9, k, 1) },
        ...(k === 'bicubic' ? [] : [{ fixture, spec: spec(224, 0.9, k) }]),
      ]),
    ),
  ];
}

interface Diff {
  max: number;
  mean: number;
  /** Share of elements that differ at all. */
  differing: number;
  n: number;
}

function diff(a: Float32Array, b: Float32Array): Diff {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  let differing = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
    if (d !== 0) differing++;
  }
  return { max, mean: sum / a.length, differing: differing / a.length, n: a.length };
}

function merge(diffs: Diff[]): Diff {
  const n = diffs.reduce((s, d) => s + d.n, 0);
  return {
    max: Math.max(...diffs.map((d) => d.max)),
    mean: diffs.reduce((s, d) => s + d.mean * d.n, 0) / n,
    differing: diffs.reduce((s, d) => s + d.differing * d.n, 0) / n,
    n,
  };
}

const SHARP_KERNEL = { bicubic: 'cubic', bilinear: 'linear', nearest: 'nearest' } as const;

/** The alternative that was measured and rejected: sharp's resize kernels, then the same crop and normalisation. */
async function viaSharpResize(image: DecodedImage, s: InputSpec): Promise<Float32Array> {
  const g = evalGeometry(image.width, image.height, s);
  let pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
  if (s.channels === 1) pipeline = pipeline.toColourspace('b-w');
  const pixels = await pipeline
    .resize(g.resizeWidth, g.resizeHeight, { fit: 'fill', kernel: SHARP_KERNEL[s.interpolation] })
    .extract({ left: g.cropLeft, top: g.cropTop, width: g.size, height: g.size })
    .raw()
    .toBuffer();
  const table = normalizationTable(s);
  const plane = g.size * g.size;
  const out = new Float32Array(s.channels * plane);
  for (let c = 0; c < s.channels; c++) {
    for (let i = 0; i < plane; i++) out[c * plane + i] = table[c * 256 + pixels[i * s.channels + c]];
  }
  return out;
}

/** Share of values a case may have off by one step: isolated rounding, never a systematic difference. */
const MAX_DIFFERING = 0.001;

function fmt(d: Diff): string {
  return `max ${d.max.toExponential(2)}  mean ${d.mean.toExponential(2)}  differing ${(100 * d.differing).toFixed(3)}%`;
}

describe.skipIf(missing !== undefined)(
  `agreement with Pillow (timm eval transform)${missing ? ` — ${missing}` : ''}`,
  () => {
    let dir: string;
    let fixtures: Fixture[];
    let decoded: Map<string, DecodedImage>;
    const ours = new Map<Interpolation, Diff[]>();
    const viaSharp = new Map<Interpolation, Diff[]>();
    const perCase: Array<{ label: string; d: Diff }> = [];
    let versions = '';

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'preprocess-pillow-'));
      fixtures = await agreementFixtures();
      decoded = new Map();
      for (const f of fixtures) {
        writeFileSync(join(dir, f.name), f.bytes);
        decoded.set(f.name, await decodeImage(f.bytes, { maxPixels: 10_000_000 }));
      }
      const all = cases(fixtures);
      const input = all.map((c, i) => ({
        ...c.spec,
        image: join(dir, c.fixture),
        out: join(dir, `case-${i}.f32`),
      }));
      const run = spawnSync(python, [join(__dirname, 'timm_eval_reference.py')], {
        input: JSON.stringify(input),
        encoding: 'utf8',
      });
      if (run.status !== 0) throw new Error(`reference script failed: ${run.stderr}`);
      versions = run.stdout;

      for (const [i, c] of all.entries()) {
        const bytes = readFileSync(input[i].out);
        const reference = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        const image = decoded.get(c.fixture);
        if (!image) throw new Error(c.fixture);
        const k = c.spec.interpolation;
        const d = diff(preprocess(image, c.spec), reference);
        const { imageSize, cropPct, channels } = c.spec;
        perCase.push({ label: `${c.fixture} ${k} ${imageSize}/${cropPct} ${channels}ch`, d });
        ours.set(k, [...(ours.get(k) ?? []), d]);
        viaSharp.set(k, [...(viaSharp.get(k) ?? []), diff(await viaSharpResize(image, c.spec), reference)]);
      }
      const lines = [
        `Pillow agreement (${versions}), ${fixtures.length} images, ${all.length} cases, normalised-tensor abs differences:`,
      ];
      for (const k of ours.keys()) {
        lines.push(`  ${k.padEnd(8)} ours:  ${fmt(merge(ours.get(k) ?? []))}`);
        lines.push(`  ${k.padEnd(8)} sharp: ${fmt(merge(viaSharp.get(k) ?? []))}`);
      }
      console.log(lines.join('\n'));
    });

    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    // One quantisation step of the output: a byte off by one after normalisation. Any disagreement
    // in PIL's fixed-point rounding would show as isolated single steps; a wrong kernel, geometry or
    // decode shows as many steps or a large mean.
    const step = 1 / 255 / Math.min(...IMAGENET.std);

    for (const k of INTERPOLATIONS) {
      it(`${k}: matches Pillow to within rounding`, () => {
        const d = merge(ours.get(k) ?? []);
        expect(d.n).toBeGreaterThan(0);
        expect(d.max).toBeLessThanOrEqual(step * 1.0001);
        expect(d.mean).toBeLessThanOrEqual(1e-5);
      });
    }

    // Per case, so that one image's systematic difference cannot hide in the average of all: a
    // wrong pass order changes a level on about a fifth of a tall image's values.
    it('matches Pillow on every single case, tall and wide images included', () => {
      const tall = perCase.filter((c) => tallAndWide.some((f) => c.label.startsWith(f)));
      expect(tall.length).toBeGreaterThanOrEqual(tallAndWide.length * INTERPOLATIONS.length);
      for (const { label, d } of perCase) {
        expect(d.max, label).toBeLessThanOrEqual(step * 1.0001);
        expect(d.differing, label).toBeLessThanOrEqual(MAX_DIFFERING);
      }
    });

    it('is closer to Pillow than sharp’s own kernels (why the resampler is ours)', () => {
      for (const k of ['bicubic', 'bilinear'] as const) {
        const a = merge(ours.get(k) ?? []);
        const b = merge(viaSharp.get(k) ?? []);
        expect(a.mean).toBeLessThan(b.mean);
      }
    });
  },
);

/** Raster sizes [inWidth, inHeight, outWidth, outHeight] compared directly with `Image.resize`. */
function resizeSizes(): Array<[number, number, number, number]> {
  const sizes: Array<[number, number, number, number]> = [
    [100, 400, 32, 128],
    [60, 300, 32, 160],
    [90, 200, 32, 71],
    [37, 513, 32, 443],
    [400, 100, 128, 32],
    [513, 37, 443, 32],
    [100, 400, 50, 300], // h − oh = 2·(w − ow) exactly: still horizontal first
    [100, 400, 50, 299], // one row more of shrink: vertical first
    [100, 400, 150, 300], // width grows while height shrinks: vertical first
    [120, 90, 60, 89], // both shrink, height by less: horizontal first
    [64, 300, 64, 100], // vertical pass only
    [300, 64, 100, 64], // horizontal pass only
    [80, 60, 200, 150], // upscale
  ];
  let seed = 7;
  const rand = (lo: number, hi: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return lo + ((seed >>> 8) % (hi - lo + 1));
  };
  while (sizes.length < 33) {
    const size: [number, number, number, number] = [rand(8, 320), rand(8, 320), rand(4, 320), rand(4, 320)];
    if (size[0] !== size[2] || size[1] !== size[3]) sizes.push(size);
  }
  return sizes;
}

interface ResizeCase {
  kind: 'resize';
  label: string;
  channels: 1 | 3;
  interpolation: Interpolation;
  width: number;
  height: number;
  size: [number, number];
  window: [number, number, number, number];
  image: string;
  out: string;
}

describe.skipIf(missing !== undefined)(
  `resizeWindow agrees with Pillow's Image.resize + crop${missing ? ` — ${missing}` : ''}`,
  () => {
    let dir: string;
    const results: Array<{ label: string; d: Diff }> = [];

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'preprocess-resize-'));
      const all: ResizeCase[] = [];
      for (const [i, [w, h, ow, oh]] of resizeSizes().entries()) {
        for (const channels of [3, 1] as const) {
          const image = join(dir, `in-${i}-${channels}.raw`);
          writeFileSync(image, synthPixels(w, h, channels, 100 + i));
          // The whole image and a non-square window off the centre.
          const left = Math.floor(ow / 5);
          const top = Math.floor(oh / 4);
          const windows: Array<[number, number, number, number]> = [
            [0, 0, ow, oh],
            [left, top, Math.max(1, Math.ceil(ow * 0.6) - 1), Math.max(1, Math.ceil(oh * 0.4))],
          ];
          for (const interpolation of INTERPOLATIONS) {
            for (const window of windows) {
              all.push({
                label: `${w}×${h} → ${ow}×${oh} ${interpolation} ${channels}ch window ${window.join(',')}`,
                kind: 'resize',
                channels,
                interpolation,
                width: w,
                height: h,
                size: [ow, oh],
                window,
                image,
                out: join(dir, `out-${all.length}.raw`),
              });
            }
          }
        }
      }
      const run = spawnSync(python, [join(__dirname, 'timm_eval_reference.py')], {
        input: JSON.stringify(all),
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      });
      if (run.status !== 0) throw new Error(`reference script failed: ${run.stderr}`);
      for (const c of all) {
        const src = { data: readFileSync(c.image), width: c.width, height: c.height, channels: c.channels };
        const [left, top, width, height] = c.window;
        const ours = resizeWindow(src, c.size[0], c.size[1], c.interpolation, { left, top, width, height });
        results.push({
          label: c.label,
          d: diff(Float32Array.from(ours), Float32Array.from(readFileSync(c.out))),
        });
      }
      const total = merge(results.map((r) => r.d));
      console.log(
        `resizeWindow vs Image.resize (${run.stdout}): ${results.length} cases, ${total.n} values, ${fmt(total)}`,
      );
    });

    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('matches on tall, wide, square, up- and downscaled sizes and non-square windows', () => {
      expect(results.length).toBeGreaterThan(0);
      for (const { label, d } of results) {
        expect(d.max, label).toBeLessThanOrEqual(1);
        expect(d.differing, label).toBeLessThanOrEqual(MAX_DIFFERING);
      }
    });
  },
);
