import { InvalidArgumentError } from '@deit-serve/core';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  EventFileTail,
  EventFileWriter,
  fileJobReporter,
  jobFolder,
  readEventFile,
  readEventsOffset,
  readJobFile,
  resumeState,
  writeEventsOffset,
  writeJobFile,
  type JobFileRecord,
} from './job-files';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'job-files-'));
  path = join(dir, 'events.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** One of each record type, with text that is more than one byte per character. */
const RECORDS: JobFileRecord[] = [
  { type: 'start', attempt: 1, pod: 'deit-finetune-x-abcde', time: 1 },
  { type: 'backend', name: 'tfjs-wasm' },
  { type: 'progress', progress: { epoch: 1, epochs: 2, step: 1, stepsPerEpoch: 4 } },
  { type: 'log', message: 'ResNet → DeiT: Größe ✓' },
  { type: 'eval', eval: { epoch: 1, dataset: 'val', images: 10, cls: { top1: 0.5, top5: 1 } } },
  { type: 'checkpoint', path: '/work/jobs/x/checkpoint-1.bin', epoch: 1 },
  { type: 'failed', error: 'out of memory', permanent: false },
  { type: 'stopped', reason: 'shutdown' },
  { type: 'done', result: { model: 'm', version: 3 } },
];

function writeAll(records: readonly JobFileRecord[]): void {
  const writer = EventFileWriter.open(path);
  for (const record of records) writer.append(record);
  writer.close();
}

describe('the job event file', () => {
  it('round-trips every record type, one line each', () => {
    writeAll(RECORDS);
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(RECORDS.length + 1);
    expect(readEventFile(path)).toEqual(RECORDS);
    expect(readEventFile(join(dir, 'missing.jsonl'))).toEqual([]);
  });

  it('gives a reader only complete lines; the rest of a line arrives whole on a later read', () => {
    const line = `${JSON.stringify(RECORDS[3])}\n`;
    const bytes = Buffer.from(line);
    const tail = new EventFileTail(path);
    expect(tail.read()).toEqual({ records: [], skipped: [] }); // no file yet
    // Cut inside a multi-byte character: the reader must not decode half of it.
    const cut = bytes.indexOf(Buffer.from('→')) + 1;
    appendFileSync(path, bytes.subarray(0, cut));
    expect(tail.read().records).toEqual([]);
    expect(tail.offset).toBe(0);
    appendFileSync(path, bytes.subarray(cut));
    expect(tail.read().records).toEqual([RECORDS[3]]);
    expect(tail.offset).toBe(bytes.length);
    expect(tail.read().records).toEqual([]);
  });

  it('two readers at different paces, one byte at a time or all at once, read the same records', () => {
    const text = Buffer.from(RECORDS.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const slow = new EventFileTail(path);
    const seenSlowly: JobFileRecord[] = [];
    for (let i = 0; i < text.length; i++) {
      appendFileSync(path, text.subarray(i, i + 1));
      seenSlowly.push(...slow.read().records);
    }
    expect(seenSlowly).toEqual(RECORDS);
    const fast = new EventFileTail(path);
    expect(fast.read().records).toEqual(RECORDS);
    // A reader resumed from a saved offset continues where it stopped, without repeats.
    const resumed = new EventFileTail(path, Buffer.byteLength(`${JSON.stringify(RECORDS[0])}\n`));
    expect(resumed.read().records).toEqual(RECORDS.slice(1));
  });

  it('a writer ends the line a crashed writer left torn, which readers skip, and loses nothing after it', () => {
    writeAll(RECORDS.slice(0, 2));
    appendFileSync(path, '{"type":"progress","progress":{"epo'); // the pod died mid-write
    const tail = new EventFileTail(path);
    expect(tail.read().records).toEqual(RECORDS.slice(0, 2));
    writeAll(RECORDS.slice(2, 4)); // the next pod
    const { records, skipped } = tail.read();
    expect(records).toEqual(RECORDS.slice(2, 4));
    expect(skipped).toEqual(['{"type":"progress","progress":{"epo']);
    expect(readEventFile(path)).toEqual(RECORDS.slice(0, 4));
  });

  it('skips lines that are not records', () => {
    writeFileSync(path, '{"type":"unknown"}\nnot json\n\n{"no":"type"}\n');
    expect(new EventFileTail(path).read()).toEqual({
      records: [],
      skipped: ['{"type":"unknown"}', 'not json', '{"no":"type"}'],
    });
  });

  it("the reporter writes a job function's reports; checkpoints resolve once written", async () => {
    const writer = EventFileWriter.open(path);
    const echoed: string[] = [];
    const report = fileJobReporter(writer, (line) => echoed.push(line));
    report.backend('tfjs-wasm');
    report.progress({ epoch: 1, epochs: 1, step: 2, stepsPerEpoch: 2 });
    report.log('hello');
    await report.checkpoint('/work/c.bin', 1);
    expect(readEventFile(path).at(-1)).toEqual({ type: 'checkpoint', path: '/work/c.bin', epoch: 1 });
    writer.close();
    expect(readEventFile(path).map((r) => r.type)).toEqual(['backend', 'progress', 'log', 'checkpoint']);
    expect(echoed).toEqual(['hello', 'checkpoint written (epoch 1): /work/c.bin']);
  });
});

describe('resumeState', () => {
  it('counts attempts and finds the last checkpoint and a result', () => {
    expect(resumeState([])).toEqual({ attempts: 0 });
    const records: JobFileRecord[] = [
      { type: 'start', attempt: 1, time: 1 },
      { type: 'checkpoint', path: '/a', epoch: 1 },
      { type: 'checkpoint', path: '/b', epoch: 2 },
      { type: 'failed', error: 'x', permanent: false },
      { type: 'start', attempt: 2, time: 2, resumeFrom: { path: '/b', epoch: 2 } },
      { type: 'checkpoint', path: '/c', epoch: 2 }, // a mid-epoch checkpoint on stop
    ];
    expect(resumeState(records)).toEqual({ attempts: 2, resumeFrom: { path: '/c', epoch: 2 } });
    const done = { type: 'done', result: 1 } as const;
    expect(resumeState([...records, done]).done).toEqual(done);
  });
});

describe('the job file and the read offset', () => {
  it('round-trips what the pod is to run', () => {
    const job = jobFolder(dir, 'job-1');
    expect(job).toBe(join(dir, 'jobs', 'job-1'));
    writeJobFile(job, { jobId: 'job-1', kind: 'fine-tune', spec: { epochs: 2 } });
    expect(readJobFile(job)).toEqual({ version: 1, jobId: 'job-1', kind: 'fine-tune', spec: { epochs: 2 } });
  });

  it('rejects a missing or foreign job file, and ids that are not one folder', () => {
    expect(() => readJobFile(dir)).toThrow(InvalidArgumentError);
    writeFileSync(join(dir, 'job.json'), '{"version":2,"jobId":"x","kind":"k","spec":{}}');
    expect(() => readJobFile(dir)).toThrow(/not a version 1 job file/);
    for (const id of ['', '..', 'a/b']) expect(() => jobFolder(dir, id)).toThrow(InvalidArgumentError);
  });

  it('keeps the offset, 0 when none was saved', () => {
    expect(readEventsOffset(dir)).toBe(0);
    writeEventsOffset(dir, 1234);
    expect(readEventsOffset(dir)).toBe(1234);
  });
});
