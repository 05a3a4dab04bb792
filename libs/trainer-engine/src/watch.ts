/**
 * A job's event stream, for WatchJob and `deit jobs watch`: the current state first (and the latest
 * progress of a live job), then every new event until the job ends. Built on the store alone, so it
 * works whichever process runs the job: in-process writes wake it at once, others are polled.
 */
import { Observable } from 'rxjs';
import { isTerminal, type JobEvent } from './job';
import type { JobStore } from './job-store';

export const DEFAULT_WATCH_POLL_MS = 250;

export interface WatchOptions {
  /** How often to look for events written by other processes. */
  readonly pollIntervalMs?: number;
  /** Ends the stream quietly. */
  readonly signal?: AbortSignal;
}

/**
 * Reads the job at once (so an unknown id throws NotFoundError here, not on the first `next()`). The
 * opening snapshot events carry the seq of the newest stored event; later events carry their own.
 */
export function watchJob(
  store: JobStore,
  jobId: string,
  options: WatchOptions = {},
): AsyncIterable<JobEvent> {
  const { job, lastSeq } = store.snapshot(jobId);
  const pollMs = options.pollIntervalMs ?? DEFAULT_WATCH_POLL_MS;
  const { signal } = options;

  async function* events(): AsyncGenerator<JobEvent> {
    const time = job.updatedAt;
    yield {
      jobId,
      seq: lastSeq,
      time,
      body: { type: 'state', state: job.state, ...(job.error !== undefined && { error: job.error }) },
    };
    if (isTerminal(job.state)) return;
    if (job.progress) yield { jobId, seq: lastSeq, time, body: { type: 'progress', progress: job.progress } };

    let wake: (() => void) | undefined;
    const unsubscribe = store.subscribe((change) => {
      if (change.jobId === jobId) wake?.();
    });
    const onAbort = (): void => wake?.();
    signal?.addEventListener('abort', onAbort);
    try {
      let after = lastSeq;
      while (!signal?.aborted) {
        const batch = store.events(jobId, after);
        for (const event of batch) {
          yield event;
          after = event.seq;
          if (event.body.type === 'state' && isTerminal(event.body.state)) return;
        }
        if (batch.length > 0) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      signal?.removeEventListener('abort', onAbort);
    }
  }
  return { [Symbol.asyncIterator]: () => events() };
}

/** {@link watchJob} as an Observable (NestJS server streaming); unsubscribing stops the polling. */
export function watchJob$(
  store: JobStore,
  jobId: string,
  options: Omit<WatchOptions, 'signal'> = {},
): Observable<JobEvent> {
  return new Observable<JobEvent>((subscriber) => {
    const controller = new AbortController();
    let iterable: AsyncIterable<JobEvent>;
    try {
      iterable = watchJob(store, jobId, { ...options, signal: controller.signal });
    } catch (error) {
      subscriber.error(error);
      return undefined;
    }
    void (async () => {
      try {
        for await (const event of iterable) {
          if (subscriber.closed) break;
          subscriber.next(event);
        }
        subscriber.complete();
      } catch (error) {
        subscriber.error(error);
      }
    })();
    return () => controller.abort();
  });
}
