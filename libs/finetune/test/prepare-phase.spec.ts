import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  InvalidSpecError,
  validateFineTuneSpec,
  type FineTuneJobSpec,
  type JobContext,
} from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareRun } from '../src/prepare-phase';
import { fineTuneRequest, writeFashionMnist } from './fixtures/fine-tune-fixtures';

let root: string;
let registry: DirectoryRegistry;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-prepare-'));
  registry = await DirectoryRegistry.open(join(root, 'registry'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function context(spec: FineTuneJobSpec): {
  ctx: JobContext<FineTuneJobSpec>;
  logs: string[];
  backends: string[];
} {
  const logs: string[] = [];
  const backends: string[] = [];
  const ctx: JobContext<FineTuneJobSpec> = {
    jobId: 'prepare',
    spec,
    workDir: join(root, 'job'),
    attempt: 1,
    signal: new AbortController().signal,
    report: {
      progress: () => undefined,
      eval: () => undefined,
      checkpoint: () => Promise.resolve(),
      log: (m) => void logs.push(m),
      backend: (b) => void backends.push(b),
    },
  };
  return { ctx, logs, backends };
}

const fashionMnistSpec = (dir: string): FineTuneJobSpec =>
  validateFineTuneSpec({
    ...fineTuneRequest({ student: { preset: 'deit_pico_distilled_patch4_28' } }),
    dataset: {
      fashionMnist: { dir, evalOnTest: false },
      validationFraction: 0.25,
      maxTrainImages: 0,
      maxEvalImages: 0,
    },
  });

describe('prepareRun (the first phase of a fine-tune job)', () => {
  it('fails on a data set it cannot read before starting a training backend, naming the field', async () => {
    const { ctx, backends } = context(fashionMnistSpec(join(root, 'missing')));
    const error = await prepareRun(ctx, {}, registry, []).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidSpecError);
    expect((error as InvalidSpecError).problems.map((p) => p.field)).toEqual(['dataset.fashion_mnist.dir']);
    expect(backends).toEqual([]);
  });

  it('loads the sources, reports them, starts the backend and prepares the evaluation', async () => {
    const dir = await writeFashionMnist(join(root, 'fmnist'), 20);
    const { ctx, logs, backends } = context(fashionMnistSpec(dir));
    const cleanups: Array<() => Promise<void>> = [];
    const prepared = await prepareRun(ctx, { evalBatchSize: 4 }, registry, cleanups);
    expect(prepared.sources.data.train.size + prepared.sources.data.eval.size).toBe(20);
    expect(backends).toEqual([prepared.backendName]);
    expect(prepared.backendName).toBe(`tfjs-${prepared.backend}`);
    expect(prepared.evalInput).toMatchObject({ imageSize: 28, cropPct: expect.any(Number) as number });
    expect(prepared.evalBatchSize).toBe(4);
    expect(prepared.teacher).toBeUndefined();
    expect(cleanups).toEqual([]); // no teacher session to release
    expect(logs.some((line) => line.startsWith('data: fashion-mnist'))).toBe(true);
  });
});
