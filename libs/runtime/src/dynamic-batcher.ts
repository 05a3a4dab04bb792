/**
 * Per-model dynamic batching with Triton's semantics (`max_batch_size`, `max_queue_delay`,
 * `max_queue_size`, per-request deadlines). One batch executes at a time: onnxruntime already spreads
 * a batch over every core, so a second concurrent run would only contend; meanwhile the next batch
 * fills.
 */
import { DomainError, ResourceExhaustedError } from '@deit-serve/core';

export interface BatchStats {
  readonly size: number;
  /** Per item, submit → batch start. */
  readonly queueMs: readonly number[];
  readonly computeMs: number;
  /** Whether `execute` succeeded. */
  readonly ok: boolean;
}

export interface DynamicBatcherOptions<Item, Result> {
  /** Shown in error messages (e.g. `deit-tiny@3`). */
  readonly name?: string;
  readonly maxBatchSize: number;
  /** Longest the oldest queued item waits for a batch to fill; 0 still gathers same-tick submits. */
  readonly maxQueueDelayMs: number;
  /** Items waiting (not executing) beyond which submits fail with RESOURCE_EXHAUSTED. */
  readonly maxQueueSize: number;
  /** Must return one result per item, in order. */
  readonly execute: (items: readonly Item[]) => Promise<readonly Result[]>;
  /** Metrics hook, called once per executed batch; its errors are ignored. */
  readonly onBatch?: (stats: BatchStats) => void;
}

export interface SubmitOptions {
  /** Epoch milliseconds (`Date.now()` clock) after which the caller no longer wants the result. */
  readonly deadline?: number;
  readonly signal?: AbortSignal;
  /** The place `reserve` held for this item: the item takes it instead of needing room of its own. */
  readonly place?: QueuePlace;
}

/** A place in a batcher's queue held for an item still being prepared (see `DynamicBatcher.reserve`). */
export interface QueuePlace {
  /** Gives the place back; later calls do nothing. `submit` calls it for the place it is given. */
  release(): void;
}

export interface BatchedResult<Result> {
  readonly result: Result;
  readonly queueMs: number;
  readonly computeMs: number;
  readonly batchSize: number;
}

interface Pending<Item, Result> {
  readonly item: Item;
  readonly deadline?: number;
  readonly signal?: AbortSignal;
  readonly enqueuedAt: number;
  readonly resolve: (value: BatchedResult<Result>) => void;
  readonly reject: (error: unknown) => void;
  onAbort?: () => void;
}

export class DynamicBatcher<Item, Result> {
  private readonly queue: Pending<Item, Result>[] = [];
  private executing = false;
  private closed = false;
  private timer?: { cancel(): void };
  private timerDueAt = Infinity;
  private idleWaiters: (() => void)[] = [];
  private readonly label: string;
  /** Places held by `reserve` for items not submitted yet. */
  private reserved = 0;

  constructor(private readonly options: DynamicBatcherOptions<Item, Result>) {
    const { maxBatchSize, maxQueueDelayMs, maxQueueSize } = options;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
      throw new RangeError(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
    }
    if (!Number.isFinite(maxQueueDelayMs) || maxQueueDelayMs < 0) {
      throw new RangeError(`maxQueueDelayMs must be a finite number ≥ 0, got ${maxQueueDelayMs}`);
    }
    if (!Number.isInteger(maxQueueSize) || maxQueueSize < 1) {
      throw new RangeError(`maxQueueSize must be a positive integer, got ${maxQueueSize}`);
    }
    this.label = options.name ? `batcher "${options.name}"` : 'batcher';
  }

  /** Items waiting for a batch (the pending-requests gauge). */
  get queueLength(): number {
    return this.queue.length;
  }

  get isExecuting(): boolean {
    return this.executing;
  }

  /**
   * Throws the RESOURCE_EXHAUSTED a submit would get now. Lets a caller refuse before it spends work
   * (decoding, preprocessing) on an item that cannot be queued; the submit still decides.
   */
  assertRoom(): void {
    const full = this.fullError();
    if (full) throw full;
  }

  /**
   * Holds a place in the queue for an item still being prepared (an image waiting for the decoder or
   * decoding), so that such items count against `maxQueueSize` as queued ones do and an overloaded
   * service refuses new work with RESOURCE_EXHAUSTED instead of letting it pile up before the queue.
   * Throws that error when the queue is full. Pass the place to `submit`, or release it if the item
   * is abandoned.
   */
  reserve(): QueuePlace {
    this.assertRoom();
    this.reserved++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.reserved--;
      },
    };
  }

  /** Places held by `reserve` and not yet submitted or released. */
  get reservedPlaces(): number {
    return this.reserved;
  }

  private fullError(): ResourceExhaustedError | undefined {
    if (this.queue.length + this.reserved < this.options.maxQueueSize) return undefined;
    // Dead entries would otherwise hold slots until the next dispatch.
    this.dropDead();
    if (this.queue.length + this.reserved < this.options.maxQueueSize) return undefined;
    return new ResourceExhaustedError(
      `${this.label}: queue full (${this.options.maxQueueSize} requests waiting); retry later`,
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }

  submit(item: Item, options: SubmitOptions = {}): Promise<BatchedResult<Result>> {
    const { deadline, signal, place } = options;
    // A reserved place becomes this item's entry below (or is freed by a refusal): either way the
    // reservation ends here, synchronously, so no other item can take the place in between.
    place?.release();
    if (this.closed) {
      return Promise.reject(new DomainError('UNAVAILABLE', `${this.label} is closed`));
    }
    if (signal?.aborted) return Promise.reject(abortError(signal, this.label));
    if (deadline !== undefined && deadline <= Date.now()) {
      return Promise.reject(deadlineError(this.label));
    }
    const full = place === undefined ? this.fullError() : undefined;
    if (full) return Promise.reject(full);

    return new Promise<BatchedResult<Result>>((resolve, reject) => {
      const entry: Pending<Item, Result> = {
        item,
        deadline,
        signal,
        enqueuedAt: performance.now(),
        resolve,
        reject,
      };
      if (signal) {
        entry.onAbort = () => this.removeQueued(entry, abortError(signal, this.label));
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.queue.push(entry);
      this.pump({ justQueued: true });
    });
  }

  /** Resolves once nothing is queued or executing. */
  drain(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * New submits fail with UNAVAILABLE; queued work runs without waiting out the queue delay (no more
   * items are coming to fill it). Resolves when drained. Idempotent.
   */
  close(): Promise<void> {
    this.closed = true;
    this.pump();
    return this.drain();
  }

  /**
   * Starts a batch if one is due, otherwise makes sure a timer will start it when it is. Right after a
   * submit only a full batch starts synchronously: a partial one waits at least for the end of this
   * round of I/O callbacks (setImmediate — a 0 ms setTimeout would cost a millisecond), so that with
   * maxQueueDelayMs 0 the requests that arrived together still share a batch.
   */
  private pump({ justQueued = false } = {}): void {
    if (this.executing) return; // the running batch pumps again when it ends
    this.dropDead();
    if (this.queue.length === 0) {
      this.clearTimer();
      this.settleIdle();
      return;
    }
    const oldest = this.queue[0];
    const dueAt = this.closed ? -Infinity : oldest.enqueuedAt + this.options.maxQueueDelayMs;
    if (this.queue.length >= this.options.maxBatchSize || (!justQueued && dueAt <= performance.now())) {
      this.clearTimer();
      void this.runBatch();
      return;
    }
    if (this.timer && this.timerDueAt === dueAt) return;
    this.clearTimer();
    this.timerDueAt = dueAt;
    const fire = () => {
      this.timer = undefined;
      this.timerDueAt = Infinity;
      this.pump();
    };
    const wait = dueAt - performance.now();
    if (wait <= 0) {
      const immediate = setImmediate(fire);
      this.timer = { cancel: () => clearImmediate(immediate) };
    } else {
      const timeout = setTimeout(fire, wait);
      this.timer = { cancel: () => clearTimeout(timeout) };
    }
  }

  /** Never rejects: every outcome is delivered to the batch's own callers. */
  private async runBatch(): Promise<void> {
    this.executing = true;
    const batch = this.queue.splice(0, this.options.maxBatchSize);
    const start = performance.now();
    const queueMs = batch.map((p) => start - p.enqueuedAt);
    for (const p of batch) this.detach(p); // computing now; aborting can no longer save any work
    let ok = false;
    let computeMs = 0;
    try {
      const results = await this.options.execute(batch.map((p) => p.item));
      computeMs = performance.now() - start;
      if (results.length !== batch.length) {
        throw new DomainError(
          'INTERNAL',
          `${this.label}: execute returned ${results.length} results for ${batch.length} items`,
        );
      }
      ok = true;
      batch.forEach((p, i) =>
        p.resolve({ result: results[i], queueMs: queueMs[i], computeMs, batchSize: batch.length }),
      );
    } catch (error) {
      computeMs ||= performance.now() - start;
      for (const p of batch) p.reject(error);
    } finally {
      this.executing = false;
    }
    try {
      this.options.onBatch?.({ size: batch.length, queueMs, computeMs, ok });
    } catch {
      // Metrics must never fail requests or stall the queue.
    }
    this.pump();
  }

  /** Deadline-expired and aborted entries leave before compute, so `execute` never sees them. */
  private dropDead(): void {
    const now = Date.now();
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const p = this.queue[i];
      if (p.signal?.aborted) this.rejectAt(i, abortError(p.signal, this.label));
      else if (p.deadline !== undefined && p.deadline <= now) this.rejectAt(i, deadlineError(this.label));
    }
  }

  private removeQueued(entry: Pending<Item, Result>, error: DomainError): void {
    const i = this.queue.indexOf(entry);
    if (i < 0) return;
    this.rejectAt(i, error);
    this.pump(); // the queue may now be empty (settle drain, drop the timer)
  }

  private rejectAt(index: number, error: DomainError): void {
    const [p] = this.queue.splice(index, 1);
    this.detach(p);
    p.reject(error);
  }

  private detach(p: Pending<Item, Result>): void {
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    p.onAbort = undefined;
  }

  private clearTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.timerDueAt = Infinity;
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && !this.executing;
  }

  private settleIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function deadlineError(label: string): DomainError {
  return new DomainError('DEADLINE_EXCEEDED', `${label}: deadline passed while queued`);
}

/**
 * The core vocabulary has no CANCELLED (a cancelled caller reads no status anyway). A DomainError
 * reason is passed through; `AbortSignal.timeout()` means a deadline; anything else is ABORTED.
 */
function abortError(signal: AbortSignal, label: string): DomainError {
  const reason: unknown = signal.reason;
  if (reason instanceof DomainError) return reason;
  if (reason instanceof DOMException && reason.name === 'TimeoutError') {
    return new DomainError('DEADLINE_EXCEEDED', `${label}: request timed out while queued`, {
      cause: reason,
    });
  }
  return new DomainError('ABORTED', `${label}: request cancelled while queued`, { cause: reason });
}
