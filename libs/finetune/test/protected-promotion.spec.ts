import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PermissionDeniedError } from '@deit-serve/core';
import { datasetHash, loadFashionMnist } from '@deit-serve/datasets';
import { trainerV1 } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  validateFineTuneSpec,
  type FineTuneJobSpec,
  type FineTuneResult,
  type JobContext,
  type PromotionGuard,
} from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFineTuneJob, parseEvalSetName, ProtectedAliases, reproduceEvalSet } from '../src';
import { fineTuneRequest, publishStudent, writeFashionMnist } from './fixtures/fine-tune-fixtures';

/**
 * The poisoned promotion of issue #25, replayed: a caller fine-tunes into a model whose
 * `production` alias exists, evaluating on its own copy of the test set with every label shifted
 * by one. On that set the incumbent scores near 0 and the poisoned version high, so the ordinary
 * policy moves the alias. For a caller without `admin` the trainer judges both on the incumbent's
 * recorded set, rebuilt from its own data root, and the alias stays.
 */
const JOB_TIMEOUT = 180_000;
const TEST_IMAGES = 40;

let root: string;
let registry: DirectoryRegistry;
let serverData: string;
let callerData: string;
let jobs = 0;

function spec(
  overrides: Partial<trainerV1.FineTuneSpec>,
  dir: string,
  guard?: PromotionGuard,
): FineTuneJobSpec {
  const request = fineTuneRequest(overrides);
  const validated = validateFineTuneSpec({
    ...request,
    dataset: { ...request.dataset, fashionMnist: { dir, evalOnTest: true } },
    distillation: { ...request.distillation, type: trainerV1.DistillationType.DISTILLATION_TYPE_NONE },
    optimization: { epochs: 8, batchSize: 16, lr: 1e-2, lrFixed: true, warmupEpochs: 0 },
    ...overrides,
  } as trainerV1.FineTuneSpec);
  // The trainer sets the guard at StartFineTune (ProtectedAliases.guardFor); here, by hand.
  return guard === undefined || validated.promotion === undefined
    ? validated
    : { ...validated, promotion: { ...validated.promotion, guard } };
}

function run(s: FineTuneJobSpec): Promise<FineTuneResult> {
  const jobId = `job-${++jobs}`;
  const ctx: JobContext<FineTuneJobSpec> = {
    jobId,
    spec: s,
    workDir: join(root, 'jobs', jobId),
    attempt: 1,
    signal: new AbortController().signal,
    report: {
      progress: () => undefined,
      eval: () => undefined,
      checkpoint: () => Promise.resolve(),
      log: () => undefined,
      backend: () => undefined,
    },
  };
  return createFineTuneJob({ registry, parallelism: 'local', serverDataRoots: [serverData] })(ctx);
}

const production = { promotion: { alias: 'production', minImprovement: 0 } };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-protected-'));
  registry = await DirectoryRegistry.open(join(root, 'registry'));
  serverData = await writeFashionMnist(join(root, 'server-data'), 80, TEST_IMAGES);
  callerData = await writeFashionMnist(join(root, 'caller-data'), 80, TEST_IMAGES, 1);
  await publishStudent(registry, 'student-tiny');
  // The incumbent: trained on the true labels, measured on the true test set; production → v1.
  const incumbent = await run(
    spec({ outputModel: 'fm', student: { registryRef: 'student-tiny:1' }, ...production }, serverData),
  );
  expect(incumbent).toMatchObject({ version: 1, promoted: true });
}, JOB_TIMEOUT);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('server-side evaluation sets', () => {
  it('rebuilds a Fashion-MNIST set from the name and hash a manifest records, and nothing else', async () => {
    const test = (await loadFashionMnist(serverData, 'test')).dataset;
    const name = `fashion-mnist/test/${TEST_IMAGES}@${datasetHash(test).slice(0, 12)}`;
    expect((await registry.getManifest('fm:1')).manifest.metrics?.eval_set).toBe(name);
    const rebuilt = await reproduceEvalSet(name, [callerData, serverData]);
    expect('dataset' in rebuilt && datasetHash(rebuilt.dataset)).toBe(datasetHash(test));
    // Only the shifted copy: same images, other labels, other hash.
    expect(await reproduceEvalSet(name, [callerData])).toEqual({
      problem: `the Fashion-MNIST test files in ${callerData} do not rebuild it (other images or labels)`,
    });
    expect(parseEvalSetName('fashion-mnist/train-holdout(0.25,seed=3)/10@0123456789ab')).toEqual({
      split: 'train-holdout',
      fraction: 0.25,
      seed: 3,
      size: 10,
      hash: '0123456789ab',
    });
    expect(parseEvalSetName('image-folder:x/val:y/10@0123456789ab')).toEqual({
      problem: expect.stringMatching(/only Fashion-MNIST sets can be rebuilt/) as unknown,
    });
  });
});

describe('a poisoned fine-tune promoting production', () => {
  it(
    "without admin: judged on the incumbent's set rebuilt by the trainer, the alias stays",
    async () => {
      const result = await run(
        spec(
          { outputModel: 'fm', student: { registryRef: 'fm@production' }, ...production },
          callerData,
          'server-evaluated',
        ),
      );
      expect(result).toMatchObject({ version: 2, promoted: false });
      expect(result.promotionReason).toMatch(
        /^protected alias, no admin role: judged on the incumbent's evaluation set, not the job's \(fashion-mnist\/test\/40@\w+, where v2 scored 0\.\d+\): v2 avg top-1 (0\.\d+) vs v1 (0\.\d+) \(evaluated now\) on fashion-mnist\/test\/40@\w+ \(rebuilt by the trainer\): .* production stays at v1$/,
      );
      expect(await registry.getAliases('fm')).toEqual({ production: 1 });
    },
    JOB_TIMEOUT,
  );

  it(
    "with admin: the ordinary policy on the job's own set moves it (the attack the guard stops)",
    async () => {
      const result = await run(
        spec(
          { outputModel: 'fm', student: { registryRef: 'fm@production' }, ...production },
          callerData,
          'admin',
        ),
      );
      expect(result.promotionReason).toMatch(
        /^v3 avg top-1 .* vs v1 .*\(evaluated now\) on fashion-mnist\/test\/40@/,
      );
      expect(result.promotionReason).not.toMatch(/protected/);
      expect(result).toMatchObject({ version: 3, promoted: true });
      expect(await registry.getAliases('fm')).toEqual({ production: 3 });
    },
    JOB_TIMEOUT,
  );
});

describe('ProtectedAliases at StartFineTune', () => {
  const guard = (aliases: readonly string[], dataRoots: readonly string[]) =>
    new ProtectedAliases({ aliases, dataRoots, registry });
  const callerSpec = (alias: string, outputModel = 'fm') =>
    spec({ outputModel, promotion: { alias, minImprovement: 0 } }, callerData);

  it('leaves unprotected aliases and admins alone, and records who must be judged by the trainer', async () => {
    const train = { name: 'ci', roles: ['train'] };
    expect(
      await guard(['production'], [serverData]).guardFor(callerSpec('candidate'), train),
    ).toBeUndefined();
    expect(
      await guard(['production'], []).guardFor(callerSpec('production'), { name: 'ops', roles: ['admin'] }),
    ).toBe('admin');
    expect(await guard(['production'], [serverData]).guardFor(callerSpec('production'), train)).toBe(
      'server-evaluated',
    );
    // No incumbent yet: nothing to beat now; the job checks again when it ends.
    expect(await guard(['production'], []).guardFor(callerSpec('production', 'new-model'), undefined)).toBe(
      'server-evaluated',
    );
  });

  it("refuses a non-admin up front (PERMISSION_DENIED) when the incumbent's set cannot be rebuilt", async () => {
    const refusal = await guard(['production'], [join(root, 'nowhere')])
      .guardFor(callerSpec('production'), { name: 'ci', roles: ['train'] })
      .catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(PermissionDeniedError);
    expect((refusal as Error).message).toMatch(
      /^promotion\.alias: production is a protected alias \(DEIT_PROTECTED_ALIASES\); token "ci" without the admin role may move it only when the new version beats fm:\d+ on the evaluation set its manifest records, rebuilt by the trainer, and that set cannot be rebuilt: no data root .* holds the Fashion-MNIST files to rebuild it\. Promote to another alias, or ask an admin$/,
    );
  });
});
