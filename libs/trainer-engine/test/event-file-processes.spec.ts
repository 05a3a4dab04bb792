/**
 * The job event file across processes: a writer process (the pod) appends while this process (the
 * trainer) tails it, reading partial lines as they appear.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventFileTail, type JobFileRecord } from '../src/job-files';
import { expectedRecords } from './fixtures/event-writer';
import { REGISTER_TS } from './fixtures/support';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'event-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('event file between processes', () => {
  it('a tailer in another process sees every record once, in order, while the writer is writing', async () => {
    const path = join(dir, 'events.jsonl');
    const count = 300;
    const child = spawn(
      process.execPath,
      ['-r', REGISTER_TS, join(__dirname, 'fixtures', 'event-writer.ts'), path, String(count)],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let exited: number | null | undefined;
    child.on('close', (code) => (exited = code));

    // Two tailers: one reads often, the other rarely (the trainer's poll, a restarted trainer).
    const often = new EventFileTail(path);
    const rarely = new EventFileTail(path);
    const seenOften: JobFileRecord[] = [];
    const seenRarely: JobFileRecord[] = [];
    const skipped: string[] = [];
    let reads = 0;
    while (exited === undefined) {
      const read = often.read();
      seenOften.push(...read.records);
      skipped.push(...read.skipped);
      if (++reads % 25 === 0) seenRarely.push(...rarely.read().records);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(exited, stderr).toBe(0);
    seenOften.push(...often.read().records);
    seenRarely.push(...rarely.read().records);

    expect(skipped).toEqual([]);
    expect(seenOften).toEqual(expectedRecords(count));
    expect(seenRarely).toEqual(expectedRecords(count));
    expect(reads).toBeGreaterThan(1); // it really read while the writer wrote
  });
});
