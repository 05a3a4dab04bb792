import { DomainError } from '@deit-serve/core';
import { link, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { errorCode, isNotFound, randomSuffix, sleep } from './fs-util';

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
 * Cross-process mutual exclusion by an O_EXCL lock file holding {token, pid, host, time}.
 *
 * A lock is stale when its holder is a dead process on this host, or when it is older than `staleMs`
 * (other hosts sharing the volume cannot be asked). Takeover renames the stale file to a unique name first,
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
    try {
      const handle = await open(path, 'wx');
      try {
        record.acquired_at = Date.now();
        await handle.writeFile(JSON.stringify(record));
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error;
    }
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
    // No record to judge by: fall back on the file's age.
    try {
      stale = Date.now() - (await stat(path)).mtimeMs > staleMs;
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
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
