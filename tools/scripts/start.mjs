#!/usr/bin/env node
// `npm start`: builds, then runs the inference service and the trainer side by side on the local
// registry (./registry unless DEIT_REGISTRY_DIR says otherwise), prefixing each line with its
// service. Ctrl-C (SIGINT) or SIGTERM drains both.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { serviceEnv } from './service-env.mjs';

const root = join(import.meta.dirname, '..', '..');
const build = spawnSync(process.execPath, [join(root, 'tools', 'scripts', 'build.mjs')], {
  stdio: 'inherit',
});
if (build.status !== 0) process.exit(build.status ?? 1);

const services = ['inference', 'trainer'];
const children = services.map((name) => {
  const child = spawn(
    process.execPath,
    ['--enable-source-maps', join(root, 'dist', 'apps', name, 'src', 'main.js')],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      // V8 and allocator settings a process only reads at start (service-env.mjs).
      env: serviceEnv(name),
    },
  );
  const prefix = (stream, out) => {
    let buffered = '';
    stream.on('data', (chunk) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) out.write(`[${name}] ${line}\n`);
    });
  };
  prefix(child.stdout, process.stdout);
  prefix(child.stderr, process.stderr);
  return child;
});

let exitCode = 0;
let stopping = false;
const stop = (signal) => {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill(signal);
};
process.on('SIGINT', () => stop('SIGTERM'));
process.on('SIGTERM', () => stop('SIGTERM'));
for (const [i, child] of children.entries()) {
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`[${services[i]}] exited (${signal ?? code}); stopping the others`);
      exitCode = code || 1;
      stop('SIGTERM');
    }
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
  });
}
