/**
 * The channel between the trainer and a job running in a Kubernetes Job's pod, which cannot reach the
 * trainer's SQLite store (a ReadWriteOnce volume of the trainer's pod). Both mount a ReadWriteMany work
 * volume; each job has a folder there (`<work dir>/jobs/<job id>`) with
 *
 * - `job.json`: what to run (job id, kind, spec), written once by the trainer before it creates the Job;
 * - `events.jsonl`: what happened, appended by the pod one JSON line per record ({@link JobFileRecord}),
 *   each line in one write; records that must survive a crash (start, checkpoint, done, failed) are
 *   fsynced. The trainer tails it into the store. A pod restarted by Kubernetes reads it to resume: its
 *   attempt number and the last checkpoint;
 * - `events.offset`: how far the trainer has applied the event file, so that a restarted trainer
 *   neither loses nor repeats records;
 * - the job function's own files (checkpoints), as under the process runner.
 *
 * Network file systems give no cross-client guarantee for appends: the one writer at a time is the
 * Job (one pod at once, `parallelism: 1`), and readers take only complete lines (a partial last line
 * waits for its newline; a line torn by a crashed pod is ended by the next writer and skipped).
 */
import { InvalidArgumentError } from '@deit-serve/core';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { JobAbortReason, JobReporter, ResumePoint } from './job-function';
import type { EvalResult, JobProgress } from './job';

export const JOB_FILE = 'job.json';
export const EVENTS_FILE = 'events.jsonl';
export const EVENTS_OFFSET_FILE = 'events.offset';
export const JOB_FILE_VERSION = 1;

/** The job folder under a work directory, the same layout as the process runner's. */
export function jobFolder(workDir: string, jobId: string): string {
  if (jobId === '' || jobId.includes('/') || jobId === '.' || jobId === '..') {
    throw new InvalidArgumentError(`job id ${JSON.stringify(jobId)} cannot name a folder`);
  }
  return join(workDir, 'jobs', jobId);
}

export interface JobFile {
  readonly version: typeof JOB_FILE_VERSION;
  readonly jobId: string;
  readonly kind: string;
  readonly spec: unknown;
}

export type JobFileRecord =
  /** A pod began an attempt (1, 2... across pod restarts), resuming from `resumeFrom` when given. */
  | {
      readonly type: 'start';
      readonly attempt: number;
      readonly pod?: string;
      readonly resumeFrom?: ResumePoint;
      readonly time: number;
    }
  | { readonly type: 'progress'; readonly progress: JobProgress }
  | { readonly type: 'eval'; readonly eval: EvalResult }
  | { readonly type: 'checkpoint'; readonly path: string; readonly epoch: number }
  | { readonly type: 'log'; readonly message: string }
  | { readonly type: 'backend'; readonly name: string }
  | { readonly type: 'done'; readonly result: unknown }
  /** `permanent`: retrying cannot help (bad spec, missing model); the pod exits so that the Job stops. */
  | { readonly type: 'failed'; readonly error: string; readonly permanent: boolean }
  /** Asked to stop (SIGTERM: Job deleted, pod evicted); the job function wrote a checkpoint first. */
  | { readonly type: 'stopped'; readonly reason: JobAbortReason };

const RECORD_TYPES: ReadonlySet<string> = new Set<JobFileRecord['type']>([
  'start',
  'progress',
  'eval',
  'checkpoint',
  'log',
  'backend',
  'done',
  'failed',
  'stopped',
]);

const DURABLE: ReadonlySet<JobFileRecord['type']> = new Set([
  'start',
  'checkpoint',
  'done',
  'failed',
  'stopped',
]);

/** Writes `data` to `path` durably and atomically (temporary file, fsync, rename). */
function writeAtomic(path: string, data: string): void {
  const temporary = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporary, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

/** The trainer's side: creates the job folder and writes what the pod is to run. */
export function writeJobFile(dir: string, file: Omit<JobFile, 'version'>): void {
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, JOB_FILE), `${JSON.stringify({ version: JOB_FILE_VERSION, ...file })}\n`);
}

/** The pod's side. Throws InvalidArgumentError for a missing or malformed file: retrying cannot help. */
export function readJobFile(dir: string): JobFile {
  const path = join(dir, JOB_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InvalidArgumentError(
      `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const file = parsed as Partial<JobFile> | null;
  if (
    file?.version !== JOB_FILE_VERSION ||
    typeof file.jobId !== 'string' ||
    typeof file.kind !== 'string' ||
    !('spec' in file)
  ) {
    throw new InvalidArgumentError(`${path} is not a version ${JOB_FILE_VERSION} job file`);
  }
  return file as JobFile;
}

/** Appends records to a job's event file; one writer at a time (the Job's one pod). */
export class EventFileWriter {
  private constructor(private fd: number | undefined) {}

  /**
   * Opens for appending (creating the file). A last line left without its newline by a pod that
   * died mid-write is ended here, so that it stays one bad line instead of spoiling the next record.
   */
  static open(path: string): EventFileWriter {
    const fd = openSync(path, 'a+');
    try {
      const size = fstatSync(fd).size;
      if (size > 0) {
        const last = Buffer.alloc(1);
        readSync(fd, last, 0, 1, size - 1);
        if (last[0] !== 0x0a) writeSync(fd, '\n');
      }
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return new EventFileWriter(fd);
  }

  /** One line in one write; start, checkpoint and terminal records are fsynced before this returns. */
  append(record: JobFileRecord): void {
    if (this.fd === undefined) throw new Error('event file is closed');
    writeSync(this.fd, `${JSON.stringify(record)}\n`);
    if (DURABLE.has(record.type)) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** A reporter for a job function that writes its reports to the event file. */
export function fileJobReporter(writer: EventFileWriter, echo?: (line: string) => void): JobReporter {
  return {
    progress: (progress) => writer.append({ type: 'progress', progress }),
    eval: (result) => writer.append({ type: 'eval', eval: result }),
    // Resolves once the line is fsynced: a restarted pod reads it and resumes from this checkpoint.
    checkpoint: (path, epoch) => {
      writer.append({ type: 'checkpoint', path, epoch });
      echo?.(`checkpoint written (epoch ${epoch}): ${path}`);
      return Promise.resolve();
    },
    log: (message) => {
      writer.append({ type: 'log', message });
      echo?.(message);
    },
    backend: (name) => writer.append({ type: 'backend', name }),
  };
}

export interface TailRead {
  readonly records: JobFileRecord[];
  /** Complete lines that are not records (a line torn by a crashed writer), for a warning. */
  readonly skipped: string[];
}

/** Largest chunk read at once; a longer backlog is read over several calls. */
const MAX_READ_BYTES = 8 * 1024 * 1024;

function parseLine(line: string): JobFileRecord | undefined {
  try {
    const value = JSON.parse(line) as { type?: unknown } | null;
    return typeof value?.type === 'string' && RECORD_TYPES.has(value.type)
      ? (value as JobFileRecord)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads an event file from a byte offset on: only complete lines, so a record being written (or not
 * yet visible in full on a network file system) is read whole on a later call. Opens the file per
 * read, which is what makes other clients' writes visible on NFS (close-to-open consistency).
 */
export class EventFileTail {
  constructor(
    private readonly path: string,
    private position = 0,
  ) {}

  /** Bytes consumed so far: persist it to resume the tail after a restart. */
  get offset(): number {
    return this.position;
  }

  read(): TailRead {
    const records: JobFileRecord[] = [];
    const skipped: string[] = [];
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records, skipped };
      throw error;
    }
    try {
      for (;;) {
        const size = fstatSync(fd).size;
        if (size < this.position) {
          skipped.push(
            `(${this.path} shrank from ${this.position} to ${size} bytes; reading on from its end)`,
          );
          this.position = size;
        }
        if (size === this.position) break;
        const length = Math.min(size - this.position, MAX_READ_BYTES);
        const buffer = Buffer.alloc(length);
        const read = readSync(fd, buffer, 0, length, this.position);
        const end = buffer.subarray(0, read).lastIndexOf(0x0a);
        if (end < 0) {
          if (length < MAX_READ_BYTES) break; // no complete line yet
          // Not a record of ours (they are far smaller): drop it rather than wait for it forever.
          skipped.push(`(${length} bytes without a line break at offset ${this.position})`);
          this.position += length;
          continue;
        }
        for (const line of buffer.subarray(0, end).toString('utf8').split('\n')) {
          if (line.trim() === '') continue;
          const record = parseLine(line);
          if (record) records.push(record);
          else skipped.push(line);
        }
        this.position += end + 1;
        if (read < length || length < MAX_READ_BYTES) break;
      }
    } finally {
      closeSync(fd);
    }
    return { records, skipped };
  }
}

/** Every complete record of an event file (none when it does not exist). */
export function readEventFile(path: string): JobFileRecord[] {
  const tail = new EventFileTail(path);
  const records: JobFileRecord[] = [];
  for (;;) {
    const before = tail.offset;
    records.push(...tail.read().records);
    if (tail.offset === before) return records;
  }
}

/** What a pod starting an attempt needs from the records of the attempts before it. */
export function resumeState(records: readonly JobFileRecord[]): {
  /** Attempts started before. */
  readonly attempts: number;
  /** The checkpoint recorded last. */
  readonly resumeFrom?: ResumePoint;
  /** A `done` record: an earlier attempt finished (its pod died before it could exit). */
  readonly done?: Extract<JobFileRecord, { type: 'done' }>;
} {
  let attempts = 0;
  let resumeFrom: ResumePoint | undefined;
  let done: Extract<JobFileRecord, { type: 'done' }> | undefined;
  for (const record of records) {
    if (record.type === 'start') attempts++;
    else if (record.type === 'checkpoint') resumeFrom = { path: record.path, epoch: record.epoch };
    else if (record.type === 'done') done = record;
  }
  return { attempts, ...(resumeFrom && { resumeFrom }), ...(done && { done }) };
}

/** The trainer's saved read position in a job's event file (0 when none). */
export function readEventsOffset(dir: string): number {
  try {
    const value = Number(readFileSync(join(dir, EVENTS_OFFSET_FILE), 'utf8').trim());
    return Number.isSafeInteger(value) && value >= 0 ? value : 0;
  } catch {
    return 0;
  }
}

export function writeEventsOffset(dir: string, offset: number): void {
  writeAtomic(join(dir, EVENTS_OFFSET_FILE), `${offset}\n`);
}
