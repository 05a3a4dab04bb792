import { status } from '@grpc/grpc-js';
import { healthV1Client } from '@deit-serve/proto';
import { seededRandom } from '@deit-serve/model/testing';
import { DirectoryRegistry } from '@deit-serve/registry';
import { healthCheck, publishTinyDeit } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classify, type InferenceProcess, outcome, pool, sleep, spawnInference } from './support';

/**
 * Mutated and random image payloads against the running service (its own process, built from
 * sources, default limits): every one is answered, nothing but INVALID_ARGUMENT comes back for what
 * does not decode, the process survives, and its memory stays bounded.
 */
const PAYLOADS = 5000;
const CONCURRENCY = 16;
/**
 * Generous bounds on the server's RSS growth (measured: about +270 MB over the run, almost all of it in
 * the first 40% of the payloads, where glibc's heaps grow to hold large transient decodes and keep that
 * memory). A leak grows with the number of payloads instead, in every part of the run alike; the
 * allocator's growth is a rare step later on (once in about 20 runs a single +116 MB step in the second
 * half), so the leak check is that at least one of the last two 30% parts grows by less than this:
 * a leak of more than ~40 KB per payload grows both past it.
 */
const MAX_RSS_GROWTH_MB = 400;
const MAX_LATE_PART_RSS_GROWTH_MB = 60;
/** Where the payloads are split for the RSS readings: 40% / 30% / 30%. */
const PARTS = [0, 0.4, 0.7, 1];
const FUZZ_TIMEOUT_MS = 240_000;

// Seeded, so a failing payload can be reproduced.
const random = seededRandom(20261128);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)];
const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));

interface Seed {
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** Real encodings of noise images, the starting points of the mutations. */
async function seeds(): Promise<Seed[]> {
  const noise = (w: number, h: number, channels: 1 | 3 | 4) =>
    sharp(Buffer.from(randomBytes(w * h * channels)), { raw: { width: w, height: h, channels } });
  const out: [string, Promise<Buffer>][] = [
    ['png-rgb', noise(16, 16, 3).png().toBuffer()],
    ['png-rgba', noise(20, 12, 4).png().toBuffer()],
    ['png-grey', noise(9, 9, 1).png().toBuffer()],
    ['png-palette', noise(24, 24, 3).png({ palette: true }).toBuffer()],
    ['png-interlaced', noise(17, 13, 3).png({ progressive: true }).toBuffer()],
    ['jpeg-baseline', noise(24, 24, 3).jpeg({ quality: 80 }).toBuffer()],
    ['jpeg-progressive', noise(32, 16, 3).jpeg({ progressive: true }).toBuffer()],
    ['jpeg-grey', noise(16, 16, 1).jpeg().toBuffer()],
    ['jpeg-444', noise(16, 24, 3).jpeg({ chromaSubsampling: '4:4:4' }).toBuffer()],
    ['webp-lossy', noise(20, 20, 3).webp({ quality: 70 }).toBuffer()],
    ['webp-lossless', noise(16, 16, 3).webp({ lossless: true }).toBuffer()],
    ['webp-alpha', noise(12, 18, 4).webp().toBuffer()],
    ['gif', noise(12, 12, 3).gif().toBuffer()],
  ];
  return Promise.all(out.map(async ([name, bytes]) => ({ name, bytes: new Uint8Array(await bytes) })));
}

const MAGICS = [
  [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], // PNG
  [0xff, 0xd8, 0xff, 0xe0], // JPEG
  [...'RIFF\0\0\0\0WEBPVP8 '].map((c) => c.charCodeAt(0)),
  [...'GIF89a'].map((c) => c.charCodeAt(0)),
  [...'II*\0'].map((c) => c.charCodeAt(0)), // TIFF
  [...'BM'].map((c) => c.charCodeAt(0)),
  [...'%PDF-1.4'].map((c) => c.charCodeAt(0)),
  [...'<svg xmlns="http://www.w3.org/2000/svg">'].map((c) => c.charCodeAt(0)),
  [0, 0, 0, 0x1c, ...'ftypavif'].map((c) => (typeof c === 'string' ? c.charCodeAt(0) : c)),
];
const HUGE = [0, 1, 65_535, 100_000, 2 ** 24, 2 ** 31 - 1, 2 ** 32 - 1];

function withDimensionsPng(png: Uint8Array, width: number, height: number, fixCrc: boolean): Uint8Array {
  const out = Buffer.from(png);
  if (out.length < 33) return out;
  out.writeUInt32BE(width >>> 0, 16);
  out.writeUInt32BE(height >>> 0, 20);
  if (fixCrc) out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

/** Rewrites the frame size in a JPEG's SOF0/1/2 segment. */
function withDimensionsJpeg(jpeg: Uint8Array, width: number, height: number): Uint8Array {
  const out = Buffer.from(jpeg);
  for (let i = 2; i + 9 < out.length; i++) {
    if (out[i] === 0xff && (out[i + 1] === 0xc0 || out[i + 1] === 0xc1 || out[i + 1] === 0xc2)) {
      out.writeUInt16BE(height & 0xffff, i + 5);
      out.writeUInt16BE(width & 0xffff, i + 7);
      return out;
    }
  }
  return out;
}

/** Rewrites the canvas of a lossy WebP's VP8 frame header (14-bit sizes). */
function withDimensionsWebp(webp: Uint8Array, width: number, height: number): Uint8Array {
  const out = Buffer.from(webp);
  if (out.length < 30 || out.toString('latin1', 12, 16) !== 'VP8 ') return out;
  out.writeUInt16LE(width & 0x3fff, 26);
  out.writeUInt16LE(height & 0x3fff, 28);
  return out;
}

type Mutator = (seed: Seed, all: readonly Seed[]) => Uint8Array;

const MUTATORS: Record<string, Mutator> = {
  truncate: ({ bytes }) => bytes.slice(0, int(bytes.length)),
  bitflip: ({ bytes }) => {
    const out = bytes.slice();
    for (let k = 1 + int(16); k > 0; k--) {
      const i = int(out.length);
      out[i] = (out[i] ?? 0) ^ (1 << int(8));
    }
    return out;
  },
  overwrite: ({ bytes }) => {
    const out = bytes.slice();
    const at = int(out.length);
    const fill = pick([0x00, 0xff, -1]);
    for (let i = at; i < Math.min(out.length, at + 1 + int(64)); i++) out[i] = fill < 0 ? int(256) : fill;
    return out;
  },
  'wrong-magic': ({ bytes }) => {
    const out = bytes.slice();
    out.set(pick(MAGICS).slice(0, out.length));
    return out;
  },
  'no-magic': ({ bytes }) => bytes.slice(1 + int(8)),
  'huge-png': (_, all) =>
    withDimensionsPng(
      pick(all.filter((s) => s.name.startsWith('png'))).bytes,
      pick(HUGE),
      pick(HUGE),
      random() < 0.8,
    ),
  'huge-jpeg': (_, all) =>
    withDimensionsJpeg(pick(all.filter((s) => s.name.startsWith('jpeg'))).bytes, pick(HUGE), pick(HUGE)),
  'huge-webp': (_, all) =>
    withDimensionsWebp((all.find((s) => s.name === 'webp-lossy') as Seed).bytes, pick(HUGE), pick(HUGE)),
  // Larger than the image but under the pixel limit: the decoder has to notice the data runs out.
  'large-declared': (_, all) => {
    const side = 1000 + int(5000);
    return random() < 0.5
      ? withDimensionsPng(pick(all.filter((s) => s.name.startsWith('png'))).bytes, side, side, true)
      : withDimensionsJpeg(pick(all.filter((s) => s.name.startsWith('jpeg'))).bytes, side, side);
  },
  'zero-size': (_, all) =>
    pick([
      () => new Uint8Array(0),
      () => withDimensionsPng(pick(all.filter((s) => s.name.startsWith('png'))).bytes, 0, int(2) * 16, true),
      () => withDimensionsJpeg(pick(all.filter((s) => s.name.startsWith('jpeg'))).bytes, int(2) * 16, 0),
    ])(),
  random: () => randomBytes(1 + int(4096)),
  'random-after-magic': () => {
    const magic = pick(MAGICS);
    const out = randomBytes(magic.length + int(2048));
    out.set(magic);
    return out;
  },
  splice: ({ bytes }, all) => {
    const other = pick(all).bytes;
    const head = bytes.slice(0, int(bytes.length));
    const tail = other.slice(int(other.length));
    return Uint8Array.from([...head, ...tail]);
  },
  insert: ({ bytes }) => {
    const at = int(bytes.length);
    return Uint8Array.from([...bytes.slice(0, at), ...randomBytes(1 + int(256)), ...bytes.slice(at)]);
  },
  repeat: ({ bytes }) => Uint8Array.from(Array.from({ length: 2 + int(20) }, () => [...bytes]).flat()),
};

describe('fuzzing the running inference service with broken images', () => {
  let server: InferenceProcess;
  let all: Seed[];

  beforeAll(async () => {
    const registryDir = mkdtempSync(join(tmpdir(), 'deit-e2e-fuzz-'));
    await publishTinyDeit(await DirectoryRegistry.open(registryDir, { create: true }), 'tiny', { seed: 1 });
    [server, all] = await Promise.all([spawnInference(registryDir), seeds()]);
  }, 120_000);

  afterAll(() => server?.close());

  it(
    `answers ${PAYLOADS} mutated and random payloads with OK or INVALID_ARGUMENT only, and survives`,
    async () => {
      // Every seed decodes, and the warm-up brings the server to its working-set size before measuring.
      for (const seed of all) {
        expect((await outcome(server.client, { image: seed.bytes })).code, seed.name).toBe(status.OK);
      }
      await pool(400, CONCURRENCY, (i) => outcome(server.client, { image: all[i % all.length]?.bytes }));
      const rssBefore = server.rssBytes();

      const names = Object.keys(MUTATORS);
      const payloads = Array.from({ length: PAYLOADS }, (_, i) => {
        const mutation = names[i % names.length] ?? 'random';
        return { mutation, bytes: MUTATORS[mutation](pick(all), all) };
      });
      const started = performance.now();
      const send = (i: number) =>
        outcome(server.client, { image: payloads[i]?.bytes }, { deadline: Date.now() + 60_000 });
      const results: Awaited<ReturnType<typeof send>>[] = [];
      const rss = [rssBefore];
      for (let p = 1; p < PARTS.length; p++) {
        const from = Math.round(PAYLOADS * PARTS[p - 1]);
        const to = Math.round(PAYLOADS * PARTS[p]);
        results.push(...(await pool(to - from, CONCURRENCY, (i) => send(from + i))));
        await sleep(500);
        rss.push(server.rssBytes());
      }
      const seconds = (performance.now() - started) / 1000;
      const rssAfter = rss[rss.length - 1];
      const growth = rss.slice(1).map((r, i) => r - rss[i]);
      const lateGrowth = growth.slice(1);
      const peak = server.peakRssBytes();

      const byCode = new Map<number, number>();
      for (const r of results) byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
      const decoded = results.filter((r) => r.code === status.OK).length;
      const invalid = byCode.get(status.INVALID_ARGUMENT) ?? 0;
      const others = results.flatMap((r, i) =>
        r.code === status.OK || r.code === status.INVALID_ARGUMENT
          ? []
          : [{ mutation: payloads[i]?.mutation, code: status[r.code], details: r.details }],
      );
      const decodedBy = new Map<string, number>();
      results.forEach((r, i) => {
        const m = payloads[i]?.mutation ?? '';
        if (r.code === status.OK) decodedBy.set(m, (decodedBy.get(m) ?? 0) + 1);
      });
      const mb = (b: number) => (b / 2 ** 20).toFixed(1);
      console.log(
        `fuzz: ${PAYLOADS} payloads (${names.length} mutations) in ${seconds.toFixed(1)} s at concurrency ${CONCURRENCY}: ` +
          `${invalid} INVALID_ARGUMENT, ${decoded} still decoded and were classified (OK: ${[...decodedBy].map(([m, n]) => `${m} ${n}`).join(', ')}), ` +
          `${others.length} other; server RSS ${rss.map(mb).join(' → ')} MB after warm-up and each part ` +
          `(${mb(rssAfter - rssBefore)} MB growth; by part ${growth.map(mb).join(', ')} MB; peak ${mb(peak)} MB)`,
      );

      expect(results).toHaveLength(PAYLOADS);
      expect(others.slice(0, 10)).toEqual([]);
      expect(invalid + decoded).toBe(PAYLOADS);
      // Most mutants must really be broken, or the fuzzing proves little.
      expect(invalid).toBeGreaterThan(PAYLOADS * 0.8);
      expect(server.child.exitCode).toBeNull();
      expect((await healthCheck(server.address)).status).toBe(
        healthV1Client.HealthCheckResponse_ServingStatus.SERVING,
      );
      expect((await classify(server.client, { image: all[0]?.bytes })).model?.name).toBe('tiny');
      expect((rssAfter - rssBefore) / 2 ** 20).toBeLessThan(MAX_RSS_GROWTH_MB);
      expect(Math.min(...lateGrowth) / 2 ** 20).toBeLessThan(MAX_LATE_PART_RSS_GROWTH_MB);
    },
    FUZZ_TIMEOUT_MS,
  );
});
