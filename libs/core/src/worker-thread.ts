/**
 * Starts a worker_thread on a module of a library (the data-parallel trainer's workers, the
 * inference runtime's onnxruntime thread). Built code (.js) starts directly: the build has rewritten
 * the `@deit-serve/*` aliases to relative paths. Under the test runner or a bench the sources are
 * TypeScript, which Node 20 cannot load, and vitest's transform does not reach worker threads; there
 * the worker first loads the workspace's tools/test-support/register-ts.cjs, which compiles .ts files
 * with @swc/core (a dev dependency, only needed in that case) and resolves the aliases, so a worker
 * module may import other libraries (the training library's worker imports the model library).
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

// Runs as a CommonJS script inside the new thread (Worker `eval` mode).
const TS_BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
require(workerData.__registerTs);
require(workerData.__entry);
`;

export function spawnModuleWorker(entry: string, workerData: object): Worker {
  if (!/\.[mc]?ts$/.test(entry)) return new Worker(entry, { workerData });
  // A .ts entry only exists in the workspace, where this file is libs/core/src/worker-thread.ts.
  const registerTs = join(__dirname, '..', '..', '..', 'tools', 'test-support', 'register-ts.cjs');
  return new Worker(TS_BOOTSTRAP, {
    eval: true,
    workerData: { ...workerData, __entry: entry, __registerTs: registerTs },
  });
}

/** A sibling module of the calling file, with the calling file's extension (.ts in sources, .js built). */
export function siblingModule(callerFilename: string, directory: string, baseName: string): string {
  const extension = /\.[mc]?[jt]s$/.exec(callerFilename)?.[0] ?? '.js';
  return `${directory}/${baseName}${extension}`;
}
