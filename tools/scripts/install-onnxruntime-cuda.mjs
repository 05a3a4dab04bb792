// onnxruntime-node's CUDA execution provider the upstream way, only when asked for
// (`ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci`), for hosts that reach NuGet; `DEIT_GPU=cuda npm ci`
// (install-gpu.mjs) assembles the same provider from PyPI instead. The CPU provider ships inside the
// npm package, so onnxruntime-node's own install script (which would download the CUDA provider from
// outside the npm registry) is not approved in package.json `allowScripts`; this runs it, from the
// root postinstall, when the variable names a CUDA build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

export function installOnnxruntimeCuda(env = process.env) {
  const wanted = env.ONNXRUNTIME_NODE_INSTALL;
  if (wanted === undefined || wanted === '' || wanted === 'skip') return;
  const script = join(root, 'node_modules', 'onnxruntime-node', 'script', 'install.js');
  if (!existsSync(script)) {
    console.log(`deit-serve: ONNXRUNTIME_NODE_INSTALL=${wanted}, but onnxruntime-node is not installed`);
    process.exitCode = 1;
    return;
  }
  console.log(`deit-serve: ONNXRUNTIME_NODE_INSTALL=${wanted}: running onnxruntime-node's install script`);
  const result = spawnSync(process.execPath, [script], {
    cwd: join(root, 'node_modules', 'onnxruntime-node'),
    env,
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exitCode = result.status ?? 1;
}
