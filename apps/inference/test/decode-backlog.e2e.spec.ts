import { status } from '@grpc/grpc-js';
import { DirectoryRegistry } from '@deit-serve/registry';
import { publishTinyDeit } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Inference, outcome, startInference } from './support';

/**
 * Images waiting for the decoder hold places in the model's queue (DEIT_MAX_QUEUE_SIZE): under a
 * burst of large images the excess is refused with RESOURCE_EXHAUSTED at once, instead of piling up
 * before the queue where no limit applied (k6's stress.js found no call shed at 40 × 24 calls in
 * flight against a queue of 512, only latency growing to its timeouts).
 */
const QUEUE = 2;
const BURST = 8;

describe('image decoding counts against the queue limit', () => {
  let inference: Inference;
  let photo: Buffer;

  beforeAll(async () => {
    const registryDir = mkdtempSync(join(tmpdir(), 'deit-e2e-decode-backlog-'));
    await publishTinyDeit(await DirectoryRegistry.open(registryDir, { create: true }), 'tiny', { seed: 3 });
    inference = await startInference(registryDir, { DEIT_MAX_QUEUE_SIZE: String(QUEUE) });
    // A 12 MP noise JPEG: tens of milliseconds to decode, so a burst overlaps in the decoder.
    const width = 4000;
    const height = 3000;
    const noise = Buffer.alloc(width * height * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    photo = await sharp(noise, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toBuffer();
  }, 120_000);

  afterAll(() => inference?.close());

  it(`refuses what exceeds ${QUEUE} places of a burst of ${BURST} large images, serves the rest, then serves again`, async () => {
    const results = await Promise.all(
      Array.from({ length: BURST }, () => outcome(inference.client, { image: photo, topK: 1 })),
    );
    const codes = results.map((r) => r.code);
    const served = codes.filter((c) => c === status.OK).length;
    const refused = results.filter((r) => r.code === status.RESOURCE_EXHAUSTED);
    expect(served + refused.length, JSON.stringify(results)).toBe(BURST);
    expect(refused.length).toBeGreaterThanOrEqual(BURST - QUEUE - 1);
    expect(served).toBeGreaterThanOrEqual(QUEUE);
    expect(refused[0]?.details).toMatch(/queue full \(2 requests waiting\)/);
    // The places are given back: once the burst is over, a call is served again.
    expect((await outcome(inference.client, { image: photo, topK: 1 })).code).toBe(status.OK);
  }, 120_000);
});
