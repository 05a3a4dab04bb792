import { DomainError } from '@deit-serve/core';
import { link, open, readFile, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { errorCode, isNotFound, randomSuffix, sleep } from './fs-util';

/** Prefix of the private file a lock record is written to before it is linked into place. */
export const LOCK_DRAFT_INFIX = '.new-';

export interface LockOptions {
  /** Give up after this long (ms). */
  timeoutMs: number;
  /**
   * A lock older than this (ms) is taken over. Holders keep locks for milliseconds (they only rename small
   * files), so a generous value only delays recovery after a crash on another host.
   */
  staleMs: number;
}

interface LockRecord {
  token: string;
  pid: number;
  host: string;
  acquired_at: number;
}

function isLockRecord(value: unknown): value is LockRecord {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    typeof record['token'] === 'string' &&
    typeof record['pid'] === 'number' &&
    typeof record['host'] === 'string' &&
    typeof record['acquired_at'] === 'number'
  );
}

async function readRecord(path: string): Promise<LockRecord | 'missing' | 'unreadable'> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    return isLockRecord(parsed) ? parsed : 'unreadable';
  } catch (error) {
    if (isNotFound(error)) return 'missing';
    // An empty or half-written record: the holder crashed between create and write, or is writing now.
    return 'unreadable';
  }
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return errorCode(error) === 'ESRCH';
  }
}

/**
 * Cross-process mutual exclusion by a lock file holding {token, pid, host, time}.
 *
 * The file appears whole: the record is written to a private file first and published by link(), which
 * fails when the lock exists. So a lock file without a readable record is never a holder at work but the
 * leftover of a failed write (a full disk, a crash, an older writer), and is stale at once. Otherwise a
 * lock is stale when its holder is a dead process on this host, or when it is older than `staleMs` (other
 * hosts sharing the volume cannot be asked). Takeover renames the stale file to a unique name first,
 * so that of several processes noticing the same stale lock only one removes it; if what it moved turns out
 * to be a fresh lock (someone else won in between), it is put back with link(), which never overwrites.
 */
export async function withFileLock<T>(
  path: string,
  options: LockOptions,
  action: () => Promise<T>,
): Promise<T> {
  const record: LockRecord = {
    token: randomSuffix(),
    pid: process.pid,
    host: hostname(),
    acquired_at: Date.now(),
  };
  const deadline = Date.now() + options.timeoutMs;
  let delay = 5;
  for (;;) {
    record.acquired_at = Date.now();
    if (await createLock(path, record)) break;
    await takeOverIfStale(path, options.staleMs);
    if (Date.now() > deadline) {
      throw new DomainError(
        'ABORTED',
        `could not lock ${path} within ${options.timeoutMs} ms: another registry writer holds it`,
      );
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 100);
  }
  try {
    return await action();
  } finally {
    // Remove only our own lock: if it was taken over as stale, the file now belongs to someone else.
    const current = await readRecord(path);
    if (typeof current === 'object' && current.token === record.token) await rm(path, { force: true });
  }
}

async function takeOverIfStale(path: string, staleMs: number): Promise<void> {
  const seen = await readRecord(path);
  if (seen === 'missing') return;
  let stale: boolean;
  if (seen === 'unreadable') {
    stale = true; // see withFileLock: no live holder leaves a lock without a record
  } else {
    stale =
      Date.now() - seen.acquired_at > staleMs ||
      (seen.host === hostname() && seen.pid !== process.pid && processIsGone(seen.pid));
  }
  if (!stale) return;
  const moved = `${path}.stale-${randomSuffix()}`;
  try {
    await rename(path, moved);
  } catch (error) {
    if (isNotFound(error)) return;
    throw error;
  }
  const taken = await readRecord(moved);
  const sameAsSeen =
    (seen === 'unreadable' && taken === 'unreadable') ||
    (typeof seen === 'object' && typeof taken === 'object' && seen.token === taken.token);
  if (!sameAsSeen) {
    try {
      await link(moved, path);
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error;
    }
  }
  await rm(moved, { force: true });
}

/** Creates the lock whole (see {@link withFileLock}); false when someone else holds it. Never leaves a file behind on failure. */
async function createLock(path: string, record: LockRecord): Promise<boolean> {
  const draft = `${path}${LOCK_DRAFT_INFIX}${record.token}`;
  try {
    await writeExclusive(draft, record);
    try {
      await link(draft, path);
      return true;
    } catch (error) {
      const code = errorCode(error);
      if (code === 'EEXIST') return false;
      // File systems without hard links: create in place (a reader may then see the file before its record).
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw error;
    }
  } finally {
    await rm(draft, { force: true });
  }
  try {
    await writeExclusive(path, record);
    return true;
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    const current = await readRecord(path);
    if (current === 'unreadable') await rm(path, { force: true });
    throw error;
  }
}

async function writeExclusive(path: string, record: LockRecord): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(JSON.stringify(record));
  } finally {
    await handle.close();
  }
}
