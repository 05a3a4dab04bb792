import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { workspaceRoot } from './workspace';

/** CI's dependency audit (tools/scripts/audit.mjs), on saved `npm audit --json` reports. */
const dir = mkdtempSync(join(tmpdir(), 'deit-audit-'));
let files = 0;

function advisory(name: string, severity: string, ghsa: string) {
  return {
    source: 1,
    name,
    dependency: name,
    title: `${name} is vulnerable`,
    url: `https://github.com/advisories/${ghsa}`,
    severity,
    range: '<9.9.9',
  };
}

function audit(
  report: unknown,
  exceptions: unknown[] = [],
  today = '2026-11-28',
  env: Record<string, string> = {},
) {
  const n = files++;
  const reportFile = join(dir, `report-${n}.json`);
  const exceptionsFile = join(dir, `exceptions-${n}.json`);
  writeFileSync(reportFile, JSON.stringify(report));
  writeFileSync(exceptionsFile, JSON.stringify({ exceptions }));
  const run = spawnSync(
    process.execPath,
    [
      join(workspaceRoot, 'tools', 'scripts', 'audit.mjs'),
      '--report',
      reportFile,
      '--exceptions',
      exceptionsFile,
      '--today',
      today,
    ],
    { encoding: 'utf8', env: { ...process.env, DEIT_AUDIT_REQUIRED: '', ...env } },
  );
  return { code: run.status, out: run.stdout + run.stderr };
}

const HIGH = 'GHSA-aaaa-bbbb-cccc';
const report = {
  vulnerabilities: {
    left: { name: 'left', severity: 'high', via: [advisory('left', 'high', HIGH)] },
    // Vulnerable only through `left`: the advisory is counted once, under `left`.
    parent: { name: 'parent', severity: 'high', via: ['left'] },
    minor: {
      name: 'minor',
      severity: 'moderate',
      via: [advisory('minor', 'moderate', 'GHSA-mmmm-mmmm-mmmm')],
    },
  },
};

describe('CI dependency audit', () => {
  it('passes a report without high or critical advisories', () => {
    const run = audit({ vulnerabilities: { minor: report.vulnerabilities.minor } });
    expect(run).toMatchObject({ code: 0 });
    expect(run.out).toMatch(/no unexcepted high or critical advisories/);
  });

  it('fails on a high advisory, naming it', () => {
    const run = audit(report);
    expect(run.code).toBe(1);
    expect(run.out).toContain(`high ${HIGH} in left: left is vulnerable`);
    expect(run.out).toMatch(/^ {2}high/m);
    expect(run.out).not.toContain('minor');
  });

  it('honours exactly the listed exceptions, until they expire', () => {
    const exception = { id: HIGH, package: 'left', reason: 'no fixed release yet', expires: '2026-12-31' };
    const run = audit(report, [exception]);
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/excepted until 2026-12-31: .*because no fixed release yet/s);
    // Another package with the same advisory is not covered.
    expect(audit(report, [{ ...exception, package: 'other' }]).code).toBe(1);
    const expired = audit(report, [exception], '2027-01-01');
    expect(expired.code).toBe(1);
    expect(expired.out).toMatch(/expired on 2026-12-31/);
  });

  it('warns about exceptions that match nothing', () => {
    const run = audit({ vulnerabilities: {} }, [
      { id: HIGH, package: 'left', reason: 'old', expires: '2030-01-01' },
    ]);
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/matches nothing any more/);
  });

  it('refuses exceptions without a reason or an expiry date', () => {
    const run = audit(report, [{ id: HIGH, package: 'left' }]);
    expect(run.code).toBe(1);
    expect(run.out).toMatch(/has no "reason"/);
    expect(run.out).toMatch(/has no "expires"/);
  });

  it('says NOT CHECKED when the audit could not run, and fails then only where it is required', () => {
    const refused = {
      message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk',
    };
    const run = audit(refused);
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/audit: NOT CHECKED — npm audit could not run: 405 Method Not Allowed/);
    expect(run.out).not.toMatch(/no unexcepted high or critical advisories/);
    const required = audit(refused, [], '2026-11-28', { DEIT_AUDIT_REQUIRED: '1' });
    expect(required.code).toBe(1);
    expect(required.out).toMatch(/npm audit could not run: 405 Method Not Allowed/);
  });

  it('ships an exceptions file that the script accepts', () => {
    const shipped = JSON.parse(readFileSync(join(workspaceRoot, 'audit-exceptions.json'), 'utf8')) as {
      exceptions: unknown[];
    };
    expect(audit({ vulnerabilities: {} }, shipped.exceptions).code).toBe(0);
  });
});
