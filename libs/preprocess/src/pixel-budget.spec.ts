import { DomainError } from '@deit-serve/core';
import { describe, expect, it } from 'vitest';
import { PixelBudget } from './pixel-budget';

const tick = () => new Promise((r) => setImmediate(r));

describe('PixelBudget', () => {
  it('lets decodes in while they fit and queues the rest in arrival order', async () => {
    const budget = new PixelBudget(100);
    const releaseA = await budget.acquire(60);
    const order: string[] = [];
    const b = budget.acquire(50).then((release) => (order.push('b'), release));
    const c = budget.acquire(10).then((release) => (order.push('c'), release));
    await tick();
    // c would fit, but b came first: no overtaking, so a large image is never starved.
    expect(order).toEqual([]);
    expect([budget.inUse, budget.queued]).toEqual([60, 2]);
    releaseA();
    const [releaseB, releaseC] = await Promise.all([b, c]);
    expect(order).toEqual(['b', 'c']);
    expect(budget.inUse).toBe(60);
    releaseB();
    releaseB(); // idempotent
    releaseC();
    expect(budget.inUse).toBe(0);
  });

  it('admits an image larger than the budget once it is alone', async () => {
    const budget = new PixelBudget(100);
    const small = await budget.acquire(1);
    let admitted = false;
    const huge = budget.acquire(10_000).then((release) => ((admitted = true), release));
    await tick();
    expect(admitted).toBe(false);
    small();
    (await huge)();
    expect(admitted).toBe(true);
    expect(budget.inUse).toBe(0);
  });

  it('gives up waiting when the signal aborts, as ABORTED, and lets those behind it in', async () => {
    const budget = new PixelBudget(100);
    const held = await budget.acquire(90);
    const controller = new AbortController();
    const waiting = budget.acquire(50, controller.signal);
    const behind = budget.acquire(5);
    await tick();
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ kind: 'ABORTED' });
    await expect(waiting).rejects.toBeInstanceOf(DomainError);
    (await behind)();
    held();
    expect([budget.inUse, budget.queued]).toEqual([0, 0]);
    await expect(budget.acquire(1, AbortSignal.abort())).rejects.toMatchObject({ kind: 'ABORTED' });
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new PixelBudget(0)).toThrow(RangeError);
  });
});
