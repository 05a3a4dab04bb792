/**
 * One job in a Kubernetes Job's pod (the trainer's job mode): reads what to run from the job folder on
 * the shared work volume, runs the job function in this process with a reporter that appends to the
 * folder's event file, and tells Kubernetes through the exit code whether a retry can help. A pod that
 * Kubernetes restarts resumes from the last checkpoint its predecessors recorded there.
 */
import { DomainError, type ErrorKind } from '@deit-serve/core';
import { EXIT_CODE_PERMANENT_FAILURE } from '@deit-serve/k8s-jobs';
import { join } from 'node:path';
import { JobAbortedError, type JobContext, type JobFunction } from './job-function';
import {
  EVENTS_FILE,
  EventFileWriter,
  fileJobReporter,
  readEventFile,
  readJobFile,
  resumeState,
  type JobFile,
} from './job-files';

/** Exit codes of the pod's entry point, as the Job's podFailurePolicy reads them. */
export const POD_EXIT = {
  ok: 0,
  /** Counts against the Job's backoffLimit: Kubernetes starts another pod, which resumes. */
  failed: 1,
  /** The Job fails at once (podFailurePolicy FailJob): a bad spec fails the same way every time. */
  permanent: EXIT_CODE_PERMANENT_FAILURE,
  /** Stopped on SIGTERM after a checkpoint (Job deleted, pod evicted: evictions do not count). */
  stopped: 143,
} as const;

/** Error kinds a retry cannot fix; the others (UNAVAILABLE, INTERNAL, DATA_LOSS...) may be transient. */
const PERMANENT_KINDS: ReadonlySet<ErrorKind> = new Set<ErrorKind>([
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'FAILED_PRECONDITION',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
]);

export function isPermanentFailure(error: unknown): boolean {
  if (error instanceof DomainError) return PERMANENT_KINDS.has(error.kind);
  // Configuration problems (ConfigError of @deit-serve/config) stay until the Job is recreated.
  return error instanceof Error && error.name === 'ConfigError';
}

export interface PodJobOptions {
  /** The trainer's job id (DEIT_FINETUNE_JOB_ID); must match the job file. */
  readonly jobId: string;
  /** `<work dir>/jobs/<job id>` on the shared work volume. */
  readonly jobDir: string;
  /** Job kind → function: the pod runs the kinds its image knows. */
  readonly functions: Readonly<Record<string, JobFunction>>;
  /** Aborted (with a JobAbortedError) when the pod must stop; the entry point wires SIGTERM to it. */
  readonly signal: AbortSignal;
  /** The pod's name (HOSTNAME), recorded with each attempt. */
  readonly pod?: string;
  /** Lines for `kubectl logs`. */
  readonly log?: (line: string) => void;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs the job of `jobDir` once and returns the exit code for the pod. Never throws for the job's own
 * failures: they are recorded in the event file (a `failed` record) and mapped to an exit code.
 */
export async function runPodJob(options: PodJobOptions): Promise<number> {
  const log = options.log ?? (() => undefined);
  const eventsPath = join(options.jobDir, EVENTS_FILE);
  let writer: EventFileWriter;
  try {
    writer = EventFileWriter.open(eventsPath);
  } catch (error) {
    // Nowhere to report to: the work volume is missing or not writable. Kubernetes retries.
    log(`cannot open ${eventsPath}: ${describe(error)}`);
    return POD_EXIT.failed;
  }
  try {
    const previous = resumeState(readEventFile(eventsPath));
    if (previous.done) {
      log(`job ${options.jobId} already finished (attempt ${previous.attempts}); nothing to do`);
      return POD_EXIT.ok;
    }
    const attempt = previous.attempts + 1;
    writer.append({
      type: 'start',
      attempt,
      ...(options.pod !== undefined && { pod: options.pod }),
      ...(previous.resumeFrom && { resumeFrom: previous.resumeFrom }),
      time: Date.now(),
    });
    let file: JobFile;
    let fn: JobFunction;
    try {
      file = readJobFile(options.jobDir);
      if (file.jobId !== options.jobId) {
        throw new DomainError(
          'INVALID_ARGUMENT',
          `${options.jobDir} holds job ${file.jobId}, not ${options.jobId}`,
        );
      }
      const found = options.functions[file.kind];
      if (!found)
        throw new DomainError('INVALID_ARGUMENT', `this image runs no ${JSON.stringify(file.kind)} jobs`);
      fn = found;
    } catch (error) {
      writer.append({ type: 'failed', error: describe(error), permanent: true });
      log(`job ${options.jobId}: ${describe(error)}`);
      return POD_EXIT.permanent;
    }

    log(
      `job ${options.jobId} (${file.kind}), attempt ${attempt}` +
        (previous.resumeFrom ? `, resuming from the epoch ${previous.resumeFrom.epoch} checkpoint` : ''),
    );
    const ctx: JobContext = {
      jobId: options.jobId,
      spec: file.spec,
      workDir: options.jobDir,
      ...(previous.resumeFrom && { resumeFrom: previous.resumeFrom }),
      attempt,
      signal: options.signal,
      report: fileJobReporter(writer, log),
    };
    try {
      const result: unknown = await fn(ctx);
      writer.append({ type: 'done', result: result ?? null });
      log(`job ${options.jobId} done`);
      return POD_EXIT.ok;
    } catch (error) {
      if (options.signal.aborted) {
        const reason =
          options.signal.reason instanceof JobAbortedError ? options.signal.reason.reason : 'shutdown';
        writer.append({ type: 'stopped', reason });
        log(`job ${options.jobId} stopped (${reason})`);
        return POD_EXIT.stopped;
      }
      const permanent = isPermanentFailure(error);
      writer.append({ type: 'failed', error: describe(error), permanent });
      log(
        `job ${options.jobId} failed${permanent ? ' (permanently)' : ''}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
      return permanent ? POD_EXIT.permanent : POD_EXIT.failed;
    }
  } finally {
    writer.close();
  }
}
