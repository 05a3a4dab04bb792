import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import { randomResizedCropBox, resizedCrop, type Box } from '../src';

/**
 * The training resampler against Pillow itself: torchvision's RandomResizedCrop and RandomCrop on a
 * PIL image are `img.crop(box).resize((S, S), BILINEAR)`, so that is what the Python side runs on
 * the same random pixels and boxes. Needs python3 with pillow and numpy; skipped, with the reason
 * in the test name, when they are missing. PYTHON overrides the interpreter.
 */

const python = process.env['PYTHON'] ?? 'python3';
const probe = spawnSync(python, ['-c', 'import PIL, numpy; print(PIL.__version__)'], { encoding: 'utf8' });
const pillowMajor = Number.parseInt(probe.stdout ?? '', 10);
// Pillow 13 changed the pass order of tall downscales (Pillow#9549); the port follows 13.
const missing =
  probe.error !== undefined || probe.status !== 0
    ? `skipped: ${python} with pillow and numpy not found (pip install pillow numpy)`
    : !(pillowMajor >= 13)
      ? `skipped: Pillow ${probe.stdout.trim()} is older than 13, whose resize pass order this library follows`
      : undefined;

const REFERENCE = `
import json, sys
import numpy as np
from PIL import Image
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    a = np.array(c['pixels'], dtype=np.uint8).reshape(c['height'], c['width'], c['channels'])
    img = Image.fromarray(a[:, :, 0], 'L') if c['channels'] == 1 else Image.fromarray(a, 'RGB')
    b = c['box']
    crop = img.crop((b['left'], b['top'], b['left'] + b['width'], b['top'] + b['height']))
    out.append(np.asarray(crop.resize((c['size'], c['size']), Image.BILINEAR)).reshape(-1).tolist())
json.dump(out, open(sys.argv[2], 'w'))
`;

interface Case {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: number[];
  box: Box;
  size: number;
}

function cases(): Case[] {
  const rng = new Rng(20240601);
  const sizes = [7, 16, 28, 32, 57];
  const all: Case[] = [];
  for (let k = 0; k < 40; k++) {
    const width = rng.int(5, 70);
    // Every fourth image is tall, so that Pillow's vertical-first order is exercised.
    const height = k % 4 === 0 ? rng.int(3 * width, 4 * width + 1) : rng.int(5, 70);
    const channels: 1 | 3 = k % 2 === 0 ? 1 : 3;
    const pixels = Array.from({ length: width * height * channels }, () => rng.int(0, 256));
    const box =
      k % 3 === 0
        ? { left: rng.int(-4, 5), top: rng.int(-4, 5), width, height } // padded crop
        : randomResizedCropBox(rng, width, height);
    all.push({ width, height, channels, pixels, box, size: sizes[k % sizes.length] });
  }
  return all;
}

describe('resizedCrop agrees with Pillow', () => {
  it.skipIf(missing !== undefined)(
    `crop + bilinear resize, bit for bit${missing ? ` (${missing})` : ''}`,
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'deit-pil-'));
      try {
        const all = cases();
        writeFileSync(join(dir, 'cases.json'), JSON.stringify(all));
        const run = spawnSync(python, ['-c', REFERENCE, join(dir, 'cases.json'), join(dir, 'out.json')], {
          encoding: 'utf8',
        });
        expect(run.stderr).toBe('');
        const expected = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as number[][];
        let differing = 0;
        all.forEach((c, i) => {
          const ours = resizedCrop(
            { pixels: Uint8Array.from(c.pixels), width: c.width, height: c.height, channels: c.channels },
            c.box,
            c.size,
          );
          if (ours.some((v, j) => v !== expected[i][j])) differing++;
        });
        expect(differing).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
