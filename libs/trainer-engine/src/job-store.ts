/**
 * The durable job store: one SQLite file (better-sqlite3) holding jobs, their append-only event log
 * and their checkpoints. Every state change and its event are written in one transaction, so the log
 * and the jobs table never disagree, and several processes may share the file (WAL, busy timeout).
 */
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@deit-serve/core';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  JOB_STATES,
  JOB_TRANSITIONS,
  isTerminal,
  type Checkpoint,
  type JobEvent,
  type JobEventBody,
  type JobProgress,
  type JobRecord,
  type JobState,
} from './job';
import { decodePageToken, encodePageToken } from './page-token';
import { assertSameRequest } from './request-id';

/** Ordered; each runs once, in a transaction, and bumps `PRAGMA user_version`. Never edit a shipped one. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN (${JOB_STATES.map((s) => `'${s}'`).join(', ')})),
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL,
    progress TEXT,
    error TEXT,
    result TEXT,
    resumes INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    backend TEXT,
    request_id TEXT UNIQUE,
    owner TEXT,
    lease_expires_at INTEGER
  );
  CREATE INDEX jobs_by_state ON jobs (state, num);
  CREATE TABLE job_events (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE checkpoints (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    epoch INTEGER NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX checkpoints_by_job ON checkpoints (job_id, num);
  `,
  `ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;`,
];

export const JOB_STORE_SCHEMA_VERSION = MIGRATIONS.length;

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

interface JobRow {
  num: number;
  id: string;
  kind: string;
  spec: string;
  state: JobState;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  progress: string | null;
  error: string | null;
  result: string | null;
  resumes: number;
  attempts: number;
  retries: number;
  backend: string | null;
  request_id: string | null;
  owner: string | null;
  lease_expires_at: number | null;
}

interface EventRow {
  job_id: string;
  seq: number;
  time: number;
  event: string;
}

interface CheckpointRow {
  job_id: string;
  epoch: number;
  path: string;
  created_at: number;
}

export interface JobStoreOptions {
  /**
   * `FULL` (default) fsyncs the WAL at every commit: an acknowledged StartFineTune or state change
   * survives power loss, not only a crash of the process (which `NORMAL` already survives). Writes are
   * few (state changes, throttled progress), so the fsync costs nothing that matters.
   */
  readonly synchronous?: 'NORMAL' | 'FULL';
  /** How long a writer waits for another process's write lock before SQLITE_BUSY. */
  readonly busyTimeoutMs?: number;
  /** Injectable clock for tests. */
  readonly now?: () => number;
}

export interface CreateJobInput<Spec> {
  readonly kind: string;
  readonly spec: Spec;
  /**
   * Idempotency key: a second create with the same key and the same kind and spec returns the first
   * job; with another kind or spec it is FAILED_PRECONDITION (a reused key is a client bug, and
   * answering with the old job would hide that the new request was never run).
   */
  readonly requestId?: string;
}

export interface ListJobsQuery {
  /** Empty or absent: every state. */
  readonly states?: readonly JobState[];
  /** 0 or absent: {@link DEFAULT_PAGE_SIZE}. */
  readonly pageSize?: number;
  readonly pageToken?: string;
}

export interface TransitionOptions {
  /** Refuse (FAILED_PRECONDITION) unless the job is held by this runner. */
  readonly expectOwner?: string;
  readonly error?: string;
  readonly result?: unknown;
  /** Appended as a message event after the state event. */
  readonly message?: string;
  /** RUNNING → QUEUED after a retryable failure: counts against the job's retry budget. */
  readonly retry?: boolean;
}

export type StoreChange =
  | { readonly type: 'created'; readonly jobId: string }
  | { readonly type: 'event'; readonly jobId: string; readonly seq: number };

export class JobStore {
  private readonly listeners = new Set<(change: StoreChange) => void>();
  private readonly now: () => number;

  private constructor(
    private readonly db: Database.Database,
    options: JobStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Opens (creating folders, file and schema as needed) and migrates the store at `path`. */
  static open(path: string, options: JobStoreOptions = {}): JobStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
      db.pragma('foreign_keys = ON');
      migrate(db);
    } catch (error) {
      db.close();
      throw error;
    }
    return new JobStore(db, options);
  }

  close(): void {
    this.listeners.clear();
    if (this.db.open) this.db.close();
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** In-process change notifications (other processes' writes are seen by polling). */
  subscribe(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  create<Spec>(input: CreateJobInput<Spec>): { job: JobRecord<Spec>; created: boolean } {
    if (input.kind === '') throw new InvalidArgumentError('job kind is empty');
    const requestId = input.requestId === '' ? undefined : input.requestId;
    const outcome = this.immediate(() => {
      if (requestId !== undefined) {
        const existing = this.db.prepare('SELECT * FROM jobs WHERE request_id = ?').get(requestId) as
          JobRow | undefined;
        if (existing) {
          assertSameRequest(
            { id: existing.id, kind: existing.kind, spec: existing.spec, requestId },
            { kind: input.kind, spec: input.spec },
          );
          return { row: existing, created: false };
        }
      }
      const id = randomUUID();
      const now = this.now();
      this.db
        .prepare(
          `INSERT INTO jobs (id, kind, spec, state, created_at, updated_at, request_id)
           VALUES (?, ?, ?, 'QUEUED', ?, ?, ?)`,
        )
        .run(id, input.kind, JSON.stringify(input.spec), now, now, requestId ?? null);
      this.insertEvent(id, { type: 'state', state: 'QUEUED' }, now);
      return { row: this.row(id), created: true };
    });
    if (outcome.created) this.emit({ type: 'created', jobId: outcome.row.id });
    return { job: toRecord<Spec>(outcome.row), created: outcome.created };
  }

  /** Throws NotFoundError for an unknown id. */
  get<Spec = unknown, Result = unknown>(id: string): JobRecord<Spec, Result> {
    const job = this.find<Spec, Result>(id);
    if (!job) throw new NotFoundError(`job ${JSON.stringify(id)} not found`);
    return job;
  }

  find<Spec = unknown, Result = unknown>(id: string): JobRecord<Spec, Result> | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row && toRecord<Spec, Result>(row);
  }

  /** Newest first. */
  list(query: ListJobsQuery = {}): { jobs: JobRecord[]; nextPageToken: string } {
    const pageSize = query.pageSize ?? 0;
    if (!Number.isSafeInteger(pageSize) || pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
      throw new InvalidArgumentError(`page_size must be in [0, ${MAX_PAGE_SIZE}], got ${String(pageSize)}`);
    }
    const limit = pageSize === 0 ? DEFAULT_PAGE_SIZE : pageSize;
    const states = [...new Set(query.states ?? [])];
    for (const state of states) {
      if (!JOB_STATES.includes(state))
        throw new InvalidArgumentError(`unknown job state ${JSON.stringify(state)}`);
    }
    const before = query.pageToken ? decodePageToken(query.pageToken) : Number.MAX_SAFE_INTEGER;
    const stateFilter = states.length > 0 ? `AND state IN (${states.map(() => '?').join(', ')})` : '';
    const rows = this.db
      .prepare(`SELECT * FROM jobs WHERE num < ? ${stateFilter} ORDER BY num DESC LIMIT ?`)
      .all(before, ...states, limit + 1) as JobRow[];
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      jobs: page.map((row) => toRecord(row)),
      nextPageToken: rows.length > limit && last ? encodePageToken(last.num) : '',
    };
  }

  /**
   * A cancel request, as both runners answer it: QUEUED → CANCELLED at once; RUNNING → CANCELLING,
   * and `stopRunning` asks whoever runs it to stop; a CANCELLING job is asked again; an ended one is
   * FAILED_PRECONDITION. A job that moved between our read and our write (claimed or finished by
   * another process) is looked at again.
   */
  requestCancel(jobId: string, stopRunning: () => void): JobRecord {
    for (;;) {
      const job = this.get(jobId);
      try {
        switch (job.state) {
          case 'QUEUED':
            return this.transition(jobId, 'CANCELLED', { message: 'cancelled before it started' });
          case 'RUNNING': {
            const cancelling = this.transition(jobId, 'CANCELLING');
            stopRunning();
            return cancelling;
          }
          case 'CANCELLING':
            stopRunning();
            return job;
          case 'SUCCEEDED':
          case 'FAILED':
          case 'CANCELLED':
            throw new FailedPreconditionError(`job ${jobId} has already ended (${job.state})`);
        }
      } catch (error) {
        if (!(error instanceof FailedPreconditionError) || isTerminal(job.state)) throw error;
      }
    }
  }

  /**
   * Moves a job along {@link JOB_TRANSITIONS} and logs the state event, atomically. Throws
   * FAILED_PRECONDITION for an illegal move (or a job held by another runner than `expectOwner`).
   */
  transition<Spec = unknown, Result = unknown>(
    id: string,
    to: JobState,
    options: TransitionOptions = {},
  ): JobRecord<Spec, Result> {
    if (to === 'RUNNING') {
      throw new InvalidArgumentError(
        'jobs start through claimNext, which records the runner that holds them',
      );
    }
    const events: number[] = [];
    const row = this.immediate(() => {
      const current = this.row(id);
      assertTransition(current, to, options.expectOwner);
      const now = this.now();
      const terminal = isTerminal(to);
      this.db
        .prepare(
          `UPDATE jobs SET state = @to, updated_at = @now,
             finished_at = CASE WHEN @terminal THEN @now ELSE finished_at END,
             owner = CASE WHEN @keepOwner THEN owner ELSE NULL END,
             lease_expires_at = CASE WHEN @keepOwner THEN lease_expires_at ELSE NULL END,
             resumes = resumes + @resumed,
             retries = retries + @retried,
             error = COALESCE(@error, error),
             result = COALESCE(@result, result)
           WHERE id = @id`,
        )
        .run({
          id,
          to,
          now,
          terminal: terminal ? 1 : 0,
          keepOwner: to === 'CANCELLING' ? 1 : 0,
          resumed: to === 'QUEUED' ? 1 : 0,
          retried: to === 'QUEUED' && options.retry === true ? 1 : 0,
          error: options.error ?? null,
          result: options.result === undefined ? null : JSON.stringify(options.result),
        });
      events.push(
        this.insertEvent(
          id,
          { type: 'state', state: to, ...(options.error !== undefined && { error: options.error }) },
          now,
        ),
      );
      if (options.message !== undefined)
        events.push(this.insertEvent(id, { type: 'message', message: options.message }, now));
      return this.row(id);
    });
    for (const seq of events) this.emit({ type: 'event', jobId: id, seq });
    return toRecord<Spec, Result>(row);
  }

  /**
   * Atomically takes the oldest QUEUED job for `owner` (QUEUED → RUNNING, attempts + 1, lease set).
   * Exactly one caller wins a job, across connections and processes: the read and the update run in
   * one IMMEDIATE transaction, which holds the database's write lock.
   */
  claimNext<Spec = unknown>(
    owner: string,
    leaseMs: number,
    kinds?: readonly string[],
  ): JobRecord<Spec> | undefined {
    if (owner === '') throw new InvalidArgumentError('owner is empty');
    let seq = 0;
    const row = this.immediate(() => {
      const kindFilter = kinds ? `AND kind IN (${kinds.map(() => '?').join(', ')})` : '';
      const next = this.db
        .prepare(`SELECT id FROM jobs WHERE state = 'QUEUED' ${kindFilter} ORDER BY num LIMIT 1`)
        .get(...(kinds ?? [])) as { id: string } | undefined;
      if (!next) return undefined;
      const now = this.now();
      this.db
        .prepare(
          `UPDATE jobs SET state = 'RUNNING', owner = ?, lease_expires_at = ?, attempts = attempts + 1,
             started_at = COALESCE(started_at, ?), updated_at = ?
           WHERE id = ? AND state = 'QUEUED'`,
        )
        .run(owner, now + leaseMs, now, now, next.id);
      seq = this.insertEvent(next.id, { type: 'state', state: 'RUNNING' }, now);
      return this.row(next.id);
    });
    if (!row) return undefined;
    this.emit({ type: 'event', jobId: row.id, seq });
    return toRecord<Spec>(row);
  }

  /** Extends the lease of every RUNNING or CANCELLING job `owner` holds; returns how many. */
  renewLeases(owner: string, leaseMs: number): number {
    const now = this.now();
    return this.db
      .prepare(`UPDATE jobs SET lease_expires_at = ? WHERE owner = ? AND state IN ('RUNNING', 'CANCELLING')`)
      .run(now + leaseMs, owner).changes;
  }

  /** RUNNING or CANCELLING jobs held by someone other than `self`: candidates for recovery. */
  heldByOthers(self: string): JobRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM jobs WHERE state IN ('RUNNING', 'CANCELLING') AND (owner IS NULL OR owner != ?) ORDER BY num`,
      )
      .all(self) as JobRow[];
    return rows.map((row) => toRecord(row));
  }

  /** Jobs `owner` holds, as the store sees them (e.g. to notice a CANCELLING set by another process). */
  heldBy(owner: string): JobRecord[] {
    const rows = this.db
      .prepare(`SELECT * FROM jobs WHERE owner = ? AND state IN ('RUNNING', 'CANCELLING') ORDER BY num`)
      .all(owner) as JobRow[];
    return rows.map((row) => toRecord(row));
  }

  /** Latest progress on the job and a progress event, atomically. */
  setProgress(id: string, progress: JobProgress): JobEvent {
    const event = this.immediate(() => {
      const now = this.now();
      const changed = this.db
        .prepare('UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?')
        .run(JSON.stringify(progress), now, id).changes;
      if (changed === 0) throw new NotFoundError(`job ${JSON.stringify(id)} not found`);
      return {
        jobId: id,
        seq: this.insertEvent(id, { type: 'progress', progress }, now),
        time: new Date(now),
      };
    });
    this.emit({ type: 'event', jobId: id, seq: event.seq });
    return { ...event, body: { type: 'progress', progress } };
  }

  setBackend(id: string, backend: string): void {
    const changed = this.db
      .prepare('UPDATE jobs SET backend = ?, updated_at = ? WHERE id = ?')
      .run(backend, this.now(), id).changes;
    if (changed === 0) throw new NotFoundError(`job ${JSON.stringify(id)} not found`);
  }

  appendEvent(id: string, body: JobEventBody): JobEvent {
    const event = this.immediate(() => {
      this.row(id);
      const now = this.now();
      return { jobId: id, seq: this.insertEvent(id, body, now), time: new Date(now), body };
    });
    this.emit({ type: 'event', jobId: id, seq: event.seq });
    return event;
  }

  /** Events with seq > `afterSeq`, oldest first. */
  events(id: string, afterSeq = 0, limit = 1000): JobEvent[] {
    const rows = this.db
      .prepare('SELECT * FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(id, afterSeq, limit) as EventRow[];
    return rows.map((row) => ({
      jobId: row.job_id,
      seq: row.seq,
      time: new Date(row.time),
      body: JSON.parse(row.event) as JobEventBody,
    }));
  }

  /** The job and the seq of its newest event, read in one snapshot. */
  snapshot<Spec = unknown, Result = unknown>(id: string): { job: JobRecord<Spec, Result>; lastSeq: number } {
    return this.db.transaction(() => ({ job: this.get<Spec, Result>(id), lastSeq: this.lastSeq(id) }))();
  }

  recordCheckpoint(id: string, epoch: number, path: string): Checkpoint {
    if (!Number.isSafeInteger(epoch) || epoch < 0)
      throw new InvalidArgumentError(`checkpoint epoch ${epoch} is invalid`);
    const now = this.now();
    this.immediate(() => {
      this.row(id);
      this.db
        .prepare('INSERT INTO checkpoints (job_id, epoch, path, created_at) VALUES (?, ?, ?, ?)')
        .run(id, epoch, path, now);
    });
    return { jobId: id, epoch, path, createdAt: new Date(now) };
  }

  /** The checkpoint recorded last (not the highest epoch: a cancel may write one mid-epoch). */
  latestCheckpoint(id: string): Checkpoint | undefined {
    const row = this.db
      .prepare('SELECT * FROM checkpoints WHERE job_id = ? ORDER BY num DESC LIMIT 1')
      .get(id) as CheckpointRow | undefined;
    return row && toCheckpoint(row);
  }

  checkpoints(id: string): Checkpoint[] {
    const rows = this.db
      .prepare('SELECT * FROM checkpoints WHERE job_id = ? ORDER BY num')
      .all(id) as CheckpointRow[];
    return rows.map(toCheckpoint);
  }

  private lastSeq(id: string): number {
    const row = this.db.prepare('SELECT MAX(seq) AS seq FROM job_events WHERE job_id = ?').get(id) as {
      seq: number | null;
    };
    return row.seq ?? 0;
  }

  private row(id: string): JobRow {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    if (!row) throw new NotFoundError(`job ${JSON.stringify(id)} not found`);
    return row;
  }

  /** Inside a transaction: appends with the next seq and returns it. */
  private insertEvent(id: string, body: JobEventBody, time: number): number {
    const seq = this.lastSeq(id) + 1;
    this.db
      .prepare('INSERT INTO job_events (job_id, seq, time, event) VALUES (?, ?, ?, ?)')
      .run(id, seq, time, JSON.stringify(body));
    return seq;
  }

  /** BEGIN IMMEDIATE: the write lock is taken up front, so read-then-write races cannot happen. */
  private immediate<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private emit(change: StoreChange): void {
    for (const listener of this.listeners) listener(change);
  }
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new FailedPreconditionError(
      `job store schema version ${version} is newer than this trainer knows (${MIGRATIONS.length}); upgrade the trainer`,
    );
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] ?? '');
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

function assertTransition(row: JobRow, to: JobState, expectOwner: string | undefined): void {
  if (!JOB_TRANSITIONS[row.state].includes(to)) {
    const hint = isTerminal(row.state) ? ' (the job has ended)' : '';
    throw new FailedPreconditionError(`job ${row.id} is ${row.state}; it cannot become ${to}${hint}`);
  }
  if (expectOwner !== undefined && row.owner !== expectOwner) {
    throw new FailedPreconditionError(
      `job ${row.id} is held by ${row.owner ?? 'no runner'}, not ${expectOwner}`,
    );
  }
}

function toRecord<Spec = unknown, Result = unknown>(row: JobRow): JobRecord<Spec, Result> {
  const date = (ms: number | null): Date | undefined => (ms === null ? undefined : new Date(ms));
  const startedAt = date(row.started_at);
  const finishedAt = date(row.finished_at);
  const leaseExpiresAt = date(row.lease_expires_at);
  return {
    id: row.id,
    kind: row.kind,
    spec: JSON.parse(row.spec) as Spec,
    state: row.state,
    createdAt: new Date(row.created_at),
    ...(startedAt && { startedAt }),
    ...(finishedAt && { finishedAt }),
    updatedAt: new Date(row.updated_at),
    ...(row.progress !== null && { progress: JSON.parse(row.progress) as JobProgress }),
    ...(row.error !== null && { error: row.error }),
    ...(row.result !== null && { result: JSON.parse(row.result) as Result }),
    resumes: row.resumes,
    attempts: row.attempts,
    retries: row.retries,
    ...(row.backend !== null && { backend: row.backend }),
    ...(row.request_id !== null && { requestId: row.request_id }),
    ...(row.owner !== null && { owner: row.owner }),
    ...(leaseExpiresAt && { leaseExpiresAt }),
  };
}

function toCheckpoint(row: CheckpointRow): Checkpoint {
  return { jobId: row.job_id, epoch: row.epoch, path: row.path, createdAt: new Date(row.created_at) };
}
