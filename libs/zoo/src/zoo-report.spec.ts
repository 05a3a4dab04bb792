import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ZOO_STAGES } from './recipes';
import { HAND_WRITTEN_MARKER, keepHandWritten, renderResultsMarkdown, type ZooResults } from './zoo-report';

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

  it('is all that the committed RESULTS.md adds to what the renderer makes of zoo/results.json', () => {
    const committed = readFileSync(join(workspaceRoot, 'RESULTS.md'), 'utf8');
    const results = JSON.parse(
      readFileSync(join(workspaceRoot, 'zoo', 'results.json'), 'utf8'),
    ) as ZooResults;
    expect(committed).toContain(HAND_WRITTEN_MARKER);
    expect(keepHandWritten(`${renderResultsMarkdown(results, 'npm run zoo')}\n`, committed)).toBe(committed);
  });
});
