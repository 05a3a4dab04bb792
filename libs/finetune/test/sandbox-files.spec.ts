import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { constants, createWriteStream } from 'node:fs';
import {
  mkdir,
  mkdtemp,
  open,
  readFile,
  realpath,
  rm,
  symlink,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import {
  InvalidSpecError,
  PathNotAllowedError,
  PathSandbox,
  validateFineTuneSpec,
  type FineTuneJobSpec,
} from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFineTuneSources } from '../src';
import { MAX_MODEL_FILE_BYTES } from '../src/sources';
import { fineTuneRequest, writeFashionMnist } from './fixtures/fine-tune-fixtures';
import { sourceProblems } from './fixtures/source-problems';

/**
 * The trainer's audited file access, through loadFineTuneSources (the job's load), thrown or listed
 * as the failed job reports it: file symlinks out of the roots, FIFOs, sparse giants and
 * gzip bombs are refused before their content is read, and no message carries a byte of them.
 */
const PICO = 'deit_pico_distilled_patch4_28';
const SECRET = 'SECRET-CONTENT-7f3a9c';
/** The trainer's defaults (DEIT_MAX_DATASET_IMAGES, DEIT_MAX_DATASET_BYTES). */
const DEFAULT_LIMITS = { maxImages: 100_000, maxBytes: 4_294_967_296 };
const MB = 1024 * 1024;
/** A refusal must come this fast: nothing large is read or inflated. */
const PROMPT_MS = 2_000;

let base: string;
let root: string;
let outside: string;
let sandbox: PathSandbox;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'finetune-sandbox-files-')));
  root = join(base, 'data');
  outside = join(base, 'outside');
  await mkdir(root, { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(outside, 'secret.bin'), `${SECRET}\n`.repeat(100));
  sandbox = new PathSandbox([root]);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

const fashionMnistSpec = (dir: string, extra: Partial<Parameters<typeof fineTuneRequest>[0]> = {}) =>
  validateFineTuneSpec({
    ...fineTuneRequest({ student: { preset: PICO }, ...extra }),
    dataset: {
      fashionMnist: { dir, evalOnTest: false },
      validationFraction: 0.25,
      maxTrainImages: 0,
      maxEvalImages: 0,
    },
  });

/** Runs `load` and returns what it threw, with how long it took. */
async function refusal(load: () => Promise<unknown>): Promise<{ error: Error; ms: number }> {
  const started = Date.now();
  const error = await load().then(
    () => new Error('expected a refusal, got a load'),
    (e: unknown) => e as Error,
  );
  return { error, ms: Date.now() - started };
}

const problemText = (error: unknown): string =>
  error instanceof InvalidSpecError
    ? error.problems.map((p) => `${p.field}: ${p.problem}`).join('\n')
    : String(error);

describe('file symlinks inside a root that lead out', () => {
  let linked: string;
  let passwd: string;
  beforeAll(async () => {
    // Fashion-MNIST files that are symlinks: to a secret outside the roots, and to /etc/passwd.
    linked = await writeFashionMnist(join(root, 'linked-fm'), 20, 10);
    await unlink(join(linked, 'train-images-idx3-ubyte.gz'));
    await symlink(join(outside, 'secret.bin'), join(linked, 'train-images-idx3-ubyte.gz'));
    passwd = await writeFashionMnist(join(root, 'passwd-fm'), 20, 10);
    await unlink(join(passwd, 'train-labels-idx1-ubyte.gz'));
    await symlink('/etc/passwd', join(passwd, 'train-labels-idx1-ubyte.gz'));
  });

  const leaked = (message: string, target: string): string[] => {
    const hex = (text: string) => Buffer.from(text.slice(0, 4)).toString('hex');
    return [SECRET, 'SECR', hex(SECRET), 'root:', hex('root'), target].filter((bit) => message.includes(bit));
  };

  it.each([
    ['a secret file', () => linked, 'train-images-idx3-ubyte.gz', () => join(outside, 'secret.bin')],
    ['/etc/passwd', () => passwd, 'train-labels-idx1-ubyte.gz', () => '/etc/passwd'],
  ])(
    'refuses a Fashion-MNIST file linked to %s with PERMISSION_DENIED and none of its bytes',
    async (_what, dir, file, target) => {
      const spec = fashionMnistSpec(dir());
      const loads: Array<() => Promise<unknown>> = [
        () => loadFineTuneSources(spec, { sandbox }),
        async () => sourceProblems(spec, { sandbox }),
      ];
      for (const load of loads) {
        const { error } = await refusal(load);
        expect(error).toBeInstanceOf(PathNotAllowedError);
        expect((error as PathNotAllowedError).kind).toBe('PERMISSION_DENIED');
        expect(error.message).toMatch(
          new RegExp(
            `dataset\\.fashion_mnist\\.dir: ".*${file}" leads outside the data roots through a symbolic link`,
          ),
        );
        expect(leaked(error.message, target())).toEqual([]);
        // The server's log learns where it leads.
        expect((error as PathNotAllowedError).denials[0]?.resolved).toBe(target());
      }
    },
  );
});

describe('malformed files inside the roots', () => {
  it('refuses a student safetensors file that is text, quoting none of it', async () => {
    const fm = await writeFashionMnist(join(root, 'fm-text-student'), 20, 10);
    const text = 'root:x:0:0:root:/root:/bin/bash\n'.repeat(4);
    const long = join(root, 'text.safetensors');
    await writeFile(long, text);
    // Eight bytes that give a header length within the file: the header then is not JSON.
    const short = join(root, 'short-header.safetensors');
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(20n);
    await writeFile(short, Buffer.concat([header, Buffer.from(text)]));
    for (const path of [long, short]) {
      const spec = fashionMnistSpec(fm, { student: { safetensors: { path, preset: PICO } } });
      const message = problemText((await refusal(() => loadFineTuneSources(spec, { sandbox }))).error);
      expect(message).toMatch(/student\.safetensors\.path: /);
      const firstEight = Buffer.from(text).readBigUInt64LE(0).toString();
      for (const leak of ['root', ':x:', firstEight]) expect(message).not.toContain(leak);
    }
  });
});

describe('files larger than any limit allows (sparse: they cost no disk)', () => {
  const GIANT = 1_500_000_000;

  it('caps model files at 1 GiB (the README says so)', () => {
    expect(MAX_MODEL_FILE_BYTES).toBe(1024 ** 3);
  });

  it.each([
    ['teacher.onnx_path', 'teacher.onnx'],
    ['student.safetensors.path', 'student.safetensors'],
  ])('refuses a 1.5 GB %s by its size, before reading it', async (field, name) => {
    const fm = await writeFashionMnist(join(root, `fm-${name}`), 20, 10);
    const path = join(root, name);
    await writeFile(path, '');
    await truncate(path, GIANT);
    const spec =
      field === 'teacher.onnx_path'
        ? fashionMnistSpec(fm, { teacher: { onnxPath: path } })
        : fashionMnistSpec(fm, { student: { safetensors: { path, preset: PICO } } });
    const rss = process.memoryUsage().rss;
    const { error, ms } = await refusal(() => loadFineTuneSources(spec, { sandbox }));
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * MB);
    expect(ms).toBeLessThan(PROMPT_MS);
    expect(problemText(error)).toContain(
      `${field}: "${path}" is 1,500,000,000 bytes, more than the ${MAX_MODEL_FILE_BYTES.toLocaleString('en-US')} allowed; not read`,
    );
  });

  it('refuses a 1.5 GB Fashion-MNIST file from its first bytes, at the default limits', async () => {
    const fm = await writeFashionMnist(join(root, 'fm-sparse'), 20, 10);
    const images = join(fm, 'train-images-idx3-ubyte.gz');
    await writeFile(images, '');
    await truncate(images, GIANT);
    const load = (datasetLimits: { maxImages: number; maxBytes: number }) =>
      refusal(() => loadFineTuneSources(fashionMnistSpec(fm), { sandbox, datasetLimits }));
    const rss = process.memoryUsage().rss;
    const zeros = await load(DEFAULT_LIMITS);
    expect(zeros.ms).toBeLessThan(PROMPT_MS);
    expect(problemText(zeros.error)).toMatch(
      /train-images-idx3-ubyte\.gz: not an IDX images \(ubyte, 3 dims\) file \(bad magic number; expected 0x00000803\)/,
    );
    // A valid gzip with 1.5 GB after its end: not read through to the end of the file.
    await writeFashionMnist(fm, 20, 10);
    await truncate(images, GIANT);
    const trailing = await load(DEFAULT_LIMITS);
    expect(trailing.ms).toBeLessThan(PROMPT_MS);
    expect(problemText(trailing.error)).toMatch(
      /more stored bytes than the data its header declares can take/,
    );
    // Below the size of the file, the limit refuses it before a byte is read.
    const small = await load({ maxImages: 100_000, maxBytes: 1024 * MB });
    expect(problemText(small.error)).toMatch(
      /dataset: "[^"]*train-images-idx3-ubyte\.gz" is 1,500,000,000 bytes, more than the 1,073,741,824 allowed; not read/,
    );
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * MB);
  });
});

describe('gzip that inflates far beyond what its header or the limits allow', () => {
  const ZEROS = 256 * MB;
  /** A gzip member of ZEROS zero bytes (about 250 KB), built once without holding it in memory. */
  let zerosMember: Buffer;

  beforeAll(async () => {
    const path = join(base, 'zeros.gz');
    const gzip = createGzip({ level: 9 });
    const written = pipeline(gzip, createWriteStream(path));
    const chunk = Buffer.alloc(MB);
    for (let left = ZEROS; left > 0; left -= chunk.length) {
      if (!gzip.write(chunk)) await once(gzip, 'drain');
    }
    gzip.end();
    await written;
    zerosMember = await readFile(path);
  }, 60_000);

  /** An IDX images header, then ZEROS zero bytes: two gzip members, which gunzip reads as one stream. */
  async function gzipBomb(path: string, dims: readonly number[]): Promise<number> {
    const header = Buffer.alloc(4 + 4 * dims.length);
    header.writeUInt32BE(0x803, 0);
    dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
    const bytes = Buffer.concat([gzipSync(header), zerosMember]);
    await writeFile(path, bytes);
    return bytes.length;
  }

  it.each([
    [
      'claims more images than allowed',
      [1_000_000, 28, 28],
      DEFAULT_LIMITS,
      /the header declares 1,000,000 images, more than the 100,000 allowed; not inflated/,
    ],
    [
      'claims more decompressed bytes than allowed',
      [90_000, 28, 28],
      { maxImages: 100_000, maxBytes: 10 * MB },
      /the header declares 90,000 images \(90000×28×28\), 70,560,016 bytes, more than the 10,485,760 bytes allowed; not inflated/,
    ],
    [
      'holds far more than its header declares',
      [20, 28, 28],
      DEFAULT_LIMITS,
      /more than 1,048,576 unexpected bytes after the 20×28×28 data declared by the header; not read further/,
    ],
  ])('stops inflating a small gzip that %s', async (_what, dims, limits, expected) => {
    const fm = await writeFashionMnist(join(root, `bomb-${dims[0]}`), 20, 10);
    const stored = await gzipBomb(join(fm, 'train-images-idx3-ubyte.gz'), dims);
    expect(stored).toBeLessThan(MB);
    const rss = process.memoryUsage().rss;
    const { error, ms } = await refusal(() =>
      loadFineTuneSources(fashionMnistSpec(fm), { sandbox, datasetLimits: limits }),
    );
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * MB);
    expect(ms).toBeLessThan(PROMPT_MS);
    expect(problemText(error)).toMatch(expected);
  });
});

describe('FIFOs named like the data set files', () => {
  let fifos: string;
  beforeAll(async () => {
    fifos = join(root, 'fifo-fm');
    await mkdir(fifos, { recursive: true });
    for (const name of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']) {
      execFileSync('mkfifo', [join(fifos, name)]);
    }
  });

  afterAll(async () => {
    // Should a read be blocked on a FIFO (the failure this guards against), a writer that comes and
    // goes releases it, so the rest of the run is not stuck behind it.
    for (const name of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']) {
      const writer = await open(join(fifos, name), constants.O_WRONLY | constants.O_NONBLOCK).catch(
        () => undefined,
      );
      await writer?.close();
    }
  });

  it('refuses them promptly as not regular files, request after request', async () => {
    const spec: FineTuneJobSpec = fashionMnistSpec(fifos);
    for (let i = 0; i < 8; i++) {
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`request ${i} still waiting after ${PROMPT_MS} ms`)), PROMPT_MS),
      );
      const problems = await Promise.race([sourceProblems(spec, { sandbox }), timeout]);
      expect(problems).toEqual([
        {
          field: 'dataset.fashion_mnist.dir',
          problem: expect.stringMatching(/train-images-idx3-ubyte\.gz" is not a regular file \(a FIFO\)/),
        },
      ]);
    }
    // Still answering: a real data set loads right after.
    const fm = await writeFashionMnist(join(root, 'after-fifos'), 20, 10);
    const { data } = await loadFineTuneSources(fashionMnistSpec(fm), { sandbox });
    expect(data.train.size + data.eval.size).toBe(20);
  });
});
