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
} from '../src';

// The real recipes at a toy budget: same code path, seconds instead of hours.
const PLAN: ZooPlan = {
  teacher: { ...ZOO_TEACHER_SPEC, epochs: 1, batchSize: 32, bnStatImages: 64, warmupEpochs: 0 },
  student: (stage, teacherRef, datasetDir) => {
    const spec = zooStudentSpec(stage, teacherRef, datasetDir);
    return {
      ...spec,
      student: { preset: 'deit_pico_distilled_patch7_28' },
      optimization: spec.optimization && { ...spec.optimization, epochs: 1, batchSize: 32, warmupEpochs: 0 },
      evalIntervalEpochs: 1,
    };
  },
};

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
    'trains teacher and three students, records them, serves the hard student, skips finished stages',
    { timeout: 300_000 },
    async () => {
      const logs: string[] = [];
      await runZoo(options(logs));
      const records = await Promise.all(
        (['teacher', 'none', 'soft', 'hard'] as const).map((s) => readStageRecord(join(root, 'records'), s)),
      );
      expect(records.map((r) => r?.model)).toEqual([
        ZOO_MODELS.teacher,
        ZOO_MODELS.none,
        ZOO_MODELS.soft,
        ZOO_MODELS.hard,
      ]);
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
      expect(again.filter((m) => m.endsWith('skipped'))).toHaveLength(4);
      expect(await registry.listVersions(ZOO_MODELS.hard)).toHaveLength(1);

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
      // The students' recipes differ in their distillation type only: one budget, recorded by each.
      expect(records[0]?.budget).toBeUndefined();
      expect(new Set(records.slice(1).map((r) => r?.budget)).size).toBe(1);
      expect(records[1]?.budget).toBe(
        studentBudget(PLAN, 'none', `${ZOO_MODELS.teacher}:${records[0]?.version}`),
      );
      const softBefore = await readStageRecord(join(root, 'records'), 'soft');
      const changed: ZooPlan = {
        ...PLAN,
        student: (stage, teacherRef, datasetDir) => {
          const spec = PLAN.student(stage, teacherRef, datasetDir);
          return stage === 'soft' && spec.distillation
            ? { ...spec, distillation: { ...spec.distillation, tau: 3 } }
            : spec;
        },
      };
      const retrained: string[] = [];
      await runZoo({ ...options(retrained), plan: changed });
      expect(retrained.filter((m) => m.endsWith('skipped'))).toHaveLength(3);
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
      expect(results.missing).toEqual([]);
      const row = results.rows.hard;
      expect(row?.evaluation.images).toBe(30);
      expect(Object.keys(row?.evaluation.top1 ?? {})).toEqual(['cls', 'dist', 'avg']);
      expect(Object.keys(results.rows.teacher?.evaluation.top1 ?? {})).toEqual(['cls']);
      // The tfjs evaluation recorded at publish time and onnxruntime's agree on the same file.
      expect(row?.evaluation.top1.avg).toBeCloseTo(hard.manifest.metrics?.top1.avg ?? -1, 6);
      const page = renderResultsMarkdown(results, 'npm run zoo');
      expect(page).toContain('| distillation | CLS head | DIST head | average | teacher |');
      expect(page).toMatch(/\| hard \| \d+\.\d\d% \| \d+\.\d\d% \| \d+\.\d\d% \| \d+\.\d\d% \|/);
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
      student: (stage, teacherRef, datasetDir) => {
        const spec = PLAN.student(stage, teacherRef, datasetDir);
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
    stage: 'teacher' | 'none' | 'soft' | 'hard' = 'hard',
    /** null: a record written before budgets were recorded. */
    budget: string | null = 'b'.repeat(16),
    /** null: a record written before the stage clock was kept. */
    stageWallSeconds: number | null = 50 * 60,
  ) => ({
    record: {
      stage,
      budget: budget ?? undefined,
      stageWallSeconds: stageWallSeconds ?? undefined,
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

  it('states met targets and wins from the numbers', () => {
    const findings = zooFindings(
      results({
        teacher: row({ cls: 0.925 }),
        none: row({ cls: 0.88, dist: 0.1, avg: 0.5 }),
        soft: row({ cls: 0.885, dist: 0.88, avg: 0.886 }),
        hard: row({ cls: 0.9, dist: 0.905, avg: 0.904 }),
      }),
    );
    expect(findings[0]).toMatch(/92\.50%: meets/);
    expect(findings[1]).toMatch(/90\.40%: meets/);
    expect(findings[2]).toMatch(/-0\.10 points \(within 0\.2/);
    expect(findings[3]).toBe(
      'Hard distillation vs none (same budget and seed): 90.40% vs 88.00% (hard wins, 2.40 points; class head against class head: 90.00% vs 88.00%).',
    );
    expect(findings[4]).toBe(
      "Soft vs none (CLS head): 88.50% vs 88.00% (0.50 points; the paper's Table 3 has soft level with none).",
    );
    expect(findings[5]).toBe(
      'Hard vs soft distillation (average head, same budget and seed): 90.40% vs 88.60% (hard wins, 1.80 points, as the paper finds).',
    );
    expect(findings.at(-1)).toBe(
      'Stage wall time over all sittings: teacher 50.0 min, none 50.0 min, soft 50.0 min, hard 50.0 min: each within the 60-minute limit.',
    );
  });

  it('names a stage over the 60-minute limit, and one whose time was not recorded', () => {
    const over = zooFindings(
      results({
        teacher: row({ cls: 0.93 }, 'teacher', null, 61 * 60),
        hard: row({ cls: 0.9 }, 'hard', null, null),
      }),
    );
    expect(over.at(-1)).toMatch(
      /teacher 61\.0 min, hard not recorded: MISSES the 60-minute limit \(teacher\)/,
    );
    const unknown = zooFindings(results({ hard: row({ cls: 0.9 }, 'hard', null, null) }));
    expect(unknown.at(-1)).toMatch(/not recorded for hard \(trained before the stage clock was kept\)/);
  });

  it('says so plainly when a target is missed or a claim fails', () => {
    const findings = zooFindings(
      results({
        teacher: row({ cls: 0.91 }),
        none: row({ cls: 0.9 }),
        soft: row({ cls: 0.892, dist: 0.89, avg: 0.8926 }),
        hard: row({ cls: 0.89, dist: 0.895, avg: 0.89 }),
      }),
    );
    expect(findings[0]).toMatch(/MISSES the 92\.0% target/);
    expect(findings[1]).toMatch(/MISSES the 90\.0% target/);
    expect(findings[2]).toMatch(/MORE than 0\.2 points below/);
    expect(findings[3]).toMatch(/hard does NOT win/);
    expect(findings[5]).toMatch(
      /^Hard vs soft distillation \(average head, same budget and seed\): 89\.00% vs 89\.26% \(hard does NOT win: soft leads by 0\.26 points/,
    );
  });

  it('refuses to compare students trained at different budgets, or whose budget is not recorded', () => {
    const findings = zooFindings(
      results({
        none: row({ cls: 0.8 }, 'none', '1'.repeat(16)),
        soft: row({ cls: 0.85 }, 'soft', null),
        hard: row({ cls: 0.9, dist: 0.9, avg: 0.9 }, 'hard', '2'.repeat(16)),
      }),
    );
    expect(findings[2]).toMatch(
      /^Hard distillation vs none: NOT COMPARABLE — hard \(budget 2{16}\) and none \(budget 1{16}\) were trained with different recipes/,
    );
    expect(findings[2]).not.toMatch(/wins/);
    expect(findings[3]).toMatch(/^Soft vs none: NOT COMPARABLE — a record does not name its budget/);
    expect(findings[4]).toMatch(
      /^Hard vs soft distillation: NOT COMPARABLE — a record does not name its budget/,
    );
  });
});
