import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { workspaceRoot } from './workspace';

const script = join(workspaceRoot, 'tools', 'scripts', 'readme-commands.mjs');

/** `readme-commands.mjs --list` on a checkout: its exit status and what it printed. */
function list(root?: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [script, '--list', ...(root ? ['--root', root] : [])], {
    encoding: 'utf8',
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The README's first shell block, one command a line, comments dropped. */
function quickStart(): string[] {
  const readme = readFileSync(join(workspaceRoot, 'README.md'), 'utf8');
  const block = /^```sh\n([\s\S]*?)^```/m.exec(readme)?.[1] ?? '';
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#\s.*$/, '').trim())
    .filter((line) => line !== '');
}

describe('README and docs/ commands (tools/scripts/readme-commands.mjs)', () => {
  const scratch: string[] = [];
  afterEach(() => {
    for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A scratch checkout with this README and docs/, plus `extra` appended to one page. */
  function copyWith(page: string, extra: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'deit-readme-spec-'));
    scratch.push(dir);
    cpSync(join(workspaceRoot, 'README.md'), join(dir, 'README.md'));
    cpSync(join(workspaceRoot, 'docs'), join(dir, 'docs'), { recursive: true });
    writeFileSync(join(dir, page), `${readFileSync(join(dir, page), 'utf8')}\n${extra}`);
    return dir;
  }

  it('knows every command of README.md and docs/*.md, and lists none they lack', () => {
    const { status, output } = list();
    expect(output).toMatch(/^README\.md: npm start\n {4}start$/m);
    expect(output).toMatch(/^docs\/security\.md: npx deit auth check tokens\.json\n {4}run, expect /m);
    expect(status, output).toBe(0);
  });

  it('fails on a command a docs/ page gains without a mapping', () => {
    const root = copyWith('docs/security.md', '```sh\nnpx deit models frobnicate\n```\n');
    const { status, output } = list(root);
    expect(status).toBe(1);
    expect(output).toContain('does not know');
    expect(output).toContain('npx deit models frobnicate');
  });

  it('fails on a mapped command no page has any more', () => {
    const dir = copyWith('README.md', '');
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    writeFileSync(join(dir, 'README.md'), readme.replace(/^npx deit models list .*$/m, ''));
    const { status, output } = list(dir);
    expect(status).toBe(1);
    expect(output).toContain('listed here but in none of');
    expect(output).toContain('npx deit models list');
  });

  it("keeps the quick start's npm start and npm test as CI runs them", () => {
    expect(quickStart()).toEqual(['npm ci', 'npm start', 'npm test']);
    const ci = readFileSync(join(workspaceRoot, '.ci', 'run'), 'utf8')
      .trimEnd()
      .split('\n');
    expect(ci.at(-1)).toBe('npm test');
    expect(ci).toContain('npm ci --no-audit --no-fund');
  });
});
