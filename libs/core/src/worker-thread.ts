/**
 * Starts a worker_thread on a module of a library (the data-parallel trainer's workers, the
 * inference runtime's onnxruntime thread). Built code (.js) starts directly. Under the
 * test runner or a bench the sources are TypeScript, which Node 20 cannot load, and vitest's
 * transform does not reach worker threads; there the worker first installs a require hook that
 * compiles .ts files with @swc/core (a dev dependency, only needed in that case).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Runs as a CommonJS script inside the new thread (Worker `eval` mode).
const TS_BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const Module = require('node:module');
const fs = require('node:fs');
const swc = require(workerData.__swcCore);
const compile = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    sourceMaps: 'inline',
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022', keepClassNames: true },
    module: { type: 'commonjs', ignoreDynamic: true },
  });
  module._compile(code, filename);
};
Module._extensions['.ts'] = compile;
Module._extensions['.mts'] = compile;
require(workerData.__entry);
`;

export function spawnModuleWorker(entry: string, workerData: object): Worker {
  if (!/\.[mc]?ts$/.test(entry)) return new Worker(entry, { workerData });
  const swcCore = createRequire(__filename).resolve('@swc/core');
  return new Worker(TS_BOOTSTRAP, {
    eval: true,
    workerData: { ...workerData, __entry: entry, __swcCore: swcCore },
  });
}

/** A sibling module of the calling file, with the calling file's extension (.ts in sources, .js built). */
export function siblingModule(callerFilename: string, directory: string, baseName: string): string {
  const extension = /\.[mc]?[jt]s$/.exec(callerFilename)?.[0] ?? '.js';
  return `${directory}/${baseName}${extension}`;
}
