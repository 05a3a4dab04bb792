import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ZOO_STAGES } from './recipes';
import type { OnnxEvaluation } from './onnx-evaluation';
import type { StageRecord } from './stage-record';
import {
  compareSpreads,
  HAND_WRITTEN_MARKER,
  keepHandWritten,
  PREVIOUS_GENERATION_DIR,
  pctSpread,
  renderResultsMarkdown,
  spread,
  zooFindings,
  type ZooResults,
  type ZooRow,
} from './zoo-report';

const workspaceRoot = join(__dirname, '..', '..', '..');

const NOTHING_RUN: ZooResults = {
  rows: {},
  missing: ZOO_STAGES,
  evaluatedAt: '2026-12-07T00:00:00.000Z',
  machine: 'test machine',
  gitCommit: null,
};

describe('RESULTS.md as rendered', () => {
  const page = renderResultsMarkdown(NOTHING_RUN, 'npm run zoo');

  it('names only source files that exist', () => {
    const paths = [...page.matchAll(/`((?:libs|apps|bench|tools)\/[^`\s]+\.(?:ts|mjs|sh))`/g)].map(
      (m) => m[1],
    );
    expect(paths).toContain('libs/zoo/src/recipes.ts');
    for (const path of paths) expect(existsSync(join(workspaceRoot, path ?? '')), path).toBe(true);
  });

  it('links within the page only to headings it has', () => {
    const anchors = [...page.matchAll(/\]\(#([a-z0-9-]+)\)/g)].map((m) => m[1]);
    expect(anchors).toContain('how-the-recipes-were-chosen');
    const headings = [...page.matchAll(/^#+ (.+)$/gm)].map((m) =>
      (m[1] ?? '')
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-'),
    );
    for (const anchor of anchors) expect(headings).toContain(anchor);
  });
});

describe("RESULTS.md's hand-written part", () => {
  const page = `${renderResultsMarkdown(NOTHING_RUN, 'npm run zoo')}\n`;
  const tail = `${HAND_WRITTEN_MARKER}\n\n## Caveats\n\n- single seed.\n`;

  it('survives regeneration, once, after the new page', () => {
    const previous = `# an older page\n\nold numbers\n\n${tail}`;
    const once = keepHandWritten(page, previous);
    expect(once).toBe(`${page.trimEnd()}\n\n${tail}`);
    expect(keepHandWritten(page, once)).toBe(once);
  });

  it('is nothing when the old page has no marker or there is no old page', () => {
    expect(keepHandWritten(page, '# an older page\n')).toBe(page);
    expect(keepHandWritten(page, undefined)).toBe(page);
  });

  it('is all that the committed RESULTS.md adds to what the renderer makes of the zoo results', () => {
    const committed = readFileSync(join(workspaceRoot, 'RESULTS.md'), 'utf8');
    const read = (...path: string[]): ZooResults =>
      JSON.parse(readFileSync(join(workspaceRoot, 'zoo', ...path), 'utf8')) as ZooResults;
    const page = renderResultsMarkdown(
      read('results.json'),
      'npm run zoo',
      read(PREVIOUS_GENERATION_DIR, 'results.json'),
    );
    expect(committed).toContain(HAND_WRITTEN_MARKER);
    expect(keepHandWritten(`${page}\n`, committed)).toBe(committed);
  });
});

describe('seed spread', () => {
  it('is the mean and the sample standard deviation, none for one run', () => {
    const s3 = spread([0.91, 0.92, 0.93]);
    expect(s3?.mean).toBeCloseTo(0.92, 12);
    expect(s3?.sd).toBeCloseTo(0.01, 12);
    expect(spread([0.9])).toEqual({ n: 1, mean: 0.9, sd: undefined });
    expect(spread([])).toBeUndefined();
    expect(pctSpread(s3)).toBe('92.00% ± 1.00 (3 seeds)');
    expect(pctSpread(spread([0.9]))).toBe('90.00% (1 seed)');
  });

  it('judges a difference against two standard errors of it', () => {
    const a = spread([0.915, 0.917, 0.916]);
    const b = spread([0.905, 0.906, 0.904]);
    const c = spread([0.912, 0.92, 0.908]);
    expect(compareSpreads(a!, b!).verdict).toMatch(/^outside the seed noise/);
    expect(compareSpreads(a!, b!).points).toBeCloseTo(1.1, 9);
    expect(compareSpreads(a!, c!).verdict).toMatch(/^WITHIN the seed noise/);
    expect(compareSpreads(a!, spread([0.9])!).verdict).toMatch(/cannot be judged/);
  });
});

describe('findings', () => {
  const row = (stage: string, top1: OnnxEvaluation['top1'], seed: number): ZooRow => ({
    record: { stage, seed, budget: 'b', stageWallSeconds: 3000 } as unknown as StageRecord,
    evaluation: { top1 } as OnnxEvaluation,
  });
  const results: ZooResults = {
    rows: {
      teacher: row('teacher', { cls: 0.941 }, 0),
      hard: row('hard', { cls: 0.915, dist: 0.916, avg: 0.918 }, 0),
      'hard-seed1': row('hard-seed1', { cls: 0.913, dist: 0.914, avg: 0.916 }, 1),
      none: row('none', { cls: 0.905, dist: 0.1, avg: 0.906 }, 0),
    },
    missing: ['soft'],
    evaluatedAt: '2026-12-08T00:00:00.000Z',
    machine: 'test machine',
    gitCommit: null,
  };
  const findings = zooFindings(results).join('\n');

  it('state the targets from the numbers', () => {
    expect(findings).toContain('Teacher top-1 94.10%: meets the 94.00% target.');
    expect(findings).toContain(
      'Hard-distilled student, average head, mean over seeds: 91.70% ± 0.14 (2 seeds): meets the 91.50% target (2 of 3 seeds so far).',
    );
    expect(findings).toMatch(
      /Student vs teacher .*91\.70% vs 94\.10%, -2\.40 points — the student stays BELOW its teacher\./,
    );
  });

  it('compare hard with none over seeds, and say when noise cannot be judged', () => {
    expect(findings).toMatch(
      /Hard distillation vs none .*: 91\.70% ± 0\.14 \(2 seeds\) vs 90\.50% \(1 seed\), \+1\.20 points, no seed spread/,
    );
    expect(findings).toContain('each within the 60-minute limit');
  });

  it('refuse to compare students trained at different budgets', () => {
    const mixed: ZooResults = {
      ...results,
      rows: {
        ...results.rows,
        none: { ...row('none', { cls: 0.9 }, 0), record: { stage: 'none', budget: 'other' } as StageRecord },
      },
    };
    const text = zooFindings(mixed).join('\n');
    expect(text).toContain('Students NOT COMPARABLE');
    expect(text).not.toContain('Hard distillation vs none');
  });
});
