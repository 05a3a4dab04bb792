import { DomainError } from '@deit-serve/core';

/**
 * How many pixels may be decoding at once, across all requests. Each decode holds its declared
 * width × height from the moment its header is accepted until its raster is out; others wait their
 * turn in arrival order. Memory then stays bounded however many large images arrive together, and
 * a glibc heap grown by a burst of them cannot grow further with the next burst.
 */
export class PixelBudget {
  private used = 0;
  private holders = 0;
  private readonly waiting: { pixels: number; grant: () => void }[] = [];

  /**
   * @param capacity pixels decoding at once
   * @param maxConcurrent decodes at once, whatever their size (each occupies a libuv thread)
   */
  constructor(
    readonly capacity: number,
    readonly maxConcurrent = Number.POSITIVE_INFINITY,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    if (!(maxConcurrent >= 1) || (Number.isFinite(maxConcurrent) && !Number.isSafeInteger(maxConcurrent))) {
      throw new RangeError(`maxConcurrent must be a positive integer, got ${maxConcurrent}`);
    }
  }

  /** Decodes holding pixels now. */
  get active(): number {
    return this.holders;
  }

  /** Pixels held now. */
  get inUse(): number {
    return this.used;
  }

  /** Decodes waiting for room. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Resolves with a release function once `pixels` fit (an image larger than the whole budget waits
   * until it is alone). Rejects with ABORTED (or the signal's reason, when that is a DomainError) if
   * the signal is aborted while waiting.
   */
  async acquire(pixels: number, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw abortError(signal);
    const weight = Math.min(Math.max(1, Math.ceil(pixels)), this.capacity);
    if (this.waiting.length === 0 && this.fits(weight)) {
      this.take(weight);
      return this.releaser(weight);
    }
    await new Promise<void>((resolve, reject) => {
      const entry = { pixels: weight, grant: resolve };
      this.waiting.push(entry);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiting.indexOf(entry);
          if (i < 0) return; // granted already
          this.waiting.splice(i, 1);
          reject(abortError(signal));
          this.drain(); // a large waiter leaving may let smaller ones behind it in
        },
        { once: true },
      );
    });
    return this.releaser(weight);
  }

  private releaser(weight: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= weight;
      this.holders -= 1;
      this.drain();
    };
  }

  private fits(weight: number): boolean {
    return this.used + weight <= this.capacity && this.holders < this.maxConcurrent;
  }

  private take(weight: number): void {
    this.used += weight;
    this.holders += 1;
  }

  /** Grants waiters in order while the first one fits (first come, first served: no starvation). */
  private drain(): void {
    for (let next = this.waiting[0]; next && this.fits(next.pixels); next = this.waiting[0]) {
      this.waiting.shift();
      this.take(next.pixels);
      next.grant();
    }
  }
}

function abortError(signal: AbortSignal): DomainError {
  const reason: unknown = signal.reason;
  if (reason instanceof DomainError) return reason;
  return new DomainError('ABORTED', 'request cancelled while waiting to decode its image', { cause: reason });
}
