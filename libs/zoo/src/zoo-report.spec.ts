import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ZOO_STAGES } from './recipes';
import { renderResultsMarkdown, type ZooResults } from './zoo-report';

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
