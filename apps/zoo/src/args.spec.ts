import { describe, expect, it } from 'vitest';
import { parseZooArgs } from './args';

describe('npm run zoo arguments', () => {
  it('runs every stage in order by default, with the documented locations', () => {
    expect(parseZooArgs([], {})).toEqual({
      stages: ['teacher', 'none', 'soft', 'hard'],
      evaluateOnly: false,
      registryDir: 'registry',
      recordsDir: 'zoo',
      workDir: 'var/zoo',
      resultsPath: 'RESULTS.md',
      help: false,
    });
    expect(parseZooArgs([], { DEIT_REGISTRY_DIR: '/srv/registry' }).registryDir).toBe('/srv/registry');
  });

  it('keeps the zoo order whatever order stages are named in', () => {
    expect(parseZooArgs(['hard', 'teacher', '--work', '/tmp/w'], {})).toMatchObject({
      stages: ['teacher', 'hard'],
      workDir: '/tmp/w',
    });
  });

  it('evaluate runs no training stage, alone', () => {
    expect(parseZooArgs(['evaluate'], {})).toMatchObject({ stages: [], evaluateOnly: true });
    expect(() => parseZooArgs(['evaluate', 'hard'], {})).toThrow(/give it alone/);
  });

  it('names the bad argument', () => {
    expect(() => parseZooArgs(['distil'], {})).toThrow(
      /unknown argument "distil"; stages: teacher, none, soft, hard/,
    );
    expect(() => parseZooArgs(['--registry'], {})).toThrow('--registry needs a value');
  });
});
