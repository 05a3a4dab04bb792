#!/usr/bin/env node
// Runs the TypeScript benchmark without a build step: .ts files are compiled on require by
// @swc/core (a dev dependency), the same way the data-parallel workers load sources under tests.
'use strict';
const Module = require('node:module');
const fs = require('node:fs');
const path = require('node:path');
const swc = require('@swc/core');

const compile = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    sourceMaps: 'inline',
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022', keepClassNames: true },
    // ignoreDynamic keeps import() native (tfjs-core's gradient registration needs Node's ESM loader).
    module: { type: 'commonjs', ignoreDynamic: true },
  });
  module._compile(code, filename);
};
Module._extensions['.ts'] = compile;

require(path.join(__dirname, 'train-step.ts'))
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  })
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
