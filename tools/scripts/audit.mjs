#!/usr/bin/env node
// CI's dependency audit: `npm audit --omit=dev`, failing on every high or critical advisory of a
// production dependency that audit-exceptions.json does not list. An exception names the advisory
// (GHSA id) and the package, says why it cannot be fixed, and expires: an expired one fails too, so
// each is looked at again.
//
// An audit that cannot run (registry unreachable, advisory endpoint refused — the npm mirror of the
// project's CI machine answers 405) is reported as NOT CHECKED, loudly, and does not fail the build
// unless DEIT_AUDIT_REQUIRED=1 (set it where the registry serves advisories): the build cannot be
// held hostage by a mirror, and a check that did not happen is never reported as passed.
//
//   node tools/scripts/audit.mjs [--report FILE] [--exceptions FILE] [--today YYYY-MM-DD]
//
// --report reads a saved `npm audit --omit=dev --json` report instead of asking the registry.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = join(import.meta.dirname, '..', '..');
const FAILING = new Set(['high', 'critical']);

const { values: args } = parseArgs({
  options: {
    report: { type: 'string' },
    exceptions: { type: 'string', default: join(root, 'audit-exceptions.json') },
    today: { type: 'string', default: new Date().toISOString().slice(0, 10) },
  },
});

function fail(message) {
  console.error(`audit: ${message}`);
  process.exit(1);
}

function readReport() {
  if (args.report) return JSON.parse(readFileSync(args.report, 'utf8'));
  const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  try {
    return JSON.parse(run.stdout);
  } catch {
    fail(`npm audit did not produce a report (exit ${run.status}):\n${run.stderr.trim()}`);
  }
}

/** Every high or critical advisory in the report, once per advisory and package. */
function findings(report) {
  if (!report.vulnerabilities) {
    const why = report.error?.summary || report.message || JSON.stringify(report).slice(0, 300);
    if (process.env.DEIT_AUDIT_REQUIRED === '1') fail(`npm audit could not run: ${why}`);
    console.error(
      `audit: NOT CHECKED — npm audit could not run: ${why}\n` +
        'audit: dependency advisories were not checked in this build (DEIT_AUDIT_REQUIRED=1 makes this fail)',
    );
    process.exit(0);
  }
  const found = new Map();
  for (const vulnerability of Object.values(report.vulnerabilities)) {
    for (const via of vulnerability.via ?? []) {
      // A string names another vulnerable package; its own entry carries the advisory.
      if (typeof via !== 'object' || !FAILING.has(via.severity)) continue;
      const id = String(via.url ?? '').match(/GHSA(-[0-9a-z]{4}){3}/)?.[0] ?? `npm-${via.source}`;
      found.set(`${id} ${via.name}`, {
        id,
        package: via.name,
        severity: via.severity,
        title: via.title,
        url: via.url,
      });
    }
  }
  return [...found.values()];
}

function readExceptions() {
  const file = JSON.parse(readFileSync(args.exceptions, 'utf8'));
  const problems = [];
  for (const [i, e] of (file.exceptions ?? []).entries()) {
    for (const key of ['id', 'package', 'reason', 'expires']) {
      if (typeof e[key] !== 'string' || e[key] === '') problems.push(`exception ${i} has no "${key}"`);
    }
    if (typeof e.expires === 'string' && !/^\d{4}-\d{2}-\d{2}$/.test(e.expires)) {
      problems.push(`exception ${i} (${e.id}): "expires" must be YYYY-MM-DD`);
    }
  }
  if (problems.length > 0) fail(`${args.exceptions}:\n  ${problems.join('\n  ')}`);
  return file.exceptions ?? [];
}

const exceptions = readExceptions();
const found = findings(readReport());
const excepted = (f) => exceptions.find((e) => e.id === f.id && e.package === f.package);
const open = [];
for (const f of found) {
  const e = excepted(f);
  const line = `${f.severity} ${f.id} in ${f.package}: ${f.title} (${f.url})`;
  if (e === undefined) open.push(line);
  else if (e.expires < args.today)
    open.push(`${line}\n    its exception expired on ${e.expires}: ${e.reason}`);
  else console.log(`audit: excepted until ${e.expires}: ${line}\n    because ${e.reason}`);
}
for (const e of exceptions) {
  if (!found.some((f) => f.id === e.id && f.package === e.package)) {
    console.warn(`audit: exception ${e.id} (${e.package}) matches nothing any more; remove it`);
  }
}
if (open.length > 0) {
  fail(
    `${open.length} high or critical advisor${open.length === 1 ? 'y' : 'ies'} in production dependencies:\n  ` +
      `${open.join('\n  ')}\nUpgrade or pin the package (npm install --ignore-scripts), or add an exception with its reason to audit-exceptions.json.`,
  );
}
console.log(
  `audit: no unexcepted high or critical advisories in production dependencies (${found.length} excepted)`,
);
