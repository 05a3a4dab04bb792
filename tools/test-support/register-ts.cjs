// `node -r tools/test-support/register-ts.cjs file.ts` runs the workspace's TypeScript sources in a
// child process or worker thread (tests and benches that need real processes; worker threads inherit
// `-r`): .ts files are compiled on load with @swc/core and the `@deit-serve/*` aliases resolve through
// tsconfig.base.json, as in the type-checker and vitest. Built code needs none of this.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const swc = require('@swc/core');

const workspaceRoot = path.resolve(__dirname, '../..');
const tsconfig = JSON.parse(fs.readFileSync(path.join(workspaceRoot, 'tsconfig.base.json'), 'utf8'));
const aliases = new Map(
  Object.entries(tsconfig.compilerOptions.paths).map(([name, targets]) => [
    name,
    path.join(workspaceRoot, targets[0]),
  ]),
);

if (!Module.__deitServeAliases) {
  Module.__deitServeAliases = true;
  const resolveFilename = Module._resolveFilename;
  Module._resolveFilename = function (request, ...rest) {
    return resolveFilename.call(this, aliases.get(request) ?? request, ...rest);
  };
}

if (!Module._extensions['.ts']) {
  Module._extensions['.ts'] = function (module, filename) {
    const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
      filename,
      // Decorators as the build and vitest compile them, so that NestJS apps start from sources too.
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
        target: 'es2022',
        keepClassNames: true,
      },
      // import() stays native: tfjs-core's gradient registry loads only that way in Node.
      module: { type: 'commonjs', ignoreDynamic: true },
      sourceMaps: 'inline',
    });
    module._compile(code, filename);
  };
}
