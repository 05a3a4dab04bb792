import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryRegistry } from '@deit-serve/registry';
import { trainerV1 } from '@deit-serve/proto';
import {
  validateFineTuneSpec,
  type FineTuneJobSpec,
  type JobContext,
  type ResumePoint,
} from '@deit-serve/trainer-engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFineTuneJob, findVersionOfJob, type PublishStep } from '../src';
import { fineTuneRequest, publishStudent, writeFashionMnist } from './fixtures/fine-tune-fixtures';

/**
 * Publishing exactly once: the job is killed at each step of its publish phase (the hook throws
 * there, leaving the disk as a kill would: every write is atomic), then runs again as the runner
 * resumes it — same job id and folder, from its last checkpoint — and must end with exactly one
 * version that names the job, the alias on it.
 */
const JOB_TIMEOUT = 120_000; // two runs of a tiny job
/** The job's own steps, and `before-rename`: inside the registry's publish, the version staged but not in place. */
type KillPoint = PublishStep | 'before-rename';
const STEPS: readonly KillPoint[] = [
  'before-publish',
  'before-rename',
  'after-publish',
  'after-marker',
  'after-promotion',
];

class Killed extends Error {}

let root: string;
let registry: DirectoryRegistry;
let fmnist: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'finetune-publish-'));
  registry = await DirectoryRegistry.open(join(root, 'registry'));
  fmnist = await writeFashionMnist(join(root, 'fmnist'), 24);
  await publishStudent(registry, 'student-tiny');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function spec(outputModel: string): FineTuneJobSpec {
  const request = fineTuneRequest({ outputModel });
  return validateFineTuneSpec({
    ...request,
    dataset: request.dataset && { ...request.dataset, fashionMnist: { dir: fmnist, evalOnTest: false } },
    distillation: { ...request.distillation, type: trainerV1.DistillationType.DISTILLATION_TYPE_NONE },
    promotion: { alias: 'candidate', minImprovement: 0 },
  } as trainerV1.FineTuneSpec);
}

/** One attempt of job `jobId`, as a worker runs it; `killAt` ends it there. */
async function attempt(
  jobId: string,
  s: FineTuneJobSpec,
  run: { attempt: number; resumeFrom?: ResumePoint; killAt?: KillPoint },
): Promise<{ version: number; checkpoint?: ResumePoint }> {
  let checkpoint: ResumePoint | undefined;
  const ctx: JobContext<FineTuneJobSpec> = {
    jobId,
    spec: s,
    workDir: join(root, 'jobs', jobId),
    attempt: run.attempt,
    signal: new AbortController().signal,
    ...(run.resumeFrom !== undefined && { resumeFrom: run.resumeFrom }),
    report: {
      progress: () => undefined,
      eval: () => undefined,
      checkpoint: (path, epoch) => {
        checkpoint = { path, epoch };
        return Promise.resolve();
      },
      log: () => undefined,
      backend: () => undefined,
    },
  };
  const job = createFineTuneJob({
    registry:
      run.killAt === 'before-rename'
        ? await DirectoryRegistry.open(join(root, 'registry'), {
            testHooks: {
              beforeCommit: () => {
                throw new Killed('before-rename');
              },
            },
          })
        : registry,
    parallelism: 'local',
    progressIntervalMs: 0,
    publishHook: (step) => {
      if (step === run.killAt) throw new Killed(step);
    },
  });
  try {
    const result = await job(ctx);
    return { version: result.version, ...(checkpoint !== undefined && { checkpoint }) };
  } catch (error) {
    if (error instanceof Killed && checkpoint !== undefined) throw Object.assign(error, { checkpoint });
    throw error;
  }
}

describe('a fine-tune job killed while publishing', () => {
  it.each(STEPS)(
    'killed at %s, then resumed: exactly one version names the job, and the alias is on it',
    async (step) => {
      const model = `crash-${step}`;
      const jobId = `job-${step}`;
      const s = spec(model);
      const killed = await attempt(jobId, s, { attempt: 1, killAt: step }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(killed).toBeInstanceOf(Killed);
      const resumeFrom = (killed as { checkpoint?: ResumePoint }).checkpoint;
      expect(resumeFrom?.epoch).toBe(1);

      const resumed = await attempt(jobId, s, { attempt: 2, ...(resumeFrom && { resumeFrom }) });

      const versions = await registry.listVersions(model);
      const byJob = [];
      for (const v of versions) {
        const { manifest } = await registry.getManifest(`${model}:${v}`, { integrity: 'size' });
        if (manifest.lineage?.job_id === jobId) byJob.push(v);
      }
      expect(byJob).toEqual([resumed.version]);
      expect(versions).toEqual([resumed.version]);
      expect((await findVersionOfJob(registry, model, jobId))?.version).toBe(resumed.version);
      expect(await registry.getAliases(model)).toEqual({ candidate: resumed.version });
      expect((await registry.aliasHistory(model, 'candidate')).map((h) => h.to)).toEqual([resumed.version]);
    },
    JOB_TIMEOUT,
  );
});
