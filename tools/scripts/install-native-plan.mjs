// What `install-native.mjs` should do on this machine, decided from facts it gathered (no effects here,
// so the decision is unit-tested with made-up machines: tools/src/install-native.spec.ts).
//
// tfjs-node's own install script downloads libtensorflow and a prebuilt addon from Google Cloud Storage
// (unreachable offline, and package.json keeps that script unapproved). The same C API ships inside
// PyPI's TensorFlow wheel: its libtensorflow_cc.so.2 and libtensorflow_framework.so.2 export every
// TF_*/TFE_* function the binding calls, and the wheel carries the C headers it compiles against.

export const TFJS_NODE_VERSION = '4.22.0';

/**
 * One wheel, pinned by file: the libraries inside do not depend on the Python tag, so pip is asked
 * for the cp311 build whatever Python runs it, and the hash always names the same bytes.
 */
export const WHEEL = {
  project: 'tensorflow-cpu',
  version: '2.21.0',
  file: 'tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl',
  sha256: '2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c',
  pipTarget: [
    '--platform',
    'manylinux_2_27_x86_64',
    '--python-version',
    '3.11',
    '--implementation',
    'cp',
    '--abi',
    'cp311',
  ],
  /** manylinux_2_27: the libraries need glibc 2.27 or newer. */
  minGlibc: [2, 27],
};

/** Wheel members → paths under the package's deps/ (the binding's include dir and RUNPATH). */
export const WHEEL_LIBRARIES = [
  'tensorflow/libtensorflow_cc.so.2',
  'tensorflow/libtensorflow_framework.so.2',
];
export const WHEEL_HEADER_ROOT = 'tensorflow/include/';
export const WHEEL_HEADER_PREFIXES = [
  'tensorflow/c/',
  'tensorflow/core/platform/ctstring',
  'tsl/platform/ctstring',
  'xla/tsl/c/',
];
/**
 * Names binding.gyp links against (`-ltensorflow -ltensorflow_framework`), plus the file name
 * tfjs-node's install.js checks before downloading, so an accidental run of it finds the library.
 */
export const LIBRARY_LINKS = {
  'libtensorflow.so': 'libtensorflow_cc.so.2',
  'libtensorflow_framework.so': 'libtensorflow_framework.so.2',
  'libtensorflow.so.2.9.1': 'libtensorflow_cc.so.2',
};

/** The addon as tfjs-node's loader (node-pre-gyp, `binary.napi_versions` up to 8) looks for it. */
export const NAPI_BUILD_VERSION = 8;
export const ADDON_PATH = `lib/napi-v${NAPI_BUILD_VERSION}/tfjs_binding.node`;
export const STAMP_FILE = 'deps/deit-native.json';

const OFF_VALUES = new Set(['off', '0', 'false', 'no', 'wasm']);

/**
 * @typedef {object} Variant  one npm package built against one TensorFlow wheel
 * @property {string} package   the npm package whose binding is built
 * @property {string} title     what the install's lines call it
 * @property {string} fallback  what training uses where it is not built
 * @property {typeof WHEEL} wheel
 */

/** @type {Variant} */
export const TFJS_NODE_CPU = {
  package: '@tensorflow/tfjs-node',
  title: 'native TensorFlow',
  fallback: 'training uses the wasm backend',
  wheel: WHEEL,
};

/**
 * Identity of one build: the addon is only valid against these exact libraries and this Node ABI.
 * @param {{ arch: string, nodeAbi: string }} facts
 * @param {Variant} [variant]
 */
export function cacheKey(facts, variant = TFJS_NODE_CPU) {
  const { wheel } = variant;
  return `${variant.package.split('/')[1]}-${TFJS_NODE_VERSION}-tf${wheel.version}-${wheel.sha256.slice(0, 12)}-abi${facts.nodeAbi}-linux-${facts.arch}`;
}

/**
 * @typedef {object} Facts
 * @property {string | undefined} deitNative      DEIT_NATIVE
 * @property {string} platform                     process.platform
 * @property {string} arch                         process.arch
 * @property {string | undefined} glibc            glibc version at run time ("2.36"); undefined on musl
 * @property {string} nodeAbi                      process.versions.modules
 * @property {string | undefined} packageVersion   installed version of the variant's package, if any
 * @property {string | undefined} builtKey         key in the package's stamp file, when its addon exists
 * @property {boolean} cached                      a complete build for this key is in the cache
 * @property {string | undefined} python           a python with a working pip, or undefined
 * @property {boolean} compiler                    c++ and make run
 * @property {string | undefined} nodedir          a prefix with include/node/node_api.h
 * @property {string | undefined} nodeGyp          node-gyp's bin script
 */

/**
 * @typedef {{ action: 'skip', reason: string }
 *   | { action: 'ready', key: string }
 *   | { action: 'restore', key: string }
 *   | { action: 'build', key: string, python: string, nodedir: string, nodeGyp: string }} Plan
 */

/**
 * @param {Facts} f
 * @param {Variant} [variant]
 * @returns {Plan}
 */
export function planNativeInstall(f, variant = TFJS_NODE_CPU) {
  const { wheel } = variant;
  if (f.deitNative !== undefined && OFF_VALUES.has(f.deitNative.trim().toLowerCase())) {
    return { action: 'skip', reason: `DEIT_NATIVE=${f.deitNative}` };
  }
  if (f.platform !== 'linux' || f.arch !== 'x64') {
    return {
      action: 'skip',
      reason: `no pinned TensorFlow wheel for ${f.platform}-${f.arch} (linux-x64 only)`,
    };
  }
  if (f.glibc === undefined) return { action: 'skip', reason: 'not a glibc system (the wheel is manylinux)' };
  if (!glibcAtLeast(f.glibc, wheel.minGlibc)) {
    return {
      action: 'skip',
      reason: `glibc ${f.glibc} is older than the wheel's ${wheel.minGlibc.join('.')}`,
    };
  }
  if (f.packageVersion === undefined) {
    return { action: 'skip', reason: `${variant.package} is not installed (optional dependency omitted)` };
  }
  if (f.packageVersion !== TFJS_NODE_VERSION) {
    return {
      action: 'skip',
      reason: `${variant.package} ${f.packageVersion} is installed, this step builds ${TFJS_NODE_VERSION}`,
    };
  }
  const key = cacheKey(f, variant);
  if (f.builtKey === key) return { action: 'ready', key };
  if (f.cached) return { action: 'restore', key };
  if (f.python === undefined)
    return { action: 'skip', reason: 'no python3 with pip to fetch the TensorFlow wheel' };
  if (!f.compiler) return { action: 'skip', reason: 'no C++ compiler and make to build the binding' };
  if (f.nodedir === undefined) {
    return {
      action: 'skip',
      reason: `no Node.js headers (include/node/node_api.h) for node-gyp; set npm_config_nodedir`,
    };
  }
  if (f.nodeGyp === undefined) return { action: 'skip', reason: 'node-gyp not found (it ships with npm)' };
  return { action: 'build', key, python: f.python, nodedir: f.nodedir, nodeGyp: f.nodeGyp };
}

/**
 * @param {string} version
 * @param {number[]} min
 */
function glibcAtLeast(version, min) {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > min[0] || (major === min[0] && minor >= min[1]);
}

/**
 * The one line the install prints when it does not build.
 * @param {string} reason
 * @param {Variant} [variant]
 */
export function skipLine(reason, variant = TFJS_NODE_CPU) {
  return `deit-serve: ${variant.title} not installed (${reason}); ${variant.fallback}`;
}
