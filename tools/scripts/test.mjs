#!/usr/bin/env node
// `npm test`: the test setup, every project's tests through Nx, then one closing line that CI reads:
// `N passed, N failed, N skipped`, summed from the JSON reports vitest writes per project.
// Extra arguments go to `nx run-many` (e.g. `npm test -- --projects=model`).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const reports = join(root, 'reports', 'vitest');
rmSync(reports, { recursive: true, force: true });

// What the tests need beyond `npm ci` (Pillow, the deploy tools, Fashion-MNIST): installed once, then
// reused; DEIT_TEST_SETUP=0 skips it. Each part it cannot install is named with the tests it leaves skipped.
if (process.env.DEIT_TEST_SETUP !== '0') {
  spawnSync('bash', [join(root, 'tools', 'scripts', 'test-setup.sh')], { cwd: root, stdio: 'inherit' });
}
const venvPython = join(root, 'reports', '.venv-test', 'bin', 'python');
if (process.env.PYTHON === undefined && existsSync(venvPython)) process.env.PYTHON = venvPython;

const nx = spawnSync(
  'npx',
  ['nx', 'run-many', '-t', 'test', '--parallel=1', '--outputStyle=stream', ...process.argv.slice(2)],
  {
    cwd: root,
    stdio: 'inherit',
  },
);

let passed = 0;
let failed = 0;
let skipped = 0;
const skippedNames = [];
const files = existsSync(reports) ? readdirSync(reports).filter((f) => f.endsWith('.json')) : [];
for (const file of files) {
  const report = JSON.parse(readFileSync(join(reports, file), 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  // A test file that failed to load has no test results but fails the suite.
  failed += report.testResults.filter((r) => r.status === 'failed' && r.assertionResults.length === 0).length;
  for (const result of report.testResults) {
    for (const test of result.assertionResults) {
      if (test.status === 'pending' || test.status === 'skipped' || test.status === 'todo')
        skippedNames.push(`${relative(root, result.name)}: ${test.fullName}`);
    }
  }
}
// Said by name, so that a skip (a missing tool, an opt-in benchmark) is never mistaken for a pass.
if (skippedNames.length > 0) console.log(`\nskipped:\n  ${skippedNames.join('\n  ')}`);
if (nx.status !== 0 && failed === 0) failed = 1; // a project crashed before writing its report
console.log(`\ntest reports: ${files.length} projects`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(nx.status === 0 && failed === 0 ? 0 : 1);
