/**
 * The load tests' claims that can be checked without a service: the reload-under-load recipe of
 * load-tests/README.md against registry/ (it named versions the registry had moved past), and the
 * fixtures' true classes against the default model's labels.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { workspaceRoot } from './tools';

const loadTests = join(workspaceRoot, 'load-tests');
const registry = join(workspaceRoot, 'registry');

function production(model: string): number {
  const alias = JSON.parse(readFileSync(join(registry, model, 'aliases', 'production.json'), 'utf8')) as {
    to: number;
  };
  return alias.to;
}

function versions(model: string): number[] {
  return readdirSync(join(registry, model))
    .filter((f) => /^\d+$/.test(f))
    .map(Number)
    .sort((a, b) => a - b);
}

/** The facts a reload recipe states: what it serves, imports, promotes and expects. */
export function recipeProblems(text: string): string[] {
  const problems: string[] = [];
  const expected = /EXPECT_VERSION=(\d+)/.exec(text)?.[1];
  const promoted = /models promote (fmnist-deit):(\d+) --alias production/.exec(text);
  if (!expected || !promoted)
    return ['no EXPECT_VERSION=N with `models promote fmnist-deit:N --alias production`'];
  const model = promoted[1];
  const [want, promote] = [Number(expected), Number(promoted[2])];
  if (want !== promote) problems.push(`EXPECT_VERSION=${want} but it promotes ${model}:${promote}`);
  const prod = production(model);
  const known = versions(model);
  // A recipe that imports a version first promotes the next one; else one the registry has.
  const target = /models import/.test(text) ? Math.max(...known) + 1 : promote;
  if (target !== promote) problems.push(`it imports ${model}:${target} but promotes ${model}:${promote}`);
  if (!/models import/.test(text) && !known.includes(promote))
    problems.push(`${model}:${promote} is not in registry/ (${known.join(', ')})`);
  if (promote === prod) problems.push(`${model}:${promote} is production already: nothing would be reloaded`);
  for (const [, version] of text.matchAll(
    /serv(?:es|ing) (?:version |the production version, `?fmnist-deit:)(\d+)/g,
  )) {
    if (Number(version) !== prod) problems.push(`says it serves ${version}; production is ${prod}`);
  }
  return problems;
}

function reloadSection(readme: string): string {
  const start = readme.indexOf('### Reload under load');
  expect(start, 'load-tests/README.md has a "Reload under load" section').toBeGreaterThan(0);
  return readme.slice(start, readme.indexOf('\n## ', start));
}

describe('load-tests/README.md: the reload-under-load recipe', () => {
  it('promotes a version registry/ has, which is not production, and says what is served', () => {
    const readme = readFileSync(join(loadTests, 'README.md'), 'utf8');
    expect(recipeProblems(reloadSection(readme))).toEqual([]);
  });

  it('catches the stale recipe (a new version imported, an old number expected)', () => {
    const stale = `publish a second version without moving the alias (the service keeps serving version 1)
npx deit models import --random-init --seed 1 --preset deit_pico_distilled_patch4_28 --name fmnist-deit
EXPECT_VERSION=2 PROMOTE_CMD='npx deit models promote fmnist-deit:2 --alias production'`;
    const problems = recipeProblems(stale);
    expect(problems).toContainEqual(
      expect.stringMatching(/imports fmnist-deit:\d+ but promotes fmnist-deit:2/),
    );
    expect(problems).toContainEqual(expect.stringMatching(/says it serves 1; production is/));
  });

  it('the cluster recipe promotes the same version', () => {
    const readme = readFileSync(join(loadTests, 'README.md'), 'utf8');
    const cluster = readme.slice(readme.indexOf('## Running against a cluster'));
    expect(recipeProblems(cluster.slice(cluster.indexOf('EXPECT_VERSION')))).toEqual([]);
  });
});

describe('load-tests/fixtures', () => {
  const labels = JSON.parse(readFileSync(join(loadTests, 'fixtures', 'labels.json'), 'utf8')) as Record<
    string,
    string
  >;

  it("names a true class from the default model's labels for every image, and every class", () => {
    const modelLabels = readFileSync(
      join(registry, 'fmnist-deit', String(production('fmnist-deit')), 'labels.txt'),
      'utf8',
    )
      .split('\n')
      .filter(Boolean);
    for (const [file, label] of Object.entries(labels)) {
      expect(existsSync(join(loadTests, 'fixtures', file)), file).toBe(true);
      expect(modelLabels, file).toContain(label);
    }
    expect(new Set(Object.values(labels))).toEqual(new Set(modelLabels));
    const images = readdirSync(join(loadTests, 'fixtures')).filter((f) => /\.(png|jpe?g)$/.test(f));
    expect(images.sort()).toEqual(Object.keys(labels).sort());
  });
});
