#!/usr/bin/env node
// `npm run zoo [-- STAGE... | evaluate]`: builds, then trains/publishes/evaluates the default models
// (apps/zoo). Resumable: run it again after an interruption.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const build = spawnSync(process.execPath, [join(root, 'tools', 'scripts', 'build.mjs')], {
  stdio: 'inherit',
});
if (build.status !== 0) process.exit(build.status ?? 1);
const run = spawnSync(
  process.execPath,
  ['--enable-source-maps', join(root, 'dist', 'apps', 'zoo', 'src', 'main.js'), ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit' },
);
process.exit(run.status ?? 1);
