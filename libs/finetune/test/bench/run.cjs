// Runs a TypeScript bench of this library from the sources: .ts compiled on load with @swc/core and the
// workspace's `@deit-serve/*` aliases resolved from tsconfig.base.json. Passed to node with -r, so the
// data-parallel worker threads (which inherit execArgv) get the same hooks.
//   node -r ./libs/finetune/test/bench/run.cjs libs/finetune/test/bench/train-speed.ts [options]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const swc = require('@swc/core');

const workspaceRoot = path.resolve(__dirname, '../../../..');
const tsconfig = JSON.parse(fs.readFileSync(path.join(workspaceRoot, 'tsconfig.base.json'), 'utf8'));
const aliases = new Map(
  Object.entries(tsconfig.compilerOptions.paths).map(([name, targets]) => [
    name,
    path.join(workspaceRoot, targets[0]),
  ]),
);
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return resolveFilename.call(this, aliases.get(request) ?? request, ...rest);
};
if (!Module._extensions['.ts']) {
  Module._extensions['.ts'] = function (module, filename) {
    const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
      filename,
      jsc: { parser: { syntax: 'typescript' }, target: 'es2022', keepClassNames: true },
      module: { type: 'commonjs', ignoreDynamic: true },
      sourceMaps: 'inline',
    });
    module._compile(code, filename);
  };
}
