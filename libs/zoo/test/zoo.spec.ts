import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFashionMnist } from '@deit-serve/datasets';
import { writeFashionMnist } from '@deit-serve/finetune/testing';
import { DirectoryRegistry } from '@deit-serve/registry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  evaluateZoo,
  readStageRecord,
  recipeFingerprint,
  renderResultsMarkdown,
  runZoo,
  stageRecipe,
  startStageClock,
  studentBudget,
  ZOO_MODELS,
  ZOO_SERVING_ALIAS,
  ZOO_TEACHER_SPEC,
  zooFindings,
  zooStudentSpec,
  type ZooOptions,
  type ZooPlan,
  type ZooResults,
  type ZooStage,
} from '../src';

// The real recipes at a toy budget: same code path, seconds instead of hours.
const PLAN: ZooPlan = {
  teacher: { ...ZOO_TEACHER_SPEC, epochs: 1, batchSize: 32, bnStatImages: 64, warmupEpochs: 0 },
  student: (stage, teacherRef, datasetDir, seed) => {
    const spec = zooStudentSpec(stage, teacherRef, datasetDir, seed);
    return {
      ...spec,
      student: { preset: 'deit_pico_distilled_patch7_28' },
      optimization: spec.optimization && { ...spec.optimization, epochs: 1, batchSize: 32, warmupEpochs: 0 },
      evalIntervalEpochs: 1,
    };
  },
};

// Every kind and one further seed: the seed path without training all eight runs.
const STAGES: readonly ZooStage[] = ['teacher', 'hard', 'none', 'soft', 'hard-seed1'];

let root: string;
let dataset: string;
let registry: DirectoryRegistry;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zoo-'));
  dataset = await writeFashionMnist(join(root, 'fmnist'), 64, 30);
  registry = await DirectoryRegistry.open(join(root, 'registry'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

function options(logs: string[]): ZooOptions {
  return {
    registry,
    recordsDir: join(root, 'records'),
    workDir: join(root, 'work'),
    datasetDir: dataset,
    plan: PLAN,
    stages: STAGES,
    parallelism: 'local',
    machine: 'test machine',
    log: (m) => logs.push(m),
  };
}

describe('the model zoo', () => {
  it('refuses a student stage before the teacher exists', async () => {
    const fresh = await DirectoryRegistry.open(join(root, 'empty-registry'));
    await expect(
      runZoo({ ...options([]), registry: fresh, recordsDir: join(root, 'no-records'), stages: ['hard'] }),
    ).rejects.toThrow(/teacher stage has not finished/);
  });

  it(
    'trains the teacher and the students (a second seed too), records them, serves hard seed 0, skips finished runs',
    { timeout: 300_000 },
    async () => {
      const logs: string[] = [];
      await runZoo(options(logs));
      const records = await Promise.all(
        (['teacher', 'none', 'soft', 'hard', 'hard-seed1'] as const).map((s) =>
          readStageRecord(join(root, 'records'), s),
        ),
      );
      expect(records.map((r) => r?.model)).toEqual([
        ZOO_MODELS.teacher,
        ZOO_MODELS.none,
        ZOO_MODELS.soft,
        ZOO_MODELS.hard,
        ZOO_MODELS.hard,
      ]);
      expect(records.map((r) => r?.seed)).toEqual([ZOO_TEACHER_SPEC.seed, 0, 0, 0, 1]);
      // Which backend trained each run, native TensorFlow wherever `npm ci` built tfjs-node.
      for (const r of records) expect(r?.backend).toMatch(/tensorflow|wasm/);
      // The second seed is a new version of the same model; production stays on seed 0.
      expect(records[4]?.version).toBe((records[3]?.version ?? 0) + 1);
      const seeded = await registry.getManifest(`${ZOO_MODELS.hard}:${records[4]?.version}`);
      expect(JSON.stringify(seeded.manifest.lineage?.hyperparameters)).toContain('"seed":1');
      for (const r of records) {
        expect(r?.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(r?.trainSeconds).toBeGreaterThanOrEqual(0);
        // One sitting: the whole stage's clock is this sitting's.
        expect(Math.abs((r?.stageWallSeconds ?? -9) - (r?.wallSeconds ?? 0))).toBeLessThanOrEqual(1);
        expect(r?.parameters).toBeGreaterThan(100_000);
      }
      expect((await registry.getAliases(ZOO_MODELS.hard))[ZOO_SERVING_ALIAS]).toBe(records[3]?.version);
      // Each student distilled from the recorded teacher version, with its own distillation type.
      const hard = await registry.getManifest(`${ZOO_MODELS.hard}:${records[3]?.version}`);
      expect(hard.manifest.lineage?.teacher).toContain(`${ZOO_MODELS.teacher}:${records[0]?.version}`);
      const soft = await registry.getManifest(`${ZOO_MODELS.soft}:${records[2]?.version}`);
      expect(JSON.stringify(soft.manifest.lineage?.hyperparameters)).toContain('"type":"soft"');

      // A second run skips every stage.
      const again: string[] = [];
      await runZoo(options(again));
      expect(again.filter((m) => m.endsWith('skipped'))).toHaveLength(5);
      expect(await registry.listVersions(ZOO_MODELS.hard)).toHaveLength(2);

      // A record that no longer matches the registry reruns that stage only; the job finds what it
      // published before (still intact) and records it again rather than training anew.
      const path = join(root, 'records', 'none.json');
      const record = JSON.parse(await readFile(path, 'utf8')) as { sha256: string };
      await writeFile(path, JSON.stringify({ ...record, sha256: '0'.repeat(64) }));
      const rerun: string[] = [];
      await runZoo({ ...options(rerun), stages: ['none', 'hard'] });
      expect(rerun.filter((m) => m.endsWith('skipped'))).toEqual([expect.stringMatching(/^hard: done/)]);
      expect(rerun.some((m) => /already published by an earlier attempt/.test(m))).toBe(true);
      expect(await registry.listVersions(ZOO_MODELS.none)).toHaveLength(1);
      expect((await readStageRecord(join(root, 'records'), 'none'))?.sha256).toBe(record.sha256);

      // If that version is gone from the registry, the stage publishes again.
      await rm(join(root, 'registry', ZOO_MODELS.none), { recursive: true });
      const republished: string[] = [];
      await runZoo({ ...options(republished), stages: ['none'] });
      expect(republished.some((m) => /gone or changed; publishing again/.test(m))).toBe(true);
      expect(await registry.listVersions(ZOO_MODELS.none)).toHaveLength(1);

      // Every record names its recipe; a changed student recipe trains that student anew (a new
      // version, its own checkpoints), and the other stages stay as they are.
      expect(records.every((r) => /^[0-9a-f]{16}$/.test(r?.recipe ?? ''))).toBe(true);
      // The students' recipes differ in their distillation type and seed only: one budget, recorded by each.
      expect(records[0]?.budget).toBeUndefined();
      expect(new Set(records.slice(1).map((r) => r?.budget)).size).toBe(1);
      expect(records[1]?.budget).toBe(
        studentBudget(PLAN, 'none', `${ZOO_MODELS.teacher}:${records[0]?.version}`),
      );
      const softBefore = await readStageRecord(join(root, 'records'), 'soft');
      const changed: ZooPlan = {
        ...PLAN,
        student: (stage, teacherRef, datasetDir, seed) => {
          const spec = PLAN.student(stage, teacherRef, datasetDir, seed);
          return stage === 'soft' && spec.distillation
            ? { ...spec, distillation: { ...spec.distillation, tau: 3 } }
            : spec;
        },
      };
      const retrained: string[] = [];
      await runZoo({ ...options(retrained), plan: changed });
      expect(retrained.filter((m) => m.endsWith('skipped'))).toHaveLength(4);
      expect(retrained.some((m) => /^soft: the recipe changed since fmnist-deit-soft:1/.test(m))).toBe(true);
      const softAfter = await readStageRecord(join(root, 'records'), 'soft');
      expect(softAfter?.version).toBe((softBefore?.version ?? 0) + 1);
      expect(softAfter?.recipe).not.toBe(softBefore?.recipe);
      expect(softAfter?.budget).not.toBe(softBefore?.budget); // no longer compares with none and hard
      // Where the data lie is not part of the recipe.
      expect(JSON.stringify(stageRecipe(PLAN, 'hard', 'fmnist-teacher:1'))).not.toContain(dataset);
      // Key order does not change a fingerprint; a value does.
      expect(recipeFingerprint({ a: 1, b: { c: 2, d: 3 } })).toBe(
        recipeFingerprint({ b: { d: 3, c: 2 }, a: 1 }),
      );
      expect(recipeFingerprint({ a: 1 })).not.toBe(recipeFingerprint({ a: 2 }));

      // Evaluation through onnxruntime on the test split, and the results page.
      const test = (await loadFashionMnist(dataset, 'test')).dataset;
      const results = await evaluateZoo({
        registry,
        recordsDir: join(root, 'records'),
        test,
        machine: 'test machine',
        gitCommit: null,
      });
      expect(results.missing).toEqual(['none-seed1', 'hard-seed2', 'none-seed2']);
      const row = results.rows.hard;
      expect(row?.evaluation.images).toBe(30);
      expect(Object.keys(row?.evaluation.top1 ?? {})).toEqual(['cls', 'dist', 'avg']);
      expect(Object.keys(results.rows.teacher?.evaluation.top1 ?? {})).toEqual(['cls']);
      // The tfjs evaluation recorded at publish time and onnxruntime's agree on the same file.
      expect(row?.evaluation.top1.avg).toBeCloseTo(hard.manifest.metrics?.top1.avg ?? -1, 6);
      const page = renderResultsMarkdown(results, 'npm run zoo');
      expect(page).toContain('| distillation | CLS head | DIST head | average | teacher |');
      // hard: two seeds, so mean ± sd; soft: one.
      expect(page).toMatch(/\| hard \| \d+\.\d\d% ± \d+\.\d\d \(2 seeds\) \| /);
      expect(page).toMatch(/\| soft \| \d+\.\d\d% \(1 seed\) \| /);
      expect(page).toMatch(/\| hard-seed1 \| 1 \| `fmnist-deit:\d+` \| \d+\.\d\d% \|/);
      expect(page).toContain(`registry/${ZOO_MODELS.hard}/${records[3]?.version}/curves.png`);
    },
  );
});

describe('the stage clock', () => {
  it('adds up the sittings of one stage, and refuses a damaged record of them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zoo-clock-'));
    try {
      let t = 0;
      const now = (): number => t;
      const first = await startStageClock(dir, now);
      expect(first.earlierSeconds).toBe(0);
      t = 90_000;
      await first.stop();
      // The next sitting sees the first one's 90 s and counts on from there.
      const second = await startStageClock(dir, () => t - 90_000);
      expect(second.earlierSeconds).toBe(90);
      t += 30_000;
      expect(second.totalSeconds()).toBe(120);
      await second.stop();
      const third = await startStageClock(dir, now);
      expect(third.earlierSeconds).toBe(120);
      const file = JSON.parse(await readFile(join(dir, 'wall-clock.json'), 'utf8')) as {
        sittings: { seconds: number }[];
      };
      expect(file.sittings.map((s) => s.seconds)).toEqual([90, 30, 0]);
      await third.stop();
      // A damaged clock is an error naming the file, not a silent zero.
      await writeFile(join(dir, 'wall-clock.json'), '{not json');
      await expect(startStageClock(dir, now)).rejects.toThrow(/wall-clock\.json: unreadable stage clock/);
      // So is a sitting that cannot be counted: dropping it would shorten the stage's time.
      await writeFile(
        join(dir, 'wall-clock.json'),
        JSON.stringify({
          sittings: [
            { startedAt: 'x', seconds: 90 },
            { startedAt: 'y', seconds: 'ninety' },
          ],
        }),
      );
      await expect(startStageClock(dir, now)).rejects.toThrow(/unreadable stage clock \(expected/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a stage that fails', () => {
  it('leaves its sitting on the stage clock and its error to the caller', async () => {
    const teacher = await readStageRecord(join(root, 'records'), 'teacher');
    if (teacher === undefined) throw new Error('runs after the integration test, which trains the teacher');
    const broken: ZooPlan = {
      ...PLAN,
      student: (stage, teacherRef, datasetDir, seed) => {
        const spec = PLAN.student(stage, teacherRef, datasetDir, seed);
        return { ...spec, optimization: spec.optimization && { ...spec.optimization, batchSize: 0 } };
      },
    };
    await expect(runZoo({ ...options([]), plan: broken, stages: ['none'] })).rejects.toThrow(/batch/i);
    const recipe = recipeFingerprint(stageRecipe(broken, 'none', `${teacher.model}:${teacher.version}`));
    const clock = JSON.parse(
      await readFile(join(root, 'work', 'none', recipe, 'wall-clock.json'), 'utf8'),
    ) as {
      sittings: { seconds: number }[];
    };
    expect(clock.sittings).toHaveLength(1);
    expect(clock.sittings[0]?.seconds).toBeGreaterThanOrEqual(0);
  });
});

describe('zoo findings', () => {
  const row = (
    top1: { cls: number; dist?: number; avg?: number },
    stage: ZooStage = 'hard',
    budget: string | null = 'b'.repeat(16),
    stageWallSeconds: number = 50 * 60,
  ) => ({
    record: {
      stage,
      budget: budget ?? undefined,
      stageWallSeconds,
      model: 'm',
      version: 1,
      sha256: 'a'.repeat(64),
      trainSeconds: 60,
      wallSeconds: 70,
      parameters: 1,
      finishedAt: '',
      gitCommit: null,
      machine: '',
    },
    evaluation: {
      model: 'm',
      version: 1,
      images: 10_000,
      top1,
      imagesPerSecond: 1,
      parameters: 1,
      onnxBytes: 1,
    },
  });
  const results = (rows: ZooResults['rows']): ZooResults => ({
    rows,
    missing: [],
    evaluatedAt: '',
    machine: '',
    gitCommit: null,
  });

  it('states met targets and wins from the numbers, with the seed spread', () => {
    const findings = zooFindings(
      results({
        teacher: row({ cls: 0.941 }, 'teacher', null),
        none: row({ cls: 0.905, dist: 0.1, avg: 0.5 }, 'none'),
        'none-seed1': row({ cls: 0.906, dist: 0.1, avg: 0.5 }, 'none-seed1'),
        'none-seed2': row({ cls: 0.904, dist: 0.1, avg: 0.5 }, 'none-seed2'),
        soft: row({ cls: 0.91, dist: 0.91, avg: 0.912 }, 'soft'),
        hard: row({ cls: 0.94, dist: 0.942, avg: 0.943 }, 'hard'),
        'hard-seed1': row({ cls: 0.941, dist: 0.943, avg: 0.944 }, 'hard-seed1'),
        'hard-seed2': row({ cls: 0.942, dist: 0.944, avg: 0.945 }, 'hard-seed2'),
      }),
    );
    expect(findings[0]).toBe('Teacher top-1 94.10%: meets the 94.00% target.');
    expect(findings[1]).toBe(
      'Hard-distilled student, average head, mean over seeds: 94.40% ± 0.10 (3 seeds): meets the 91.50% target.',
    );
    expect(findings[2]).toMatch(/94\.40% vs 94\.10%, \+0\.30 points — the student catches its teacher\./);
    expect(findings[3]).toMatch(
      /^Average head vs the better single head \(means\): \+0\.10 points \(within 0\.2/,
    );
    expect(findings[4]).toMatch(
      /^Hard distillation vs none .*: 94\.40% ± 0\.10 \(3 seeds\) vs 90\.50% ± 0\.10 \(3 seeds\), \+3\.90 points, outside the seed noise/,
    );
    expect(findings[5]).toMatch(
      /^Soft vs none .*: 91\.00% \(1 seed\) vs 90\.50% ± 0\.10 \(3 seeds\), \+0\.50 points, no seed spread/,
    );
    expect(findings.at(-1)).toMatch(
      /^Stage wall time over all sittings: teacher 50\.0 min, hard 50\.0 min, .*: each within the 60-minute limit\.$/,
    );
  });

  it('names a run over the 60-minute limit', () => {
    const over = zooFindings(
      results({ teacher: row({ cls: 0.93 }, 'teacher', null, 61 * 60), hard: row({ cls: 0.9 }) }),
    );
    expect(over.at(-1)).toMatch(/teacher 61\.0 min, hard 50\.0 min: MISSES the 60-minute limit \(teacher\)/);
  });

  it('says so plainly when a target is missed, a claim fails or a difference is noise', () => {
    const findings = zooFindings(
      results({
        teacher: row({ cls: 0.93 }, 'teacher', null),
        none: row({ cls: 0.905 }, 'none'),
        'none-seed1': row({ cls: 0.915 }, 'none-seed1'),
        hard: row({ cls: 0.912, dist: 0.911, avg: 0.908 }, 'hard'),
        'hard-seed1': row({ cls: 0.914, dist: 0.913, avg: 0.912 }, 'hard-seed1'),
      }),
    );
    expect(findings[0]).toMatch(/MISSES the 94\.00% target/);
    expect(findings[1]).toMatch(
      /91\.00% ± 0\.28 \(2 seeds\): MISSES the 91\.50% target \(2 of 3 seeds so far\)/,
    );
    expect(findings[2]).toMatch(/the student stays BELOW its teacher/);
    expect(findings[3]).toMatch(/MORE than 0\.2 points below/);
    expect(findings[4]).toMatch(/WITHIN the seed noise/);
  });

  it('refuses to compare students trained at different budgets, or whose budget is not recorded', () => {
    for (const other of ['1'.repeat(16), null]) {
      const findings = zooFindings(
        results({ none: row({ cls: 0.8 }, 'none', other), hard: row({ cls: 0.9, dist: 0.9, avg: 0.9 }) }),
      );
      expect(findings.join('\n')).toContain('Students NOT COMPARABLE');
      expect(findings.join('\n')).not.toMatch(/Hard distillation vs none/);
    }
  });
});
