import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DecodeAdmission, type DecodeGate } from './decode-admission';
import { decodeImage } from './decode';
import { PixelBudget } from './pixel-budget';

const tick = () => new Promise((r) => setImmediate(r));

describe('PixelBudget maxConcurrent', () => {
  it('admits at most maxConcurrent holders even when pixels remain', async () => {
    const budget = new PixelBudget(1_000, 2);
    const a = await budget.acquire(1);
    await budget.acquire(1);
    let third = false;
    const c = budget.acquire(1).then((release) => ((third = true), release));
    await tick();
    expect([third, budget.active, budget.queued]).toEqual([false, 2, 1]);
    a();
    (await c)();
    expect(third).toBe(true);
    expect(budget.active).toBe(1);
  });

  it('refuses a bad limit', () => {
    expect(() => new PixelBudget(10, 0)).toThrow(RangeError);
  });
});

describe('DecodeAdmission', () => {
  it('lets a small image in at once while large ones fill their lane and queue', async () => {
    const gate = new DecodeAdmission({ capacity: 100_000_000, smallPixels: 1_000_000, largeSlots: 2 });
    const large = [await gate.acquire(40_000_000), await gate.acquire(40_000_000)];
    const queued = gate.acquire(5_000_000);
    await tick();
    expect([gate.active('large'), gate.queued('large')]).toEqual([2, 1]);
    const small = await gate.acquire(28 * 28);
    expect([gate.laneOf(28 * 28), gate.active('small')]).toEqual(['small', 1]);
    small();
    large[0]();
    (await queued)();
    large[1]();
    expect([gate.active('large'), gate.queued('large'), gate.active('small')]).toEqual([0, 0, 0]);
  });

  it('bounds the small lane by its slots', async () => {
    const gate = new DecodeAdmission({ capacity: 1_000, smallPixels: 100, smallSlots: 1 });
    const first = await gate.acquire(10);
    let second = false;
    const waiting = gate.acquire(10).then((release) => ((second = true), release));
    await tick();
    expect([second, gate.queued('small')]).toEqual([false, 1]);
    first();
    (await waiting)();
    expect(second).toBe(true);
  });
});

/**
 * The head-of-line case with the real decoder: a 28×28 image sent while six 24 MP JPEGs decode. With
 * one first-come-first-served budget (the gate before lanes) the small decode waits for the libuv
 * threads the large ones hold; with DecodeAdmission it finishes before most of them.
 */
describe('decodeImage: small images do not queue behind large decodes', () => {
  async function largesDoneBeforeSmall(budget: DecodeGate): Promise<number> {
    const large = await sharp({
      create: { width: 6000, height: 4000, channels: 3, background: { r: 90, g: 140, b: 200 } },
    })
      .jpeg({ quality: 90 })
      .toBuffer();
    const small = await sharp({ create: { width: 28, height: 28, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const limits = { maxPixels: 30_000_000, budget };
    let largesDone = 0;
    const larges = Array.from({ length: 6 }, () => decodeImage(large, limits).then(() => (largesDone += 1)));
    await new Promise((r) => setTimeout(r, 20));
    const doneBeforeSmall = await decodeImage(small, limits).then(() => largesDone);
    await Promise.all(larges);
    return doneBeforeSmall;
  }

  it('finishes the small image before most large ones (and the single FIFO budget does not)', async () => {
    const lanes = await largesDoneBeforeSmall(new DecodeAdmission({ capacity: 200_000_000 }));
    const fifo = await largesDoneBeforeSmall(new PixelBudget(200_000_000));
    expect(fifo, 'FIFO budget: large decodes finished before the small one').toBeGreaterThanOrEqual(3);
    expect(lanes, 'lanes: large decodes finished before the small one').toBeLessThanOrEqual(1);
  }, 60_000);
});
