import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  InvalidSpecError,
  PathNotAllowedError,
  PathSandbox,
  validateFineTuneSpec,
} from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFineTuneSources } from '../src';
import { fineTuneRequest, publishStudent, writeFashionMnist } from './fixtures/fine-tune-fixtures';
import { sourceProblems } from './fixtures/source-problems';

/**
 * Check-then-open races: a folder inside the data root is swapped with a symlink to an outside folder
 * (renameat2 RENAME_EXCHANGE, every 0.3 ms) while requests name it. Every request must either load the
 * inside data or be refused with PERMISSION_DENIED; the outside data (recognisable: 13 images of
 * pixel 0xAB, labels 200 that no data set here may hold) must never be read by the job's load,
 * whether its problems are listed (as a failed job reports them) or its data used. A path that keeps changing while it is opened may be refused too
 * (INVALID_ARGUMENT, saying so).
 */
const REQUESTS = 500;
const CONCURRENCY = 4;
const OUTSIDE_IMAGES = 13;
const OUTSIDE_PIXEL = 0xab;

/** Swaps two names atomically in a loop until killed (or after two minutes, should it be forgotten). */
const SWAPPER = `
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
AT_FDCWD, RENAME_EXCHANGE = -100, 2
end = time.monotonic() + 120
print('swapping', flush=True)
while time.monotonic() < end:
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), 'renameat2')
    time.sleep(0.0003)
`;

function idx(magic: number, dims: readonly number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return gzipSync(Buffer.concat([header, data]));
}

let base: string;
let swapper: ChildProcess | undefined;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'finetune-sandbox-race-')));
});

afterAll(async () => {
  swapper?.kill('SIGKILL');
  await rm(base, { recursive: true, force: true });
});

describe('a data folder swapped for a symlink out of the roots while requests read it', () => {
  it(`never reads the outside data in ${REQUESTS} listed checks and ${REQUESTS} loads`, async () => {
    const root = join(base, 'data');
    const outside = join(base, 'outside', 'fm');
    await writeFashionMnist(join(root, 'fm'), 20, 10);
    await mkdir(outside, { recursive: true });
    for (const split of ['train', 't10k']) {
      const pixels = new Uint8Array(OUTSIDE_IMAGES * 784).fill(OUTSIDE_PIXEL);
      const labels = new Uint8Array(OUTSIDE_IMAGES).fill(200);
      await writeFile(
        join(outside, `${split}-images-idx3-ubyte.gz`),
        idx(0x803, [OUTSIDE_IMAGES, 28, 28], pixels),
      );
      await writeFile(join(outside, `${split}-labels-idx1-ubyte.gz`), idx(0x801, [OUTSIDE_IMAGES], labels));
    }
    await symlink(outside, join(root, 'fm-swap'));
    const sandbox = new PathSandbox([root]);
    // The tiny registry student keeps a request to a few milliseconds.
    const registry = await DirectoryRegistry.open(join(base, 'registry'), { create: true });
    await publishStudent(registry, 'student-tiny');
    const spec = validateFineTuneSpec({
      ...fineTuneRequest({ student: { registryRef: 'student-tiny:1' } }),
      dataset: {
        fashionMnist: { dir: join(root, 'fm'), evalOnTest: false },
        validationFraction: 0.25,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
    });

    const child = spawn('python3', ['-c', SWAPPER, join(root, 'fm'), join(root, 'fm-swap')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    swapper = child;
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`the swapper exited (${code})`)));
      child.stdout?.once('data', () => resolve());
    });

    // A refusal is PERMISSION_DENIED, or a path that kept changing while it was opened.
    const outcomes = { loaded: 0, denied: 0, changed: 0, outsideReads: [] as string[] };
    const changing = /kept changing while it was being opened; not read/;
    const check = (s: typeof spec) => sourceProblems(s, { sandbox, registry });
    const request = async (i: number): Promise<void> => {
      try {
        if (i % 2 === 0) {
          const problems = await check(spec);
          if (problems.length > 0 && problems.every((p) => changing.test(p.problem))) {
            outcomes.changed++;
            return;
          }
          if (problems.length > 0) {
            outcomes.outsideReads.push(JSON.stringify(problems));
            return;
          }
        } else {
          const { data } = await loadFineTuneSources(spec, { sandbox, registry });
          const images = data.train.size + data.eval.size;
          const pixels = [...Array(data.train.size).keys()].flatMap((k) => [...data.train.get(k).pixels]);
          if (images !== 20 || pixels.includes(OUTSIDE_PIXEL)) {
            outcomes.outsideReads.push(`worker loaded ${images} images`);
            return;
          }
        }
        outcomes.loaded++;
      } catch (error) {
        if (error instanceof PathNotAllowedError && error.kind === 'PERMISSION_DENIED') {
          outcomes.denied++;
        } else if (
          error instanceof InvalidSpecError &&
          error.problems.every((p) => changing.test(p.problem))
        ) {
          outcomes.changed++;
        } else {
          outcomes.outsideReads.push(String(error));
        }
      }
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < 2 * REQUESTS) await request(next++);
      }),
    );
    child.kill('SIGKILL');

    expect(outcomes.outsideReads.slice(0, 3)).toEqual([]);
    expect(outcomes.loaded + outcomes.denied + outcomes.changed).toBe(2 * REQUESTS);
    // Both sides of the swap were seen: the race was really run.
    expect(outcomes.loaded).toBeGreaterThan(0);
    expect(outcomes.denied).toBeGreaterThan(0);
  }, 180_000);
});
