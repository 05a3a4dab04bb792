import { describe, expect, it } from 'vitest';
import { parseZooArgs } from './args';

describe('npm run zoo arguments', () => {
  it('runs every stage in order by default, with the documented locations', () => {
    expect(parseZooArgs([], {})).toEqual({
      stages: ['teacher', 'hard', 'none', 'soft', 'hard-seed1', 'none-seed1', 'hard-seed2', 'none-seed2'],
      evaluateOnly: false,
      registryDir: 'registry',
      recordsDir: 'zoo',
      workDir: 'var/zoo',
      resultsPath: 'RESULTS.md',
      help: false,
    });
    expect(parseZooArgs([], { DEIT_REGISTRY_DIR: '/srv/registry' }).registryDir).toBe('/srv/registry');
  });

  it('keeps the zoo order whatever order runs are named in; a kind means all its seeds', () => {
    expect(parseZooArgs(['none-seed1', 'teacher', '--work', '/tmp/w'], {})).toMatchObject({
      stages: ['teacher', 'none-seed1'],
      workDir: '/tmp/w',
    });
    expect(parseZooArgs(['hard'], {}).stages).toEqual(['hard', 'hard-seed1', 'hard-seed2']);
    expect(parseZooArgs(['soft', 'teacher'], {}).stages).toEqual(['teacher', 'soft']);
  });

  it('evaluate runs no training stage, alone', () => {
    expect(parseZooArgs(['evaluate'], {})).toMatchObject({ stages: [], evaluateOnly: true });
    expect(() => parseZooArgs(['evaluate', 'hard'], {})).toThrow(/give it alone/);
  });

  it('names the bad argument', () => {
    expect(() => parseZooArgs(['distil'], {})).toThrow(
      /unknown argument "distil"; runs: teacher, hard, none, soft, hard-seed1, .*; kinds: teacher, none, soft, hard; evaluate/,
    );
    expect(() => parseZooArgs(['--registry'], {})).toThrow('--registry needs a value');
    expect(() => parseZooArgs(['hard-seed7'], {})).toThrow(/unknown argument "hard-seed7"/);
  });
});
