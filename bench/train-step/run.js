#!/usr/bin/env node
// Runs the TypeScript benchmark without a build step: the workspace's register hook compiles .ts
// files on require with @swc/core and resolves the `@deit-serve/*` aliases, the same way the
// data-parallel workers load sources under tests. With no stack flags (only --quick, --steps,
// --warmup, --python) it runs the whole comparison, each measurement in a child process
// (comparison.ts); any other flag measures in this process as asked (train-step.ts).
'use strict';
const path = require('node:path');

require(path.join(__dirname, '..', '..', 'tools', 'test-support', 'register-ts.cjs'));

const argv = process.argv.slice(2);
const { isComparisonInvocation } = require(path.join(__dirname, 'results.ts'));
const entry = isComparisonInvocation(argv) ? 'comparison.ts' : 'train-step.ts';

require(path.join(__dirname, entry))
  .main(argv)
  .then((code) => {
    process.exitCode = code;
  })
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
