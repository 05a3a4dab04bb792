import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import {
  PathNotAllowedError,
  PathSandbox,
  validateFineTuneSpec,
  type FineTuneJobSpec,
  type JobContext,
} from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fineTuneJob, fineTuneJobConfig, fineTuneJobKinds, fineTuneJobOptions } from '../src';
import { fineTuneRequest, writeFashionMnist } from './fixtures/fine-tune-fixtures';

let root: string;
let fmnist: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-config-'));
  fmnist = await writeFashionMnist(join(root, 'data', 'fmnist'), 8);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const trainerConfig = () =>
  loadConfig(trainerConfigSpec, {
    DEIT_REGISTRY_DIR: join(root, 'registry'),
    DEIT_TRAINING_BACKEND: 'cpu',
    DEIT_MAX_DATASET_IMAGES: '500',
    DEIT_MAX_DATASET_BYTES: '1000000',
  });

function context(config: unknown): JobContext<FineTuneJobSpec> {
  const spec = validateFineTuneSpec({
    ...fineTuneRequest({ student: { preset: 'deit_pico_distilled_patch4_28' } }),
    dataset: {
      fashionMnist: { dir: fmnist, evalOnTest: false },
      validationFraction: 0.25,
      maxTrainImages: 0,
      maxEvalImages: 0,
    },
  });
  return {
    jobId: 'configured',
    spec,
    workDir: join(root, 'job'),
    attempt: 1,
    signal: new AbortController().signal,
    ...(config !== undefined && { config }),
    report: {
      progress: () => undefined,
      eval: () => undefined,
      checkpoint: () => Promise.resolve(),
      log: () => undefined,
      backend: () => undefined,
    },
  };
}

describe("the fine-tune job's configuration", () => {
  it('carries the trainer settings and the sandbox as JSON, and comes back as the same options', () => {
    const sandbox = new PathSandbox([join(root, 'data'), 'relative'], root);
    const config = fineTuneJobConfig(trainerConfig(), sandbox);
    expect(JSON.parse(JSON.stringify(config))).toEqual(config);
    expect(config).toEqual({
      registryDir: join(root, 'registry'),
      backend: 'cpu',
      sandbox: { roots: [join(root, 'data'), join(root, 'relative')], cwd: root },
      datasetLimits: { maxImages: 500, maxBytes: 1_000_000 },
    });
    expect(fineTuneJobKinds(config)['fine-tune']?.config).toBe(config);
    const options = fineTuneJobOptions(config);
    expect(options.sandbox?.roots).toEqual(sandbox.roots);
    expect(options.serverDataRoots).toEqual(sandbox.roots);
    expect(options).toMatchObject({
      registryDir: config.registryDir,
      backend: 'cpu',
      datasetLimits: config.datasetLimits,
    });
  });

  it("reads its sandbox from ctx.config, not from the environment: a path outside the config's roots is refused", async () => {
    // DEIT_TRAINER_DATA_ROOTS is unset here: its default roots do not hold `fmnist` either, so only
    // the configured root decides.
    const config = fineTuneJobConfig(trainerConfig(), new PathSandbox([join(root, 'elsewhere')]));
    const error = await fineTuneJob(context(config)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PathNotAllowedError);
    expect((error as PathNotAllowedError).message).toMatch(
      /dataset\.fashion_mnist\.dir: .*outside the data roots/,
    );
  });

  it('refuses to run without its configuration', async () => {
    await expect(fineTuneJob(context(undefined))).rejects.toThrow(/registered without its configuration/);
  });
});
