#!/usr/bin/env node
// Runs the TypeScript benchmark without a build step: the workspace's register hook compiles .ts
// files on require with @swc/core (a dev dependency) and resolves the `@deit-serve/*` aliases, the
// same way the data-parallel workers load sources under tests.
'use strict';
const path = require('node:path');

require(path.join(__dirname, '..', '..', 'tools', 'test-support', 'register-ts.cjs'));

require(path.join(__dirname, 'train-step.ts'))
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  })
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
