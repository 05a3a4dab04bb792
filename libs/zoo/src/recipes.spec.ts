import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  recipeFingerprint,
  stageKind,
  stageName,
  stageRecipe,
  stageSeed,
  studentBudget,
  ZOO_MODELS,
  ZOO_PLAN,
  ZOO_STAGES,
  ZOO_STUDENT_SEEDS,
  type ZooStage,
} from './recipes';
import type { StageRecord } from './stage-record';

const workspaceRoot = join(__dirname, '..', '..', '..');
const recordPath = (stage: string, dir = 'zoo'): string => join(workspaceRoot, dir, `${stage}.json`);
const readRecord = (path: string): StageRecord => JSON.parse(readFileSync(path, 'utf8')) as StageRecord;

describe('the zoo runs', () => {
  it('are the teacher, then three seeds of none and hard and one of soft, hard seed 0 first', () => {
    expect(ZOO_STAGES).toEqual([
      'teacher',
      'hard',
      'none',
      'soft',
      'hard-seed1',
      'none-seed1',
      'hard-seed2',
      'none-seed2',
    ]);
    expect(ZOO_STAGES.map(stageSeed)).toEqual([0, 0, 0, 0, 1, 1, 2, 2]);
    expect(ZOO_STAGES.map(stageKind)).toEqual([
      'teacher',
      'hard',
      'none',
      'soft',
      'hard',
      'none',
      'hard',
      'none',
    ]);
    for (const kind of ['none', 'soft', 'hard'] as const) {
      for (const seed of ZOO_STUDENT_SEEDS[kind]) expect(ZOO_STAGES).toContain(stageName(kind, seed));
    }
  });

  it('train every student at one budget, each seed its own recipe', () => {
    const teacherRef = 'fmnist-teacher:9';
    const students = ZOO_STAGES.filter((s) => s !== 'teacher');
    const budgets = new Set(students.map((s) => studentBudget(ZOO_PLAN, s, teacherRef)));
    expect(budgets.size).toBe(1);
    const recipes = new Set(students.map((s) => recipeFingerprint(stageRecipe(ZOO_PLAN, s, teacherRef))));
    expect(recipes.size).toBe(students.length);
    const seeded = stageRecipe(ZOO_PLAN, 'hard-seed2', teacherRef) as { seed: number };
    expect(seeded.seed).toBe(2);
  });
});

describe('the committed zoo records', () => {
  // A fingerprint that moved would make `npm run zoo` retrain that run (up to an hour each).
  it('of this generation name the recipes the code holds now, so finished runs are skipped', () => {
    const finished = ZOO_STAGES.filter((stage) => existsSync(recordPath(stage)));
    const teacherRef = finished.includes('teacher')
      ? `${readRecord(recordPath('teacher')).model}:${readRecord(recordPath('teacher')).version}`
      : '';
    for (const stage of finished) {
      const record = readRecord(recordPath(stage));
      expect(record.stage).toBe(stage);
      expect(recipeFingerprint(stageRecipe(ZOO_PLAN, stage, teacherRef)), stage).toBe(record.recipe);
      if (stage !== 'teacher') expect(studentBudget(ZOO_PLAN, stage, teacherRef), stage).toBe(record.budget);
    }
    // A student never finishes before its teacher.
    if (finished.some((s) => s !== 'teacher')) expect(finished).toContain('teacher');
  });

  it('of generation 1 name versions the registry still holds (rollback targets)', () => {
    for (const stage of ['teacher', 'none', 'soft', 'hard'] as ZooStage[]) {
      const record = readRecord(recordPath(stage, join('zoo', 'generation-1')));
      expect(record.model).toBe(ZOO_MODELS[stageKind(stage)]);
      const manifest = join(workspaceRoot, 'registry', record.model, String(record.version), 'manifest.json');
      expect(existsSync(manifest), manifest).toBe(true);
      const files = (
        JSON.parse(readFileSync(manifest, 'utf8')) as { files: Record<string, { sha256: string }> }
      ).files;
      expect(files['model.onnx']?.sha256).toBe(record.sha256);
    }
  });
});
