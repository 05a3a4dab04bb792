import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  recipeFingerprint,
  stageRecipe,
  studentBudget,
  ZOO_PLAN,
  ZOO_STAGES,
  type ZooStage,
} from './recipes';
import type { StageRecord } from './stage-record';

const workspaceRoot = join(__dirname, '..', '..', '..');
const record = (stage: ZooStage): StageRecord =>
  JSON.parse(readFileSync(join(workspaceRoot, 'zoo', `${stage}.json`), 'utf8')) as StageRecord;

describe('the committed zoo records', () => {
  // A fingerprint that moved would make `npm run zoo` retrain that stage (an hour each).
  it('were trained with the recipes the code holds now, so every stage is skipped', () => {
    const teacher = record('teacher');
    const teacherRef = `${teacher.model}:${teacher.version}`;
    for (const stage of ZOO_STAGES) {
      expect(recipeFingerprint(stageRecipe(ZOO_PLAN, stage, teacherRef)), stage).toBe(record(stage).recipe);
    }
  });

  it('give the three students one budget (paper Table 3: same budget and seed)', () => {
    const teacher = record('teacher');
    const teacherRef = `${teacher.model}:${teacher.version}`;
    for (const stage of ['none', 'soft', 'hard'] as const) {
      expect(studentBudget(ZOO_PLAN, stage, teacherRef), stage).toBe(record(stage).budget);
    }
  });
});
