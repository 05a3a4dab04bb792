#!/usr/bin/env node
// The root package's postinstall: builds @tensorflow/tfjs-node against the TensorFlow C API in PyPI's
// tensorflow-cpu wheel, so that after `npm ci` the trainer runs on the `tensorflow` backend; with
// DEIT_GPU=cuda also tfjs-node-gpu on the GPU wheel and onnxruntime's CUDA provider (install-gpu.mjs).
//
// Never fails the install: where it cannot build it prints one line saying why, and training uses the
// wasm backend. DEIT_NATIVE=off skips the TensorFlow builds. A finished build (deps/ + addon) is kept
// in ~/.cache/deit-serve/tfjs-node-<key> (DEIT_NATIVE_CACHE_DIR overrides the parent folder) and
// restored by hard links on the next `npm ci`, which wipes node_modules. The decision is in
// install-native-plan.mjs; the build's output goes to a log file named on failure.
import { installGpuVariants } from './install-gpu.mjs';
import { installOnnxruntimeCuda } from './install-onnxruntime-cuda.mjs';
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  ADDON_PATH,
  LIBRARY_LINKS,
  NAPI_BUILD_VERSION,
  planNativeInstall,
  skipLine,
  STAMP_FILE,
  TFJS_NODE_CPU,
  TFJS_NODE_VERSION,
  WHEEL_HEADER_PREFIXES,
  WHEEL_HEADER_ROOT,
  WHEEL_LIBRARIES,
} from './install-native-plan.mjs';
import {
  cacheRoot,
  downloadWheel,
  findPython,
  linkTree,
  readJsonOrUndefined,
  run,
  runs,
  StepError,
} from './install-steps.mjs';

const root = resolve(import.meta.dirname, '..', '..');

/**
 * Builds (or restores) one variant's binding: tfjs-node on the CPU wheel, or tfjs-node-gpu on the GPU
 * wheel (install-gpu-plan.mjs).
 * @param {import('./install-native-plan.mjs').Variant} variant
 */
export function installTfjsNode(variant) {
  const started = Date.now();
  const pkgDir = join(root, 'node_modules', ...variant.package.split('/'));
  const plan = planNativeInstall(gatherFacts(variant, pkgDir), variant);
  if (plan.action === 'skip') {
    console.log(skipLine(plan.reason, variant));
    return;
  }
  const done = (how) =>
    console.log(
      `deit-serve: ${variant.title} ${how}: ${variant.package.split('/')[1]} ${TFJS_NODE_VERSION} on TensorFlow ${variant.wheel.version} ` +
        `(${((Date.now() - started) / 1000).toFixed(1)} s); training uses the tensorflow backend`,
    );
  if (plan.action === 'ready') return done('already built');
  const entry = join(cacheRoot, plan.key);
  mkdirSync(cacheRoot, { recursive: true });
  const log = join(cacheRoot, `${plan.key}.log`);
  writeFileSync(log, `${new Date().toISOString()} ${plan.action} ${plan.key}\n`);
  try {
    if (plan.action === 'restore') {
      restore(entry, pkgDir);
      verify(variant, log);
      return done(`restored from ${entry}`);
    }
    build(plan, variant, pkgDir, entry, log);
    return done(`built (cached in ${entry})`);
  } catch (error) {
    removeBuild(pkgDir);
    const why = error instanceof StepError ? error.message : `unexpected error: ${String(error)}`;
    console.log(skipLine(`${why}; log: ${log}`, variant));
  }
}

function gatherFacts(variant, pkgDir) {
  const pkg = readJsonOrUndefined(join(pkgDir, 'package.json'));
  const stamp = existsSync(join(pkgDir, ADDON_PATH))
    ? readJsonOrUndefined(join(pkgDir, STAMP_FILE))
    : undefined;
  const facts = {
    deitNative: process.env.DEIT_NATIVE,
    platform: process.platform,
    arch: process.arch,
    glibc: process.report?.getReport().header.glibcVersionRuntime,
    nodeAbi: process.versions.modules,
    packageVersion: pkg?.version,
    builtKey: stamp?.key,
    cached: false,
    python: undefined,
    compiler: false,
    nodedir: undefined,
    nodeGyp: undefined,
  };
  // With a cache hit assumed, the cheap facts already decide everything but `restore`; only then are the
  // cache and the toolchain probed.
  const cheap = planNativeInstall({ ...facts, cached: true }, variant);
  if (cheap.action !== 'restore') return facts;
  facts.cached = existsSync(join(cacheRoot, cheap.key, 'deit-native.json'));
  if (facts.cached) return facts;
  facts.python = findPython();
  facts.compiler = runs('c++', ['--version']) && runs('make', ['--version']);
  facts.nodedir = findNodedir();
  facts.nodeGyp = findNodeGyp();
  return facts;
}

function findNodedir() {
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath))];
  return candidates.find(
    (d) => d !== undefined && d !== '' && existsSync(join(d, 'include', 'node', 'node_api.h')),
  );
}

function findNodeGyp() {
  const prefix = dirname(dirname(process.execPath));
  const candidates = [
    process.env.npm_config_node_gyp,
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  // npm sets npm_config_node_gyp to its bundled node-gyp.js; a shell wrapper cannot run under node.
  return candidates.find((c) => c !== undefined && c.endsWith('.js') && existsSync(c));
}

function build(plan, variant, pkgDir, entry, log) {
  // Per process, so that two installs building the same key at once do not write into each other.
  const staging = `${entry}.partial-${process.pid}`;
  const download = join(cacheRoot, `wheel-download-${process.pid}`);
  const { wheel } = variant;
  try {
    const wheelPath = downloadWheel(plan.python, wheel, download, log);
    extract(plan.python, wheelPath, join(staging, 'deps'), log);
    for (const [name, target] of Object.entries(LIBRARY_LINKS))
      symlinkSync(target, join(staging, 'deps', 'lib', name));
    removeBuild(pkgDir);
    linkTree(join(staging, 'deps'), join(pkgDir, 'deps'));
    compile(plan, pkgDir, log);
    mkdirSync(dirname(join(staging, ADDON_PATH)), { recursive: true });
    copyFileSync(join(pkgDir, ADDON_PATH), join(staging, ADDON_PATH));
    verify(variant, log);
    const stamp = JSON.stringify({ key: plan.key, wheel: wheel.file, sha256: wheel.sha256 }, null, 2);
    writeFileSync(join(staging, 'deit-native.json'), stamp);
    writeFileSync(join(pkgDir, STAMP_FILE), stamp);
    // Another install may have finished the same build meanwhile; either copy is the same build.
    if (!existsSync(join(entry, 'deit-native.json'))) {
      rmSync(entry, { recursive: true, force: true });
      renameSync(staging, entry);
    }
  } finally {
    // The wheel: pip's own cache keeps a copy. A failed or duplicate staging tree is ~850 MB.
    rmSync(download, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Python's zipfile: the wheel is a zip, and python is already required for pip. */
function extract(python, wheel, depsDir, log) {
  const program = `
import json, os, shutil, sys, zipfile
wheel, deps, libs, root, prefixes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name in libs:
            out = os.path.join(deps, 'lib', os.path.basename(name))
        elif name.startswith(root) and not name.endswith('/') and any(name[len(root):].startswith(p) for p in prefixes):
            out = os.path.join(deps, 'include', name[len(root):])
        else:
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
`;
  run(
    python,
    [
      '-c',
      program,
      wheel,
      depsDir,
      JSON.stringify(WHEEL_LIBRARIES),
      WHEEL_HEADER_ROOT,
      JSON.stringify(WHEEL_HEADER_PREFIXES),
    ],
    { cwd: root, log, step: 'extracting the wheel' },
  );
  for (const lib of WHEEL_LIBRARIES) {
    if (!existsSync(join(depsDir, 'lib', lib.split('/').pop())))
      throw new StepError(`the wheel has no ${lib}`);
  }
}

function compile(plan, pkgDir, log) {
  run(
    process.execPath,
    [
      plan.nodeGyp,
      'rebuild',
      `--nodedir=${plan.nodedir}`,
      '--module_name=tfjs_binding',
      `--module_path=${join(pkgDir, dirname(ADDON_PATH))}`,
      `--napi_build_version=${NAPI_BUILD_VERSION}`,
    ],
    { cwd: pkgDir, log, step: 'node-gyp build of the binding' },
  );
  rmSync(join(pkgDir, 'build'), { recursive: true, force: true }); // objects only; the addon was copied out
}

/** Loads the binding in a fresh process: the install only reports success for a backend that works. */
function verify(variant, log) {
  const program = `
const tf = require(${JSON.stringify(variant.package)});
const x = tf.tensor2d([[1, 2], [3, 4]]);
const y = tf.matMul(x, x).dataSync();
if (tf.getBackend() !== 'tensorflow' || y[3] !== 22) throw new Error('the binding loaded but computed ' + Array.from(y));
console.log('TensorFlow ' + tf.backend().binding.TF_Version);`;
  run(process.execPath, ['-e', program], {
    cwd: root,
    log,
    step: 'loading the built binding',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
  });
}

function restore(entry, pkgDir) {
  removeBuild(pkgDir);
  linkTree(join(entry, 'deps'), join(pkgDir, 'deps'));
  mkdirSync(dirname(join(pkgDir, ADDON_PATH)), { recursive: true });
  copyFileSync(join(entry, ADDON_PATH), join(pkgDir, ADDON_PATH));
  copyFileSync(join(entry, 'deit-native.json'), join(pkgDir, STAMP_FILE));
}

/** Leaves the package as npm installed it, so that loading it fails cleanly and training falls back. */
function removeBuild(pkgDir) {
  rmSync(join(pkgDir, 'deps'), { recursive: true, force: true });
  rmSync(join(pkgDir, ADDON_PATH), { force: true });
  rmSync(join(pkgDir, 'build'), { recursive: true, force: true });
}

installTfjsNode(TFJS_NODE_CPU);
// DEIT_GPU=cuda (install-gpu.mjs): tfjs-node-gpu on the GPU wheel and onnxruntime's CUDA provider.
installGpuVariants((variant) => installTfjsNode(variant));
// The upstream way, for hosts that reach NuGet: ONNXRUNTIME_NODE_INSTALL=cuda12.
installOnnxruntimeCuda();
